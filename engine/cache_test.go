package engine

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	bkclient "github.com/moby/buildkit/client"
	"github.com/moby/buildkit/client/llb"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	sbllb "github.com/skillbuild/skillbuild/llb"
	"github.com/skillbuild/skillbuild/lock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestWithHistoryCoversEveryLayer: the image's history names every layer
// from the install graph (one entry per layer, after the base's), so that
// BuildKit never describes a layer by how its result came to be (ran, or
// imported from the registry cache) and both give one image.
func TestWithHistoryCoversEveryLayer(t *testing.T) {
	t.Parallel()
	base := ocispec.Image{
		RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{digest.FromString("a"), digest.FromString("b")}},
		// One base layer has no history entry; an empty-layer entry stays.
		History: []ocispec.History{{CreatedBy: "base layer a"}, {CreatedBy: "ENV X=1", EmptyLayer: true}},
	}
	baseCfg, err := json.Marshal(base)
	require.NoError(t, err)
	// Two install layers: one distribution, and a bucket of two.
	in := sbllb.Installed{Locks: []lock.Lock{{{Name: "one", Version: "1.0"}}, {{Name: "two", Version: "2.0"}, {Name: "three", Version: "3.0"}},
		{{Name: "four", Version: "4.0"}, {Name: "five", Version: "5.0", Sdist: true}}}}

	out, err := withHistory(baseCfg, baseCfg, in)
	require.NoError(t, err)
	var img ocispec.Image
	require.NoError(t, json.Unmarshal(out, &img))
	var layers []string
	for _, h := range img.History {
		if !h.EmptyLayer {
			layers = append(layers, h.CreatedBy)
		}
	}
	// 2 base layers + venv + 3 install layers (the last in two steps: 4) +
	// the lock file's directory and file.
	require.Len(t, layers, 9)
	assert.Equal(t, []string{"base layer a", ""}, layers[:2], "the base's own entry, then a blank one for its layer without history")
	assert.Equal(t, "create venv "+sbllb.VenvDir, layers[2])
	assert.Equal(t, []string{"install one==1.0", "install two==2.0 three==3.0", "install four==4.0", "install five==5.0 (built from source)"}, layers[3:7])
	assert.Equal(t, []string{"mkdir " + sbllb.WorkDir, "write " + sbllb.LockFile}, layers[7:])
	for _, h := range img.History[2:] {
		require.NotNil(t, h.Created)
		assert.Equal(t, int64(0), h.Created.Unix(), "no build time in the image")
	}
}

// TestCanceledStepDidNotRun: a vertex BuildKit dropped (answered from a
// cache found meanwhile) is not reported as executed.
func TestCanceledStepDidNotRun(t *testing.T) {
	t.Parallel()
	c := newCollector()
	now := time.Now()
	c.add(&bkclient.SolveStatus{Vertexes: []*bkclient.Vertex{
		{Digest: digest.FromString("1"), Name: sbllb.StepInstall + "a==1", Started: &now, Completed: &now, Error: context.Canceled.Error()},
		{Digest: digest.FromString("2"), Name: sbllb.StepInstall + "b==1", Started: &now, Completed: &now},
		{Digest: digest.FromString("3"), Name: sbllb.StepInstall + "c==1", Started: &now, Completed: &now, Cached: true},
	}})
	cached, executed := c.counts()
	assert.Equal(t, 1, cached)
	assert.Equal(t, []string{sbllb.StepInstall + "b==1"}, executed)

	// Run again after the cancellation: it ran.
	c.add(&bkclient.SolveStatus{Vertexes: []*bkclient.Vertex{{Digest: digest.FromString("1"), Name: sbllb.StepInstall + "a==1", Started: &now, Completed: &now}}})
	_, executed = c.counts()
	assert.Equal(t, []string{sbllb.StepInstall + "a==1", sbllb.StepInstall + "b==1"}, executed)
}

