package engine

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/moby/buildkit/exporter/containerimage/exptypes"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestOutputsOfABuilderWithoutContainerd(t *testing.T) {
	t.Parallel()
	e := &Engine{opts: defaultOptions()}
	e.opts.builder = BuilderEmbeddedOCI
	_, _, err := e.outputs(context.Background(), Request{}, "s", "docker.io/library/s:v1")
	assert.True(t, errdefs.IsInvalidArgument(err), "no destination at all: %v", err)

	dir := t.TempDir()
	l1, err := OCILayout(filepath.Join(dir, "a"))
	require.NoError(t, err)
	l2, err := OCILayout(filepath.Join(dir, "b"))
	require.NoError(t, err)
	_, _, err = e.outputs(context.Background(), Request{Outputs: []Output{l1, l2}}, "s", "docker.io/library/s:v1")
	assert.True(t, errdefs.IsInvalidArgument(err), "two content-store exporters: %v", err)

	a, err := OCIArchive(filepath.Join(dir, "s.tar"))
	require.NoError(t, err)
	outs, entries, err := e.outputs(context.Background(), Request{Outputs: []Output{a, l1}}, "s", "docker.io/library/s:v1")
	require.NoError(t, err)
	assert.Len(t, outs, 2)
	for _, ent := range entries {
		assert.Equal(t, "docker.io/library/s:v1", ent.Attrs["name"])
		assert.Equal(t, "0", ent.Attrs["source-date-epoch"])
		assert.Equal(t, "true", ent.Attrs["rewrite-timestamp"], "every builder exports the same layer bytes")
	}
}

func TestOutputConstructorsCheckTheirInput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, err := OCIArchive(filepath.Join(dir, "missing", "x.tar"))
	assert.True(t, errdefs.IsInvalidArgument(err))
	_, err = OCIArchive("")
	assert.True(t, errdefs.IsInvalidArgument(err))
	file := filepath.Join(dir, "file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	_, err = OCILayout(file)
	assert.True(t, errdefs.IsInvalidArgument(err))
}

func TestArchiveOutputAppearsOnlyOnCommit(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "img.tar")
	o, err := OCIArchive(path)
	require.NoError(t, err)
	ent, err := o.entry(context.Background(), "x")
	require.NoError(t, err)
	w, err := ent.Output(nil)
	require.NoError(t, err)
	_, err = w.Write([]byte("tar"))
	require.NoError(t, err)
	require.NoError(t, w.Close())
	_, err = os.Stat(path)
	assert.True(t, os.IsNotExist(err), "not before commit")

	o.discard(context.Background())
	left, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Empty(t, left, "a discarded build leaves no temporary file")

	o, err = OCIArchive(path)
	require.NoError(t, err)
	ent, err = o.entry(context.Background(), "x")
	require.NoError(t, err)
	w, err = ent.Output(nil)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	require.NoError(t, o.commit(context.Background(), exported{}))
	_, err = os.Stat(path)
	assert.NoError(t, err)
}

func TestLayoutOutputNamesTheImageOnCommit(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "layout")
	o, err := OCILayout(dir)
	require.NoError(t, err)
	_, err = o.entry(context.Background(), "x")
	require.NoError(t, err)
	_, err = os.Stat(filepath.Join(dir, "index.json"))
	assert.True(t, os.IsNotExist(err), "no index entry before commit")

	manifest := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}`)
	d := digest.FromBytes(manifest)
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "blobs", "sha256", d.Encoded()), manifest, 0o644))
	// The exporter sent only the digest: the rest is read back.
	img, err := exportedImage("docker.io/library/s:v1", map[string]string{exptypes.ExporterImageDigestKey: d.String()}, nil)
	require.NoError(t, err)
	require.NoError(t, o.commit(context.Background(), img))
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	require.NoError(t, err)
	var idx ocispec.Index
	require.NoError(t, json.Unmarshal(b, &idx))
	require.Len(t, idx.Manifests, 1)
	assert.Equal(t, d, idx.Manifests[0].Digest)
	assert.Equal(t, int64(len(manifest)), idx.Manifests[0].Size)
	assert.Equal(t, ocispec.MediaTypeImageManifest, idx.Manifests[0].MediaType)
	assert.Equal(t, "docker.io/library/s:v1", idx.Manifests[0].Annotations["io.containerd.image.name"])
}

func TestExportedImageReadsTheDescriptor(t *testing.T) {
	t.Parallel()
	d := digest.FromString("m")
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: d, Size: 42}
	b, err := json.Marshal(desc)
	require.NoError(t, err)
	img, err := exportedImage("n", map[string]string{
		exptypes.ExporterImageDigestKey:     d.String(),
		exptypes.ExporterImageDescriptorKey: base64.StdEncoding.EncodeToString(b),
	}, nil)
	require.NoError(t, err)
	assert.Equal(t, desc, img.desc)
	_, err = exportedImage("n", map[string]string{}, nil)
	assert.Error(t, err)
}

func TestOutputsRefuseWhatTheyWouldClobber(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// An archive replaces a file, never a directory.
	file := filepath.Join(dir, "old.tar")
	require.NoError(t, os.WriteFile(file, []byte("old"), 0o600))
	_, err := OCIArchive(file)
	assert.NoError(t, err, "an existing file is replaced")
	_, err = OCIArchive(dir)
	assert.True(t, errdefs.IsInvalidArgument(err), "a directory: %v", err)

	// A layout goes into a new, empty or layout directory only.
	_, err = OCILayout(filepath.Join(dir, "new"))
	assert.NoError(t, err)
	empty := filepath.Join(dir, "empty")
	require.NoError(t, os.Mkdir(empty, 0o755))
	_, err = OCILayout(empty)
	assert.NoError(t, err)
	for _, f := range []string{ocispec.ImageLayoutFile, ocispec.ImageIndexFile} {
		layout := filepath.Join(dir, "layout-"+f)
		require.NoError(t, os.Mkdir(layout, 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(layout, f), []byte("{}"), 0o644))
		_, err = OCILayout(layout)
		assert.NoError(t, err, "a layout with %s", f)
	}
	other := filepath.Join(dir, "home")
	require.NoError(t, os.MkdirAll(filepath.Join(other, "src"), 0o755))
	_, err = OCILayout(other)
	assert.True(t, errdefs.IsInvalidArgument(err), "a directory of other things: %v", err)
	assert.ErrorContains(t, err, "neither empty nor an OCI image layout")
}
