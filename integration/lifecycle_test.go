package integration

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	digest "github.com/opencontainers/go-digest"
	"github.com/skillbuild/skillbuild/internal/pyindex"
	"github.com/skillbuild/skillbuild/skill/api"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// lsJSON lists the skill images of `skillbuild ls --json` by tag.
func lsJSON(t *testing.T, args ...string) map[string]api.SkillImage {
	t.Helper()
	r := sb(t, append([]string{"ls", "--json"}, args...)...)
	require.Equal(t, 0, r.code, r.stderr)
	var list []api.SkillImage
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &list), r.stdout)
	out := map[string]api.SkillImage{}
	for _, e := range list {
		out[e.Tag] = e
	}
	return out
}

// rmSkill runs `skillbuild rm --json`.
func rmSkill(t *testing.T, args ...string) (api.RemoveResult, result) {
	t.Helper()
	r := sb(t, append([]string{"rm", "--json"}, args...)...)
	var out api.RemoveResult
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &out), r.stdout)
	return out, r
}

// pruneSkills runs `skillbuild prune --json`, which must succeed.
func pruneSkills(t *testing.T, args ...string) api.PruneResult {
	t.Helper()
	r := sb(t, append([]string{"prune", "--json"}, args...)...)
	require.Equal(t, 0, r.code, r.stderr)
	var out api.PruneResult
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &out), r.stdout)
	return out
}

// imageBlobs are the digests of an image's manifest, config and layers.
func imageBlobs(t *testing.T, ref string) (layerDigests, all []string) {
	t.Helper()
	ctx := context.Background()
	c := suiteClient(t)
	img, err := c.ImageService().Get(ctx, fullName(t, ref))
	require.NoError(t, err)
	m, err := images.Manifest(ctx, c.ContentStore(), img.Target, platforms.Default())
	require.NoError(t, err)
	for _, l := range m.Layers {
		layerDigests = append(layerDigests, l.Digest.String())
	}
	all = append([]string{img.Target.Digest.String(), m.Config.Digest.String()}, layerDigests...)
	return layerDigests, all
}

// hasBlob reports whether containerd's content store holds a digest.
func hasBlob(t *testing.T, dgst string) bool {
	t.Helper()
	d, err := digest.Parse(dgst)
	require.NoError(t, err)
	_, err = suiteClient(t).ContentStore().Info(context.Background(), d)
	if errdefs.IsNotFound(err) {
		return false
	}
	require.NoError(t, err)
	return true
}

func TestLsListsSkillImages(t *testing.T) {
	srv, _ := index(t, pyindex.Wheel{Name: "lsdep", Version: "1.0"}, pyindex.Wheel{Name: "lstop", Version: "2.0", Requires: []string{"lsdep"}})
	inst, r := install(t, srv, "ls-skill", []string{"--version", "2"}, "lstop==2.0")
	require.Equal(t, 0, r.code, r.stderr)

	got := lsJSON(t, "--unpacked")
	e, ok := got["atom-skill:ls-skill-v2"]
	require.True(t, ok, "ls lists the built skill: %v", got)
	assert.Equal(t, "ls-skill", e.SkillID)
	assert.Equal(t, "2", e.Version)
	assert.Equal(t, "docker.io/library/atom-skill:ls-skill-v2", e.Name)
	assert.Equal(t, inst.Digest, e.Digest.String())
	assert.Equal(t, 2, e.Packages, "lstop and its dependency")
	assert.Positive(t, e.Size)
	assert.Positive(t, e.Unpacked, "the image is unpacked for the snapshotter")
	assert.False(t, e.Created.IsZero())

	for _, e := range got {
		assert.NotContains(t, e.Name, "skillbuild/python", "base images are not skill images")
		assert.NotContains(t, e.Name, "skillbuild-staging", "staging names never show")
	}

	t.Run("table", func(t *testing.T) {
		r := sb(t, "ls", "--unpacked")
		require.Equal(t, 0, r.code, r.stderr)
		t.Logf("ls says:\n%s", r.stdout)
		assert.Contains(t, r.stdout, "UNPACKED")
		assert.Contains(t, r.stdout, "SKILL")
		assert.Contains(t, r.stdout, "atom-skill:ls-skill-v2")
		assert.NotContains(t, r.stdout, baseRef)
	})
}