// TestCacheAnchorsKeepTheImage: anchoring the steps the image does not
// hold adds them to the graph (so the cache exporter reaches them) as
// diffs of themselves, and does nothing without outputs.
func TestCacheAnchorsKeepTheImage(t *testing.T) {
	t.Parallel()
	root := llb.Scratch().File(llb.Mkfile("/f", 0o644, []byte("x")))
	assert.Equal(t, root, withCacheAnchors(root, llb.State{}))
	side := llb.Scratch().File(llb.Mkfile("/report.json", 0o644, []byte("{}")))
	def, err := withCacheAnchors(root, side).Marshal(context.Background())
	require.NoError(t, err)
	var names []string
	for _, m := range def.Metadata {
		if n := m.Description["llb.customname"]; n != "" {
			names = append(names, n)
		}
	}
	assert.Contains(t, names, "keep in the build cache")
	sideDef, err := side.Marshal(context.Background())
	require.NoError(t, err)
	assert.Subset(t, def.Def, sideDef.Def[:len(sideDef.Def)-1], "the anchored step is in the graph")
}

// TestCacheErrorClassifies: BuildKit's text of a cache registry failure
// becomes exit 75 (unreachable) or a permission error naming the registry
// and the config file; other errors, and errors about other hosts, pass.
func TestCacheErrorClassifies(t *testing.T) {
	t.Parallel()
	e := &Engine{opts: options{dockerConfigDir: "/cfg"}}
	c := Cache{To: "reg.example:5000/cache/x:buildcache"}
	refused := errors.New(`failed to do request: Head "https://reg.example:5000/v2/cache/x/blobs/sha256:ab": dial tcp 10.0.0.1:5000: connect: connection refused`)
	err := e.cacheError(refused, c)
	assert.True(t, errdefs.IsUnavailable(err))
	assert.ErrorIs(t, err, refused)
	assert.Contains(t, err.Error(), "registry reg.example:5000 is unreachable")

	denied := errors.New(`unexpected status from HEAD request to https://reg.example:5000/v2/cache/x/blobs/sha256:ab: 401 Unauthorized`)
	err = e.cacheError(denied, c)
	assert.True(t, errdefs.IsPermissionDenied(err))
	assert.Contains(t, err.Error(), "/cfg/config.json")
	assert.Contains(t, err.Error(), "docker login reg.example:5000")

	other := errors.New("install foo==1: failed")
	assert.Equal(t, other, e.cacheError(other, c))
	elsewhere := errors.New("dial tcp other.example:443: connect: connection refused")
	assert.Equal(t, elsewhere, e.cacheError(elsewhere, c), "not the cache registry")
	assert.Equal(t, refused, e.cacheError(refused, Cache{}), "no cache")
}

func TestNoteCacheMissTurnsAMissingCacheIntoANote(t *testing.T) {
	t.Parallel()
	miss := &bkclient.Vertex{Name: cacheImportVertex + "127.0.0.1:5000/cache/x:buildcache", Error: "127.0.0.1:5000/cache/x:buildcache: not found"}
	denied := &bkclient.Vertex{Name: cacheImportVertex + "127.0.0.1:5000/cache/y:buildcache", Error: "unexpected status: 401 Unauthorized"}
	step := &bkclient.Vertex{Name: "install x", Error: "not found"}
	st := &bkclient.SolveStatus{Vertexes: []*bkclient.Vertex{miss, denied, step}}
	got := noteCacheMiss(st)
	require.Len(t, got.Vertexes, 3)
	assert.Empty(t, got.Vertexes[0].Error, "a cache not there yet is no error")
	assert.Contains(t, got.Vertexes[0].Name, "none there yet")
	assert.Equal(t, denied.Error, got.Vertexes[1].Error, "other cache failures stay errors")
	assert.Equal(t, step.Error, got.Vertexes[2].Error, "a step's error stays")
	assert.Equal(t, "127.0.0.1:5000/cache/x:buildcache: not found", miss.Error, "the collector's copy is not changed under it")
}
