package engine

import (
	"archive/tar"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func index(t *testing.T, names ...string) ([]byte, []digest.Digest) {
	t.Helper()
	var idx ocispec.Index
	var ds []digest.Digest
	for _, n := range names {
		d := digest.FromString(n)
		ds = append(ds, d)
		desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: d, Size: 1}
		if n != "" {
			desc.Annotations = map[string]string{"io.containerd.image.name": n}
		}
		idx.Manifests = append(idx.Manifests, desc)
	}
	b, err := json.Marshal(idx)
	require.NoError(t, err)
	return b, ds
}

func TestPickImage(t *testing.T) {
	t.Parallel()
	b, ds := index(t, "docker.io/library/python:3.11-slim", "localhost/skillbuild/python:3.11-bookworm")
	d, err := pickImage(b, "python:3.11-slim")
	require.NoError(t, err)
	assert.Equal(t, ds[0], d, "found by its normalized name")
	d, err = pickImage(b, "localhost/skillbuild/python:3.11-bookworm")
	require.NoError(t, err)
	assert.Equal(t, ds[1], d)
	_, err = pickImage(b, "python:3.12")
	assert.True(t, errdefs.IsNotFound(err))
	assert.Contains(t, err.Error(), "localhost/skillbuild/python:3.11-bookworm", "the names it has are listed")

	one, ds := index(t, "")
	d, err = pickImage(one, "anything:1")
	require.NoError(t, err)
	assert.Equal(t, ds[0], d, "an unnamed single image is the base")
}

func TestTarStoreServesBlobsInPlace(t *testing.T) {
	t.Parallel()
	blob := []byte("layer bytes")
	bd := digest.FromBytes(blob)
	idx, _ := index(t, "docker.io/library/python:3.11-slim")
	file := filepath.Join(t.TempDir(), "base.tar")
	f, err := os.Create(file)
	require.NoError(t, err)
	tw := tar.NewWriter(f)
	for _, e := range []struct {
		name string
		data []byte
	}{{"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)}, {"index.json", idx}, {"blobs/sha256/" + bd.Encoded(), blob}} {
		require.NoError(t, tw.WriteHeader(&tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.data)), Typeflag: tar.TypeReg}))
		_, err := tw.Write(e.data)
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	require.NoError(t, f.Close())

	cs, pinned, closeFn, err := baseSource{archive: file}.open("python:3.11-slim")
	require.NoError(t, err)
	defer closeFn()
	assert.Equal(t, "docker.io/library/python@"+digest.FromString("docker.io/library/python:3.11-slim").String(), pinned)
	info, err := cs.Info(context.Background(), bd)
	require.NoError(t, err)
	assert.Equal(t, int64(len(blob)), info.Size)
	ra, err := cs.ReaderAt(context.Background(), ocispec.Descriptor{Digest: bd, Size: info.Size})
	require.NoError(t, err)
	got, err := io.ReadAll(io.NewSectionReader(ra, 0, info.Size))
	require.NoError(t, err)
	assert.Equal(t, blob, got)
	_, err = cs.Info(context.Background(), digest.FromString("other"))
	assert.True(t, errdefs.IsNotFound(err))

	_, _, _, err = baseSource{archive: filepath.Join(filepath.Dir(file), "index.json")}.open("x")
	assert.Error(t, err)
}