func TestRmMissingTagExitsNotFound(t *testing.T) {
	t.Parallel()
	out, r := rmSkill(t, "never-built")
	assert.Equal(t, 4, r.code)
	assert.Empty(t, out.Removed)
	assert.Contains(t, out.Error, "never-built")

	r = sb(t, "rm", "never-built")
	assert.Equal(t, 4, r.code)
	assert.Contains(t, r.stderr, "never-built")

	r = sb(t, "rm")
	assert.Equal(t, 2, r.code, "rm needs a skill id")
}

func TestRmRemovesTags(t *testing.T) {
	srv, _ := index(t, pyindex.Wheel{Name: "rmpkg", Version: "1.0"})
	for _, v := range []string{"1", "2"} {
		_, r := install(t, srv, "rm-skill", []string{"--version", v}, "rmpkg")
		require.Equal(t, 0, r.code, r.stderr)
	}

	out, r := rmSkill(t, "--version", "1", "rm-skill")
	require.Equal(t, 0, r.code, r.stderr)
	require.Len(t, out.Removed, 1)
	assert.Equal(t, "atom-skill:rm-skill-v1", out.Removed[0].Tag)
	assert.False(t, imageExists(t, "atom-skill:rm-skill-v1"))
	assert.True(t, imageExists(t, "atom-skill:rm-skill-v2"), "other versions stay")

	_, r = rmSkill(t, "--version", "1", "rm-skill")
	assert.Equal(t, 4, r.code, "that version is gone")

	// Without --version every version of the id goes.
	_, r = install(t, srv, "rm-skill", []string{"--version", "3"}, "rmpkg")
	require.Equal(t, 0, r.code, r.stderr)
	out, r = rmSkill(t, "rm-skill")
	require.Equal(t, 0, r.code, r.stderr)
	var tags []string
	for _, e := range out.Removed {
		tags = append(tags, e.Tag)
	}
	assert.Equal(t, []string{"atom-skill:rm-skill-v2", "atom-skill:rm-skill-v3"}, tags)
	assert.False(t, imageExists(t, "atom-skill:rm-skill-v2"))
	assert.False(t, imageExists(t, "atom-skill:rm-skill-v3"))
	assert.NotContains(t, lsJSON(t), "atom-skill:rm-skill-v3")
}

