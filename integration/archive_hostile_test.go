package integration

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ctd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/skillbuild/skillbuild/internal/peakrss"
	"github.com/skillbuild/skillbuild/internal/pyindex"
	"github.com/skillbuild/skillbuild/skill/api"
	"github.com/skillbuild/skillbuild/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// An image exported by `ctr images export` loads: with --all-platforms the
// archive is whole and the image keeps its SBOM and verdict; without it
// (ctr's default) the archive lacks the attestation manifests its index
// references, and the image loads without them, under the same digest.
func TestLoadCtrExport(t *testing.T) {
	registries(t) // the second containerd
	srv, _ := index(t, pyindex.Wheel{Name: "ctr-exported", Version: "1.0"})
	out, r := install(t, srv, "ctrexp", nil, "ctr-exported")
	require.Equal(t, 0, r.code, r.stderr)
	name := fullName(t, "atom-skill:ctrexp-v1")

	dir := t.TempDir()
	for _, tt := range []struct {
		ns           string
		allPlatforms bool
	}{{"ctr-all-platforms", true}, {"ctr-default", false}} {
		t.Run(tt.ns, func(t *testing.T) {
			file := filepath.Join(dir, tt.ns+".tar")
			args := []string{"--address", env.socket, "--namespace", namespace, "images", "export"}
			if tt.allPlatforms {
				args = append(args, "--all-platforms")
			}
			b, err := exec.Command("ctr", append(args, file, name)...).CombinedOutput()
			require.NoError(t, err, "%s", b)

			r := sbHost2(t, tt.ns, "load", "--json", file)
			require.Equal(t, 0, r.code, r.stderr)
			got := decodeJSON[api.LoadResult](t, r)
			require.Len(t, got, 1)
			assert.Equal(t, out.Digest, got[0].Digest, "the image's own digest")
			assert.Contains(t, got[0].Names, name)

			r = sbHost2(t, tt.ns, "inspect", "--json", "ctrexp")
			require.Equal(t, 0, r.code, r.stderr)
			insp := decodeJSON[api.InspectResult](t, r)
			if tt.allPlatforms {
				assert.Equal(t, "passed", verdictOf(t, insp).Result)
				assert.Contains(t, string(insp.SBOM), "pkg:pypi/ctr-exported@1.0")
			} else {
				assert.Empty(t, verdictOf(t, insp).Result, "no verdict came with the image")
				assert.Empty(t, insp.Attestations)
			}
		})
	}
}

// ociTar writes an OCI image layout tar of index (as index.json, written
// as is) and blobs.
func ociTar(t *testing.T, path string, index []byte, blobs ...[]byte) {
	t.Helper()
	f, err := os.Create(path)
	require.NoError(t, err)
	defer f.Close()
	tw := tar.NewWriter(f)
	add := func(name string, b []byte) {
		require.NoError(t, tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(b))}))
		_, err := tw.Write(b)
		require.NoError(t, err)
	}
	add(ocispec.ImageLayoutFile, []byte(`{"imageLayoutVersion":"1.0.0"}`))
	for _, b := range blobs {
		add("blobs/sha256/"+digest.FromBytes(b).Encoded(), b)
	}
	add(ocispec.ImageIndexFile, index)
	require.NoError(t, tw.Close())
}

// tinyImage is a valid single-layer image: its blobs and its manifest's
// descriptor, built after edit changed the manifest.
func tinyImage(t *testing.T, edit func(*ocispec.Manifest)) ([][]byte, ocispec.Descriptor) {
	t.Helper()
	var layer bytes.Buffer
	gz := gzip.NewWriter(&layer)
	tw := tar.NewWriter(gz)
	require.NoError(t, tw.WriteHeader(&tar.Header{Name: "hello", Typeflag: tar.TypeReg, Mode: 0o644, Size: 2}))
	_, err := tw.Write([]byte("hi"))
	require.NoError(t, err)
	require.NoError(t, tw.Close())
	require.NoError(t, gz.Close())
	var diff bytes.Buffer
	zr, err := gzip.NewReader(bytes.NewReader(layer.Bytes()))
	require.NoError(t, err)
	_, err = diff.ReadFrom(zr)
	require.NoError(t, err)
	cfg, err := json.Marshal(ocispec.Image{Platform: platforms.DefaultSpec(), RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{digest.FromBytes(diff.Bytes())}}})
	require.NoError(t, err)
	mf := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest,
		Config: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(cfg), Size: int64(len(cfg))},
		Layers: []ocispec.Descriptor{{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromBytes(layer.Bytes()), Size: int64(layer.Len())}}}
	mf.SchemaVersion = 2
	if edit != nil {
		edit(&mf)
	}
	mb, err := json.Marshal(mf)
	require.NoError(t, err)
	return [][]byte{layer.Bytes(), cfg, mb}, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(mb), Size: int64(len(mb))}
}

