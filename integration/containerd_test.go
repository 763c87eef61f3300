package integration

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	ctd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/stretchr/testify/require"
)

// suiteClient connects to the suite's containerd in the suite's namespace.
func suiteClient(t *testing.T) *ctd.Client {
	t.Helper()
	c, err := ctd.New(env.socket, ctd.WithDefaultNamespace(namespace), ctd.WithTimeout(10*time.Second))
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

func fullName(t *testing.T, ref string) string {
	t.Helper()
	named, err := reference.ParseNormalizedNamed(ref)
	require.NoError(t, err)
	return named.String()
}

// imageExists reports whether containerd has an image named ref.
func imageExists(t *testing.T, ref string) bool {
	t.Helper()
	_, err := suiteClient(t).ImageService().Get(context.Background(), fullName(t, ref))
	if errdefs.IsNotFound(err) {
		return false
	}
	require.NoError(t, err)
	return true
}

// imageConfig reads an image's OCI config from containerd's content store.
func imageConfig(t *testing.T, ref string) ocispec.Image {
	t.Helper()
	ctx := context.Background()
	c := suiteClient(t)
	img, err := c.GetImage(ctx, fullName(t, ref))
	require.NoError(t, err)
	desc, err := img.Config(ctx)
	require.NoError(t, err)
	b, err := content.ReadBlob(ctx, c.ContentStore(), desc)
	require.NoError(t, err)
	var cfg ocispec.Image
	require.NoError(t, json.Unmarshal(b, &cfg))
	return cfg
}

// imageLabel is one label of an image's config.
func imageLabel(t *testing.T, ref, key string) string {
	t.Helper()
	return imageConfig(t, ref).Config.Labels[key]
}
