package layers

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/skillbuild/skillbuild/lock"
	"golang.org/x/sync/errgroup"
)

// CheckImage checks the distribution layers of a skill image
// manifest (in cs) against locks and against the venv's layer: the image's
// layers are the base's (baseLayers of them), the venv's, one per entry of
// locks in order, and the lock file's last.
func CheckImage(ctx context.Context, cs content.Store, manifest ocispec.Descriptor, baseLayers int, locks []lock.Lock, cacheDir string) error {
	if len(locks) == 0 {
		return nil
	}
	b, err := content.ReadBlob(ctx, cs, manifest)
	if err != nil {
		return fmt.Errorf("check layers: read the exported manifest %s: %w", manifest.Digest, err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("check layers: exported manifest %s: %w", manifest.Digest, err)
	}
	venv, layers, err := Split(m, baseLayers, len(locks))
	if err != nil {
		return err
	}
	lists := make([][]byte, len(layers))
	var venvList []byte
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	g.Go(func() error {
		var err error
		venvList, err = List(gctx, cs, venv, cacheDir)
		if err != nil {
			return fmt.Errorf("check layers: list the layer of the virtual environment (%s): %w", venv.Digest, err)
		}
		return nil
	})
	for i, l := range layers {
		g.Go(func() error {
			var err error
			lists[i], err = List(gctx, cs, l, cacheDir)
			if err != nil {
				return fmt.Errorf("check layers: list the layer of %s (%s): %w", Label(locks[i]), l.Digest, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return Check(venvList, locks, lists)
}

// Split picks the venv's layer and the n distribution layers
// out of an exported skill image's manifest: those between the venv's and
// the lock file's. An image of another shape is refused rather than
// guessed at.
func Split(m ocispec.Manifest, baseLayers, n int) (ocispec.Descriptor, []ocispec.Descriptor, error) {
	if !images.IsManifestType(m.MediaType) && m.MediaType != "" {
		return ocispec.Descriptor{}, nil, fmt.Errorf("check layers: the exported image is a %s, not an image manifest", m.MediaType)
	}
	if want := baseLayers + 1 + n + 1; len(m.Layers) != want {
		return ocispec.Descriptor{}, nil, fmt.Errorf("check layers: the exported image has %d layers, not the %d of its base (%d), venv, %d distribution layers and lock file",
			len(m.Layers), want, baseLayers, n)
	}
	return m.Layers[baseLayers], m.Layers[baseLayers+1 : baseLayers+1+n], nil
}

// DiffIDCount is how many layers the image config cfg describes.
func DiffIDCount(cfg []byte) (int, error) {
	var img ocispec.Image
	if err := json.Unmarshal(cfg, &img); err != nil {
		return 0, fmt.Errorf("check layers: base image config: %w", err)
	}
	return len(img.RootFS.DiffIDs), nil
}
