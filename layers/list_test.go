package layers

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/plugins/content/local"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/skillbuild/skillbuild/lock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// layerTar is a gzipped layer tar of the headers hs.
func layerTar(t *testing.T, hs ...tar.Header) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, h := range hs {
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(h.Name))
		}
		require.NoError(t, tw.WriteHeader(&h))
		if h.Typeflag == tar.TypeReg {
			_, err := tw.Write([]byte(h.Name))
			require.NoError(t, err)
		}
	}
	require.NoError(t, tw.Close())
	require.NoError(t, gz.Close())
	return buf.Bytes()
}

func dir(name string) tar.Header  { return tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: 0o755} }
func file(name string) tar.Header { return tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644} }

const sitePackages = "opt/skill/venv/lib/python3.11/site-packages/"

// TestListTarListsWhatTheLayerDoes shows the listing of a layer blob in
// listlayers.py's format, with whiteouts and opaque markers listed at the
// paths they delete or hide.
func TestListTarListsWhatTheLayerDoes(t *testing.T) {
	t.Parallel()
	blob := layerTar(t,
		dir("opt/"), dir("./opt/skill/"), file(sitePackages+"a.py"),
		tar.Header{Name: "opt/skill/venv/bin/a", Typeflag: tar.TypeSymlink, Linkname: "x"},
		tar.Header{Name: "opt/skill/venv/bin/b", Typeflag: tar.TypeLink, Linkname: sitePackages + "a.py"},
		tar.Header{Name: "opt/skill/venv/dev", Typeflag: tar.TypeChar},
		file(sitePackages+".wh.gone.py"),
		file(sitePackages+"pkg/.wh..wh..opq"),
	)
	got, err := listTar(bytes.NewReader(blob))
	require.NoError(t, err)
	want := `["d","/opt"]
["d","/opt/skill"]
["f","/` + sitePackages + `a.py"]
["l","/opt/skill/venv/bin/a"]
["f","/opt/skill/venv/bin/b"]
["o","/opt/skill/venv/dev"]
["o","/` + sitePackages + `gone.py"]
["o","/` + sitePackages + `pkg"]
`
	assert.Equal(t, want, string(got))
	entries, err := ParseList(got)
	require.NoError(t, err)
	assert.Len(t, entries, 8)
}

func TestListTarPlainAndBroken(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	require.NoError(t, tw.WriteHeader(&tar.Header{Name: "opt/", Typeflag: tar.TypeDir}))
	require.NoError(t, tw.Close())
	got, err := listTar(bytes.NewReader(buf.Bytes()))
	require.NoError(t, err)
	assert.Equal(t, "[\"d\",\"/opt\"]\n", string(got), "an uncompressed layer")

	blob := layerTar(t, file(sitePackages+"a.py"))
	_, err = listTar(bytes.NewReader(blob[:len(blob)/2]))
	assert.Error(t, err, "a truncated layer")
}

// image writes a skill image into cs: a base layer, the venv's, the
// distribution layers and the lock file's, and returns its manifest.
func image(t *testing.T, cs content.Store, dists ...[]byte) ocispec.Descriptor {
	t.Helper()
	put := func(b []byte, mt string) ocispec.Descriptor {
		d := ocispec.Descriptor{MediaType: mt, Digest: digest.FromBytes(b), Size: int64(len(b))}
		require.NoError(t, content.WriteBlob(context.Background(), cs, d.Digest.String(), bytes.NewReader(b), d))
		return d
	}
	layers := []ocispec.Descriptor{
		put(layerTar(t, file("usr/bin/python3")), ocispec.MediaTypeImageLayerGzip),
		put(layerTar(t, dir("opt/"), dir("opt/skill/"), dir("opt/skill/venv/"), file("opt/skill/venv/pyvenv.cfg"), dir("opt/skill/venv/bin/"),
			file("opt/skill/venv/bin/activate"), tar.Header{Name: "opt/skill/venv/bin/python", Typeflag: tar.TypeSymlink, Linkname: "/usr/bin/python3"},
			dir(sitePackages)), ocispec.MediaTypeImageLayerGzip),
	}
	for _, d := range dists {
		layers = append(layers, put(d, ocispec.MediaTypeImageLayerGzip))
	}
	layers = append(layers, put(layerTar(t, file("opt/skill/requirements.lock")), ocispec.MediaTypeImageLayerGzip))
	m, err := json.Marshal(ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Layers: layers,
		Config: put([]byte("{}"), ocispec.MediaTypeImageConfig)})
	require.NoError(t, err)
	return put(m, ocispec.MediaTypeImageManifest)
}

