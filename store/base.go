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
	// MissingAttestations are attestation manifests the archive lacked
	// (ArchiveImage.MissingAttestations).
	MissingAttestations []digest.Digest `json:"missing_attestations,omitempty"`
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

// ImportOCIArchive imports an OCI (or docker save) tar archive
// (ReadOCIArchive) and names its images, last and all or none: with a
// non-empty ref, the archive's single image is tagged ref; otherwise every
// image under the name the archive records. A failed import leaves no name
// set or moved. It moves names that exist; callers with rules of their
// own about names use ReadOCIArchive and SetTags instead.
func ImportOCIArchive(ctx context.Context, c *ctd.Client, r io.Reader, ref, snapshotter string) ([]ImportedImage, error) {
	return importNamed(ctx, c, ref, func() (*Archive, error) { return ReadOCIArchive(ctx, c, r, snapshotter) })
}

// importNamed checks ref, reads an archive with read and names its images
// as ImportOCIArchive says, releasing what read holds.
func importNamed(ctx context.Context, c *ctd.Client, ref string, read func() (*Archive, error)) ([]ImportedImage, error) {
	var name string
	if ref != "" {
		n, err := normalizeRef(ref)
		if err != nil {
			return nil, err
		}
		name = n
	}
	a, err := read()
	if err != nil {
		return nil, err
	}
	defer a.Release(ctx) //nolint:errcheck // the lease expires anyway
	return nameArchive(ctx, c, a, name)
}

// nameArchive tags the images of a as ImportOCIArchive says.
func nameArchive(ctx context.Context, c *ctd.Client, a *Archive, name string) ([]ImportedImage, error) {
	var recs []images.Image
	var out []ImportedImage
	if name != "" {
		// The archive must hold exactly one image for --name to mean
		// anything.
		if n := a.Targets(); n != 1 {
			return nil, fmt.Errorf("archive holds %d images; import it without --name to keep their own names: %w", n, errdefs.ErrInvalidArgument)
		}
		img := a.Images[0]
		recs = append(recs, images.Image{Name: name, Target: img.Target})
		out = append(out, ImportedImage{Name: name, Digest: img.Target.Digest, MissingAttestations: img.MissingAttestations})
	} else {
		for _, img := range a.Images {
			if img.Name == "" {
				continue
			}
			recs = append(recs, images.Image{Name: img.Name, Target: img.Target})
			out = append(out, ImportedImage{Name: img.Name, Digest: img.Target.Digest, MissingAttestations: img.MissingAttestations})
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("archive holds no named image; pass --name: %w", errdefs.ErrInvalidArgument)
		}
	}
	if _, err := SetTags(ctx, c, recs); err != nil {
		return nil, err
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

// ImportOCILayout imports an OCI image layout directory as
// ImportOCIArchive does (ReadOCILayout).
func ImportOCILayout(ctx context.Context, c *ctd.Client, dir, ref, snapshotter string) ([]ImportedImage, error) {
	return importNamed(ctx, c, ref, func() (*Archive, error) { return ReadOCILayout(ctx, c, dir, snapshotter) })
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