func TestPruneFreesUnsharedKeepsShared(t *testing.T) {
	srv, _ := index(t,
		pyindex.Wheel{Name: "prune-shared", Version: "1.0"},
		pyindex.Wheel{Name: "prune-only-a", Version: "1.0"},
		pyindex.Wheel{Name: "prune-only-b", Version: "1.0"},
	)
	_, r := install(t, srv, "prune-a", nil, "prune-shared==1.0", "prune-only-a==1.0")
	require.Equal(t, 0, r.code, r.stderr)
	_, r = install(t, srv, "prune-b", nil, "prune-shared==1.0", "prune-only-b==1.0")
	require.Equal(t, 0, r.code, r.stderr)

	layersA, blobsA := imageBlobs(t, "atom-skill:prune-a-v1")
	layersB, blobsB := imageBlobs(t, "atom-skill:prune-b-v1")
	baseLayers, _ := imageBlobs(t, baseRef)
	keep := map[string]bool{}
	for _, d := range append(append([]string{}, blobsB...), baseLayers...) {
		keep[d] = true
	}
	var uniqueA []string
	for _, d := range blobsA {
		if !keep[d] {
			uniqueA = append(uniqueA, d)
		}
	}
	require.NotEmpty(t, uniqueA, "skill a has blobs of its own")
	require.Less(t, len(uniqueA), len(blobsA), "the skills share layers")
	var sharedLayers []string
	for _, d := range layersA {
		if keep[d] {
			sharedLayers = append(sharedLayers, d)
		}
	}
	require.NotEmpty(t, sharedLayers)

	// A staging name left by a killed build (it points at b's image).
	ctx := context.Background()
	c := suiteClient(t)
	bImg, err := c.ImageService().Get(ctx, fullName(t, "atom-skill:prune-b-v1"))
	require.NoError(t, err)
	const staging = "localhost/skillbuild-staging/prune-b:deadbeefdeadbeef"
	_, err = c.ImageService().Create(ctx, images.Image{Name: staging, Target: bImg.Target})
	require.NoError(t, err)

	_, r = rmSkill(t, "prune-a")
	require.Equal(t, 0, r.code, r.stderr)
	// rm releases what only the image held. The image's layers are the
	// build's with file times rewritten to the epoch, so the build cache
	// holds its own blobs of skill a's layers until prune.
	var heldA []string
	for _, d := range uniqueA {
		if hasBlob(t, d) {
			heldA = append(heldA, d)
		}
	}
	t.Logf("%d of skill a's %d own image blobs still held after rm", len(heldA), len(uniqueA))

	rep := pruneSkills(t)
	t.Logf("prune after rm: %+v", rep)
	assert.Contains(t, rep.Staging, staging)
	assert.False(t, imageExists(t, staging), "staging leftovers are removed")
	assert.Contains(t, rep.KeptImages, fullName(t, baseRef), "the base image is kept, and said so")
	assert.GreaterOrEqual(t, rep.Freed.Blobs, len(heldA), "the report counts what prune freed")
	assert.Positive(t, rep.CacheRecords, "the build cache of skill a is removed")
	assert.Positive(t, rep.Freed.Blobs, "the blobs only the build cache of skill a held are freed")
	assert.Positive(t, rep.Freed.ContentBytes)

	for _, d := range uniqueA {
		assert.False(t, hasBlob(t, d), "blob %s only skill a used is freed", d)
	}
	for _, d := range layersB {
		assert.True(t, hasBlob(t, d), "layer %s of skill b survives", d)
	}
	for _, d := range baseLayers {
		assert.True(t, hasBlob(t, d), "base layer %s survives", d)
	}
	assert.True(t, imageExists(t, "atom-skill:prune-b-v1"))
	assert.True(t, imageExists(t, baseRef))

	t.Run("all keeps images runnable", func(t *testing.T) {
		rep := pruneSkills(t, "--all")
		assert.Contains(t, rep.KeptImages, fullName(t, baseRef))
		assert.Zero(t, rep.HistoryRecords, "builds keep no BuildKit history records")
		assert.Zero(t, pruneSkills(t, "--all").HistoryRecords, "none left")
		for _, d := range append(layersB, baseLayers...) {
			assert.True(t, hasBlob(t, d), "layer %s survives prune --all", d)
		}
		out, err := runIn(t, fullName(t, "atom-skill:prune-b-v1"), "python3", "-c", "import prune_shared, prune_only_b; print('ok')")
		require.NoError(t, err)
		assert.Equal(t, "ok\n", out)

		// A build after prune --all still works (from the kept base).
		_, r := install(t, srv, "prune-a", nil, "prune-shared==1.0", "prune-only-a==1.0")
		require.Equal(t, 0, r.code, r.stderr)
	})

	t.Run("keep-storage", func(t *testing.T) {
		r := sb(t, "prune", "--keep-storage", "nonsense")
		assert.Equal(t, 2, r.code)
		pruneSkills(t, "--keep-storage", "1g")
		assert.True(t, imageExists(t, "atom-skill:prune-b-v1"))
	})

	t.Run("text", func(t *testing.T) {
		r := sb(t, "prune")
		require.Equal(t, 0, r.code, r.stderr)
		t.Logf("prune says:\n%s", r.stdout)
		assert.Contains(t, r.stdout, "build cache records")
		assert.Contains(t, r.stdout, "freed ")
		assert.Contains(t, r.stdout, baseRef, "says which images it kept")
	})
}
