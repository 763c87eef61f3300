package store

import (
	"archive/tar"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	ctd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/pkg/archive"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	"github.com/distribution/reference"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ImportedImage describes an image brought into containerd's store.
type ImportedImage struct {
	Name   string        `json:"name"`
	Digest digest.Digest `json:"digest"`
}

// pythonPaths are where a usable interpreter may live in a base image.
var pythonPaths = []string{"usr/local/bin/python3", "usr/bin/python3"}

// ImportRootfs makes a single-layer OCI image from a root filesystem
// directory, stores it in containerd under ref and unpacks it for the
// snapshotter. The directory must contain a python3 with the venv module.
func ImportRootfs(ctx context.Context, c *ctd.Client, dir, ref, snapshotter string) (ImportedImage, error) {
	name, err := normalizeRef(ref)
	if err != nil {
		return ImportedImage{}, err
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return ImportedImage{}, fmt.Errorf("rootfs %s is not a directory: %w", dir, errdefs.ErrInvalidArgument)
	}
	if err := checkPython(dir); err != nil {
		return ImportedImage{}, err
	}
	ctx, done, err := c.WithLease(ctx)
	if err != nil {
		return ImportedImage{}, err
	}
	defer done(context.WithoutCancel(ctx)) //nolint:errcheck

	cs := c.ContentStore()
	layer, diffID, err := writeRootfsLayer(ctx, cs, dir)
	if err != nil {
		return ImportedImage{}, fmt.Errorf("write layer from %s: %w", dir, err)
	}
	// The epoch, like the skill images: the same root filesystem gives the
	// same base image on every runner, so build caches (a registry cache
	// exported by another runner included) apply across them.
	now := time.Unix(0, 0).UTC()
	img := ocispec.Image{
		Created:  &now,
		Platform: ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH},
		Config: ocispec.ImageConfig{
			Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"},
			Cmd: []string{"python3"},
		},
		RootFS:  ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{diffID}},
		History: []ocispec.History{{Created: &now, CreatedBy: "skillbuild base import --rootfs", Comment: filepath.Base(dir)}},
	}
	cfgDesc, err := writeJSON(ctx, cs, ocispec.MediaTypeImageConfig, img, nil)
	if err != nil {
		return ImportedImage{}, err
	}
	mf := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    cfgDesc,
		Layers:    []ocispec.Descriptor{layer},
	}
	mfDesc, err := writeJSON(ctx, cs, ocispec.MediaTypeImageManifest, mf, map[string]string{
		"containerd.io/gc.ref.content.config": cfgDesc.Digest.String(),
		"containerd.io/gc.ref.content.l.0":    layer.Digest.String(),
	})
	if err != nil {
		return ImportedImage{}, err
	}
	if err := unpackAndTag(ctx, c, name, mfDesc, snapshotter); err != nil {
		return ImportedImage{}, err
	}
	return ImportedImage{Name: name, Digest: mfDesc.Digest}, nil
}

// ImportOCIArchive imports an OCI (or docker save) tar archive. With a
// non-empty ref, the archive's single image is tagged ref; otherwise the
// names recorded in the archive are used.
func ImportOCIArchive(ctx context.Context, c *ctd.Client, r io.Reader, ref, snapshotter string) ([]ImportedImage, error) {
	var name string
	if ref != "" {
		n, err := normalizeRef(ref)
		if err != nil {
			return nil, err
		}
		name = n
	}
	ctx, done, err := c.WithLease(ctx)
	if err != nil {
		return nil, err
	}
	defer done(context.WithoutCancel(ctx)) //nolint:errcheck

	opts := []ctd.ImportOpt{ctd.WithImportPlatform(withAttestations{platforms.Default()})}
	if name != "" {
		// Import under a digest name, tag below after unpacking.
		opts = append(opts, ctd.WithDigestRef(func(d digest.Digest) string { return "import-tmp@" + d.String() }),
			ctd.WithSkipDigestRef(func(string) bool { return false }),
			ctd.WithImageRefTranslator(func(string) string { return "" }))
	}
	var before map[string]images.Image
	if name != "" {
		// containerd's import names images after the archive's own
		// annotations too; with --name, those names must not appear or
		// move, so remember what the store had.
		before = map[string]images.Image{}
		list, err := c.ImageService().List(ctx)
		if err != nil {
			return nil, err
		}
		for _, img := range list {
			before[img.Name] = img
		}
	}
	imgs, err := c.Import(ctx, r, opts...)
	if err != nil {
		return nil, fmt.Errorf("import archive: %w", err)
	}
	if name != "" {
		// The archive must hold exactly one image for --name to mean
		// anything; every name the import made is undone.
		// The name asked for is undone too unless it ends up tagged.
		targets := map[digest.Digest]images.Image{}
		tagged := false
		for _, img := range imgs {
			targets[img.Target.Digest] = img
			defer func(made string) {
				if made != name || !tagged {
					restoreName(context.WithoutCancel(ctx), c, made, before)
				}
			}(img.Name)
		}
		if len(targets) != 1 {
			return nil, fmt.Errorf("archive holds %d images; import it without --name to keep their own names: %w", len(targets), errdefs.ErrInvalidArgument)
		}
		for _, img := range targets {
			if err := unpackAndTag(ctx, c, name, img.Target, snapshotter); err != nil {
				return nil, err
			}
			tagged = true
			return []ImportedImage{{Name: name, Digest: img.Target.Digest}}, nil
		}
	}
	var out []ImportedImage
	for _, img := range imgs {
		if img.Name == "" {
			continue
		}
		if err := unpackAndTag(ctx, c, img.Name, img.Target, snapshotter); err != nil {
			return out, err
		}
		out = append(out, ImportedImage{Name: img.Name, Digest: img.Target.Digest})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("archive holds no named image; pass --name: %w", errdefs.ErrInvalidArgument)
	}
	return out, nil
}

