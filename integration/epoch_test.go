package integration

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/pkg/archive/compression"
	"github.com/containerd/platforms"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/skillbuild/skillbuild/internal/pyindex"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// layerEntries reads the tar headers of one layer blob.
func layerEntries(t *testing.T, cs content.Store, desc ocispec.Descriptor) []*tar.Header {
	t.Helper()
	ra, err := cs.ReaderAt(context.Background(), desc)
	require.NoError(t, err)
	defer ra.Close()
	r, err := compression.DecompressStream(content.NewReader(ra))
	require.NoError(t, err)
	defer r.Close()
	var out []*tar.Header
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		require.NoError(t, err)
		out = append(out, h)
	}
}

// TestLayersHaveTheEpochAsEveryTime: every entry of every layer the
// skill adds to its base (the venv, each distribution, the lock) has the
// epoch as its time, written so by the steps themselves: the exporter
// does not rewrite the layers (which cost a decompression, a rewrite and a
// recompression of each, and a second copy of each, on every export).
func TestLayersHaveTheEpochAsEveryTime(t *testing.T) {
	srv, _ := index(t,
		pyindex.Wheel{Name: "epoch-a", Version: "1.0", Requires: []string{"epoch-b"}, ConsoleScripts: map[string]string{"epoch-a": "epoch_a:main"},
			Files: map[string]string{"epoch_a/sub/mod.py": "X = 1\n"}},
		pyindex.Wheel{Name: "epoch-b", Version: "2.0"})
	out, r := install(t, srv, "epoch-times", nil, "epoch-a==1.0")
	require.Equal(t, 0, r.code, r.stderr)

	ctx := context.Background()
	c := suiteClient(t)
	cs := c.ContentStore()
	manifest := func(ref string) ocispec.Manifest {
		img, err := c.ImageService().Get(ctx, fullName(t, ref))
		require.NoError(t, err)
		m, err := images.Manifest(ctx, cs, img.Target, platforms.Default())
		require.NoError(t, err)
		return m
	}
	base, skill := manifest(env.base), manifest(out.ImageTag)
	require.Greater(t, len(skill.Layers), len(base.Layers)+3, "the venv, two distributions and the lock above the base")
	assert.Equal(t, base.Layers, skill.Layers[:len(base.Layers)], "the base's layers as they are")

	var names []string
	for _, l := range skill.Layers[len(base.Layers):] {
		for _, h := range layerEntries(t, cs, l) {
			names = append(names, h.Name)
			assert.Zero(t, h.ModTime.Unix(), "%s in layer %s: %s", h.Name, l.Digest, h.ModTime)
		}
	}
	all := strings.Join(names, "\n")
	for _, want := range []string{"opt/skill/venv/pyvenv.cfg", "opt/skill/venv/bin/epoch-a", "epoch_a/sub/__pycache__/", "epoch_b/__init__.py", "opt/skill/requirements.lock"} {
		assert.Contains(t, all, want)
	}
}