func distLayer(t *testing.T, name string, files ...string) []byte {
	t.Helper()
	hs := []tar.Header{dir(sitePackages), dir(sitePackages + name + "-1.0.dist-info/")}
	for _, f := range files {
		hs = append(hs, file(sitePackages+f))
	}
	return layerTar(t, hs...)
}

// TestCheckExportedLayers checks an exported image's distribution layers:
// the lock file's layer and the base's are not theirs, two layers writing
// one file fail with the paths and names, a layer deleting another's file
// counts as writing it, and the venv's layer is compared too: a
// distribution may share its directories, never replace or delete its
// files.
func TestCheckExportedLayers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cs, err := local.NewStore(t.TempDir())
	require.NoError(t, err)
	locks := []lock.Lock{{{Name: "a", Version: "1.0"}}, {{Name: "b", Version: "1.0"}}}

	ok := image(t, cs, distLayer(t, "a", "a.py"), distLayer(t, "b", "b.py"))
	require.NoError(t, CheckImage(ctx, cs, ok, 1, locks, ""))

	for name, b := range map[string][]byte{
		"same file": distLayer(t, "b", "a.py"),
		"deletes":   distLayer(t, "b", ".wh.a.py"),
	} {
		err = CheckImage(ctx, cs, image(t, cs, distLayer(t, "a", "a.py"), b), 1, locks, "")
		var se *Error
		require.ErrorAs(t, err, &se, name)
		assert.Contains(t, se.Error(), "/"+sitePackages+"a.py is written by both a==1.0 and b==1.0", name)
	}

	for name, tt := range map[string]struct {
		layer []byte
		want  string
	}{
		"the venv's config": {layerTar(t, dir(sitePackages), dir(sitePackages+"b-1.0.dist-info/"), file("opt/skill/venv/pyvenv.cfg")),
			"b==1.0 replaces /opt/skill/venv/pyvenv.cfg"},
		"the venv's interpreter": {layerTar(t, dir(sitePackages+"b-1.0.dist-info/"), file("opt/skill/venv/bin/python")),
			"b==1.0 replaces /opt/skill/venv/bin/python"},
		"deletes the venv's activate": {layerTar(t, dir(sitePackages+"b-1.0.dist-info/"), file("opt/skill/venv/bin/.wh.activate")),
			"b==1.0 replaces /opt/skill/venv/bin/activate"},
	} {
		err = CheckImage(ctx, cs, image(t, cs, distLayer(t, "a", "a.py"), tt.layer), 1, locks, "")
		var se *Error
		require.ErrorAs(t, err, &se, name)
		assert.Contains(t, se.Error(), "replaces or deletes the virtual environment's own files", name)
		assert.Contains(t, se.Error(), tt.want, name)
	}

	err = CheckImage(ctx, cs, image(t, cs, distLayer(t, "a", "a.py")), 1, locks, "")
	assert.ErrorContains(t, err, "has 4 layers, not the 5 of its base (1), venv, 2 distribution layers and lock file")
}