// withAttestations matches a platform's manifests and the attestation
// manifests (platform unknown/unknown) that BuildKit and skillbuild put
// next to them in an index, so that an import keeps an image's SBOM and
// verdict.
type withAttestations struct{ platforms.MatchComparer }

func (m withAttestations) Match(p ocispec.Platform) bool {
	return m.MatchComparer.Match(p) || (p.OS == "unknown" && p.Architecture == "unknown")
}

// ImportOCILayout imports an OCI image layout directory.
func ImportOCILayout(ctx context.Context, c *ctd.Client, dir, ref, snapshotter string) ([]ImportedImage, error) {
	if _, err := os.Stat(filepath.Join(dir, "index.json")); err != nil {
		return nil, fmt.Errorf("%s is not an OCI layout (no index.json): %w", dir, errdefs.ErrInvalidArgument)
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(tarDir(pw, dir)) }()
	defer pr.Close()
	return ImportOCIArchive(ctx, c, pr, ref, snapshotter)
}

// restoreName puts an image name back as it was before an import: gone
// if it did not exist, at its old target if the import moved it.
func restoreName(ctx context.Context, c *ctd.Client, name string, before map[string]images.Image) {
	if old, ok := before[name]; ok {
		c.ImageService().Update(ctx, old) //nolint:errcheck
		return
	}
	c.ImageService().Delete(ctx, name) //nolint:errcheck
}

// unpackAndTag unpacks the image for the snapshotter and only then points
// name at it, so a name never refers to an image that cannot run.
func unpackAndTag(ctx context.Context, c *ctd.Client, name string, target ocispec.Descriptor, snapshotter string) error {
	tmp := images.Image{Name: name, Target: target}
	if err := ctd.NewImage(c, tmp).Unpack(ctx, snapshotter); err != nil {
		return fmt.Errorf("unpack %s: %w", name, err)
	}
	return SetTag(ctx, c, images.Image{Name: name, Target: target, Labels: map[string]string{}})
}

// SetTag creates or moves the image record img (tag last: callers set it
// only once everything it points to is in the store).
func SetTag(ctx context.Context, c *ctd.Client, img images.Image) error {
	is := c.ImageService()
	if _, err := is.Create(ctx, img); err != nil {
		if !errdefs.IsAlreadyExists(err) {
			return fmt.Errorf("tag %s: %w", img.Name, err)
		}
		if _, err := is.Update(ctx, img); err != nil {
			return fmt.Errorf("tag %s: %w", img.Name, err)
		}
	}
	return nil
}

func normalizeRef(ref string) (string, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return "", fmt.Errorf("image reference %q: %v: %w", ref, err, errdefs.ErrInvalidArgument)
	}
	return reference.TagNameOnly(named).String(), nil
}

func checkPython(dir string) error {
	for _, p := range pythonPaths {
		if _, err := os.Stat(filepath.Join(dir, p)); err == nil {
			return nil
		}
		// Absolute symlinks point into the rootfs, not the host.
		if target, err := os.Readlink(filepath.Join(dir, p)); err == nil && filepath.IsAbs(target) {
			if _, err := os.Stat(filepath.Join(dir, target)); err == nil {
				return nil
			}
		}
	}
	return fmt.Errorf("rootfs %s has no python3 (looked for /%s); build one with e.g. `debootstrap --variant=minbase --include=python3,python3-venv,python3-pip bookworm DIR`: %w",
		dir, strings.Join(pythonPaths, ", /"), errdefs.ErrInvalidArgument)
}

func writeRootfsLayer(ctx context.Context, cs content.Store, dir string) (ocispec.Descriptor, digest.Digest, error) {
	empty, err := os.MkdirTemp("", "skillbuild-empty-")
	if err != nil {
		return ocispec.Descriptor{}, "", err
	}
	defer os.RemoveAll(empty)

	ref := "skillbuild-rootfs-" + digest.FromString(dir + time.Now().String()).Encoded()[:16]
	w, err := content.OpenWriter(ctx, cs, content.WithRef(ref))
	if err != nil {
		return ocispec.Descriptor{}, "", err
	}
	defer w.Close()
	// The layer stays uncompressed: gzip would triple the import time of a
	// 300 MB rootfs, and the layer is pushed once per registry (every skill
	// image shares it), as stored.
	diffID := digest.Canonical.Digester()
	counter := &countWriter{}
	if err := archive.WriteDiff(ctx, io.MultiWriter(w, diffID.Hash(), counter), empty, dir); err != nil {
		return ocispec.Descriptor{}, "", err
	}
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: diffID.Digest(), Size: counter.n}
	labels := map[string]string{"containerd.io/uncompressed": diffID.Digest().String()}
	if err := w.Commit(ctx, desc.Size, desc.Digest, content.WithLabels(labels)); err != nil && !errdefs.IsAlreadyExists(err) {
		return ocispec.Descriptor{}, "", err
	}
	return desc, diffID.Digest(), nil
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

func writeJSON(ctx context.Context, cs content.Store, mediaType string, v any, labels map[string]string) (ocispec.Descriptor, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	desc := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(b), Size: int64(len(b))}
	if err := content.WriteBlob(ctx, cs, desc.Digest.String(), strings.NewReader(string(b)), desc, content.WithLabels(labels)); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("write %s: %w", mediaType, err)
	}
	return desc, nil
}

// tarDir streams a directory as an uncompressed tar (for OCI layouts).
func tarDir(w io.Writer, dir string) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		hdr, err := tar.FileInfoHeader(info, "")
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		if d.IsDir() {
			hdr.Name += "/"
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if info.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.Copy(tw, f)
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	return tw.Close()
}