// indexJSON is an index.json naming m name, with pad bytes of padding in
// an annotation.
func indexJSON(t *testing.T, m ocispec.Descriptor, name string, pad int) []byte {
	t.Helper()
	m.Annotations = map[string]string{images.AnnotationImageName: name}
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{m}}
	idx.SchemaVersion = 2
	if pad > 0 {
		idx.Annotations = map[string]string{"padding": strings.Repeat("x", pad)}
	}
	b, err := json.Marshal(idx)
	require.NoError(t, err)
	return b
}

// host2Client is a client of the second containerd in namespace ns.
func host2Client(t *testing.T, ns string) *ctd.Client {
	t.Helper()
	c, err := ctd.New(regs.host2.Socket, ctd.WithDefaultNamespace(ns))
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// assertNothingLeft checks that namespace ns of the second containerd
// holds no image, lease, content or snapshot.
func assertNothingLeft(t *testing.T, ns string) {
	t.Helper()
	ctx := context.Background()
	c := host2Client(t, ns)
	imgs, err := c.ImageService().List(ctx)
	require.NoError(t, err)
	var names []string
	for _, img := range imgs {
		names = append(names, img.Name)
	}
	assert.Empty(t, names, "a failed load left names")
	ls, err := c.LeasesService().List(ctx)
	require.NoError(t, err)
	assert.Empty(t, ls, "a failed load left leases")
	var blobs []string
	require.NoError(t, c.ContentStore().Walk(ctx, func(info content.Info) error {
		blobs = append(blobs, info.Digest.String())
		return nil
	}))
	assert.Empty(t, blobs, "a failed load left content")
	u, err := store.DiskUsage(ctx, c, "overlayfs")
	require.NoError(t, err)
	assert.Zero(t, u.Snapshots, "a failed load left snapshots")
}

// Hostile archives are refused with exit 2, quickly and in little memory,
// and leave nothing behind: no name (not even the one the archive
// records), no lease, and no content or snapshot once the command exited
// (a failed load has containerd collect what it brought in). A 300 MiB index.json is
// refused by its size before it is read; a descriptor claiming 2^62 bytes
// before anything is allocated for it.
func TestLoadRefusesHostileArchives(t *testing.T) {
	registries(t)
	dir := t.TempDir()
	const huge = int64(1) << 62
	for _, tt := range []struct {
		ns   string
		make func(path string)
		want string
	}{
		{"huge-index", func(path string) {
			blobs, m := tinyImage(t, nil)
			ociTar(t, path, indexJSON(t, m, "localhost/hostile/huge-index:1", 300<<20), blobs...)
		}, "index.json is 314573"},
		{"huge-manifest-descriptor", func(path string) {
			blobs, m := tinyImage(t, nil)
			m.Size = huge
			ociTar(t, path, indexJSON(t, m, "localhost/hostile/huge-manifest:1", 0), blobs...)
		}, "claims 4611686018427387904 bytes, more than the 4194304 an import reads"},
		{"huge-layer-descriptor", func(path string) {
			blobs, m := tinyImage(t, func(m *ocispec.Manifest) { m.Layers[0].Size = huge })
			ociTar(t, path, indexJSON(t, m, "localhost/hostile/huge-layer:1", 0), blobs...)
		}, "claims 4611686018427387904 bytes, the archive's blob has"},
		{"missing-layer", func(path string) {
			blobs, m := tinyImage(t, nil)
			ociTar(t, path, indexJSON(t, m, "localhost/hostile/missing-layer:1", 0), blobs[1:]...)
		}, "the archive lacks " + ocispec.MediaTypeImageLayerGzip},
	} {
		t.Run(tt.ns, func(t *testing.T) {
			file := filepath.Join(dir, tt.ns+".tar")
			tt.make(file)
			cmd := exec.Command(env.bin, "--address", regs.host2.Socket, "--namespace", tt.ns, "--root", filepath.Join(env.dir, "host2-root"), "load", file)
			cmd.Env = cleanEnv()
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			read, err := peakrss.Wrap(cmd, env.peak)
			require.NoError(t, err)
			start := time.Now()
			err = cmd.Run()
			took := time.Since(start)
			u, rerr := read()
			require.NoError(t, rerr)
			var ee *exec.ExitError
			require.True(t, errors.As(err, &ee), "load must fail: %v; %s", err, stderr.String())
			assert.Equal(t, 2, ee.ExitCode(), stderr.String())
			assert.Contains(t, stderr.String(), tt.want)
			t.Logf("refused in %s with a peak RSS of %d KiB", took.Round(time.Millisecond), u.MaxRSSKiB)
			assert.Less(t, u.MaxRSSKiB, int64(150<<10), "skillbuild's peak RSS (KiB)")
			assertNothingLeft(t, tt.ns)
		})
	}
}

// SetTags sets names all or none, and WithoutMoving keeps a name that
// points elsewhere: the import's content stays unnamed, and Release lets
// it go.
func TestStoreSetTagsAllOrNothing(t *testing.T) {
	registries(t)
	ctx := context.Background()
	const ns = "set-tags"
	c := host2Client(t, ns)
	file := filepath.Join(t.TempDir(), "tiny.tar")
	blobs, m := tinyImage(t, nil)
	ociTar(t, file, indexJSON(t, m, "localhost/tags/tiny:1", 0), blobs...)
	f, err := os.Open(file)
	require.NoError(t, err)
	defer f.Close()
	a, err := store.ReadOCIArchive(ctx, c, f, "overlayfs")
	require.NoError(t, err)
	require.Len(t, a.Images, 1)
	img := a.Images[0]
	assert.Equal(t, "localhost/tags/tiny:1", img.Name)
	assert.Equal(t, m.Digest, img.Target.Digest)
	is := c.ImageService()
	_, err = is.Get(ctx, img.Name)
	assert.True(t, errdefs.IsNotFound(err), "reading an archive names nothing: %v", err)

	other, err := is.Create(ctx, images.Image{Name: "localhost/tags/taken:1", Target: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("other"), Size: 1}})
	require.NoError(t, err)
	recs := []images.Image{{Name: "localhost/tags/new:1", Target: img.Target}, {Name: other.Name, Target: img.Target}}
	_, err = store.SetTags(ctx, c, recs, store.WithoutMoving())
	require.Error(t, err)
	assert.ErrorContains(t, err, "localhost/tags/taken:1 already names "+other.Target.Digest.String())
	_, err = is.Get(ctx, "localhost/tags/new:1")
	assert.Error(t, err, "the name set before the refused one was taken back")
	got, err := is.Get(ctx, other.Name)
	require.NoError(t, err)
	assert.Equal(t, other.Target.Digest, got.Target.Digest)

	tags, err := store.SetTags(ctx, c, recs)
	require.NoError(t, err)
	got, err = is.Get(ctx, other.Name)
	require.NoError(t, err)
	assert.Equal(t, img.Target.Digest, got.Target.Digest, "moved without WithoutMoving")
	require.NoError(t, tags.Rollback(ctx))
	got, err = is.Get(ctx, other.Name)
	require.NoError(t, err)
	assert.Equal(t, other.Target.Digest, got.Target.Digest, "rolled back to its old target")
	_, err = is.Get(ctx, "localhost/tags/new:1")
	assert.Error(t, err)

	require.NoError(t, is.Delete(ctx, other.Name))
	require.NoError(t, a.Release(ctx))
	ls, err := c.LeasesService().List(ctx)
	require.NoError(t, err)
	assert.Empty(t, ls)
	require.NoError(t, store.CollectGarbage(ctx, c))
	assertNothingLeft(t, ns)
}