// TestLayerListCache shows a blob listed once: the next build reads its
// list from the cache (the blob itself is no longer read), and a blob
// that does not match its digest is refused, not listed.
func TestLayerListCache(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	root := t.TempDir()
	cs, err := local.NewStore(filepath.Join(root, "content"))
	require.NoError(t, err)
	cache := filepath.Join(root, "lists")
	blob := distLayer(t, "a", "a.py")
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromBytes(blob), Size: int64(len(blob))}
	require.NoError(t, content.WriteBlob(ctx, cs, "a", bytes.NewReader(blob), desc))

	first, err := List(ctx, cs, desc, cache)
	require.NoError(t, err)
	require.NoError(t, cs.Delete(ctx, desc.Digest))
	again, err := List(ctx, cs, desc, cache)
	require.NoError(t, err, "answered from the cache")
	assert.Equal(t, first, again)

	// A store answering other bytes for a digest is caught.
	forged := ocispec.Descriptor{MediaType: desc.MediaType, Digest: digest.FromString("other"), Size: desc.Size}
	fake := filepath.Join(root, "content", "blobs", "sha256", forged.Digest.Encoded())
	require.NoError(t, os.WriteFile(fake, blob, 0o644))
	_, err = List(ctx, cs, forged, cache)
	assert.ErrorContains(t, err, "does not match its digest")
	_, err = os.Stat(filepath.Join(cache, "sha256-"+forged.Digest.Encoded()))
	assert.True(t, os.IsNotExist(err), "nothing cached for it")

	// Lists nobody used for the age limit go.
	require.NoError(t, PruneLists(cache, 0))
	entries, err := os.ReadDir(cache)
	require.NoError(t, err)
	assert.Empty(t, entries)
}

// countingProvider counts the ReadAt calls that reach a content store:
// each is a containerd round trip through its content proxy.
type countingProvider struct {
	content.Provider
	reads int
}

func (c *countingProvider) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	ra, err := c.Provider.ReaderAt(ctx, desc)
	return &countingReaderAt{ReaderAt: ra, c: c}, err
}

type countingReaderAt struct {
	content.ReaderAt
	c *countingProvider
}

func (r *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	r.c.reads++
	return r.ReaderAt.ReadAt(p, off)
}

// TestLayerListReadsInLargeChunks: a layer blob is read in a few large
// reads, not one round trip per few kilobytes.
func TestLayerListReadsInLargeChunks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cs, err := local.NewStore(t.TempDir())
	require.NoError(t, err)
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	data := make([]byte, 1<<10)
	for i := range 200 {
		_, err := rand.Read(data) // incompressible: the blob is large
		require.NoError(t, err)
		require.NoError(t, tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("%sm%03d.py", sitePackages, i), Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(data))}))
		_, err = tw.Write(data)
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	require.NoError(t, gz.Close())
	blob := buf.Bytes()
	require.Greater(t, len(blob), 128<<10)
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromBytes(blob), Size: int64(len(blob))}
	require.NoError(t, content.WriteBlob(ctx, cs, "big", bytes.NewReader(blob), desc))
	cp := &countingProvider{Provider: cs}
	list, err := List(ctx, cp, desc, "")
	require.NoError(t, err)
	assert.Equal(t, 200, bytes.Count(list, []byte("\n")))
	assert.LessOrEqual(t, cp.reads, 3, "reads of a %d-byte blob", len(blob))
}

// TestListTarHostileNames: names that climb out of the root, are
// absolute, or carry newlines and quotes are listed at the path they
// would reach inside the image, one JSON line each; a whiteout of the
// root's contents lists the root.
func TestListTarHostileNames(t *testing.T) {
	t.Parallel()
	blob := layerTar(t,
		file("../../etc/passwd"),
		file("/opt/skill/venv/bin/python"),
		file(sitePackages+"x\n[\"f\",\"/etc/shadow\"]"),
		file("./.wh..wh..opq"),
		file("opt/.wh."),
	)
	got, err := listTar(bytes.NewReader(blob))
	require.NoError(t, err)
	want := `["f","/etc/passwd"]
["f","/opt/skill/venv/bin/python"]
["f","/` + sitePackages + `x\n[\"f\",\"/etc/shadow\"]"]
["o","/"]
["o","/opt"]
`
	assert.Equal(t, want, string(got))
	entries, err := ParseList(got)
	require.NoError(t, err)
	assert.Len(t, entries, 5, "the name with a newline is one entry")
}
