package store

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	ctd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/images/archive"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	"github.com/distribution/reference"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// An archive (OCI image layout or docker save format, in a tar stream or
// a directory) is untrusted input: what it makes this process read into
// memory is bounded before it is read, and nothing of it is named until
// the caller names it.
const (
	// MaxManifestSize is the largest JSON document an import reads whole:
	// index.json, a docker manifest.json, and every image index,
	// manifest and image config blob the images reference. Real ones
	// are a few KiB (an index of a hundred platforms is ~50 KiB).
	MaxManifestSize = 4 << 20
	// maxSmallFile bounds oci-layout and docker's repositories file.
	maxSmallFile = 64 << 10
	// maxIndexDepth bounds how deeply image indexes may nest.
	maxIndexDepth = 4
	// importLeaseExpiry is how long an import's content outlives a
	// process that died before releasing it.
	importLeaseExpiry = time.Hour
)

// ArchiveImage is one image an archive holds, complete for this host's
// platform in containerd's content store and unpacked, with no name.
type ArchiveImage struct {
	// Name is the name the archive records for the image (normalized,
	// from the io.containerd.image.name annotation, or from
	// org.opencontainers.image.ref.name when that is a full reference
	// rather than a bare tag), or "" when it records none.
	Name string `json:"name,omitempty"`
	// Target is what a name of the image points at: the archive's
	// index.json entry (an image index or manifest).
	Target ocispec.Descriptor `json:"target"`
	// MissingAttestations are the attestation manifests (SBOM,
	// provenance, scan verdict) the image's index references and the
	// archive lacks, e.g. one exported for a single platform by `ctr
	// images export` without --all-platforms. The image is loaded
	// without them: it carries no attestation a reader could check.
	MissingAttestations []digest.Digest `json:"missing_attestations,omitempty"`
}

// Archive is what ReadOCIArchive or ReadOCILayout brought into
// containerd: the images' content and snapshots, held by a lease of the
// import and by nothing else until the caller names them (SetTags) and
// calls Release. Content no name references then goes to containerd's
// garbage collector.
type Archive struct {
	Images []ArchiveImage
	c      *ctd.Client
	lease  leases.Lease
}

// Release drops the import's hold on its content: what no name
// references is collected. Call it once names are set, or to give up.
func (a *Archive) Release(ctx context.Context) error {
	return a.release(ctx)
}

// release deletes the import's lease, with opts (SynchronousDelete to
// have what only it held collected before it returns).
func (a *Archive) release(ctx context.Context, opts ...leases.DeleteOpt) error {
	if a == nil || a.lease.ID == "" {
		return nil
	}
	err := a.c.LeasesService().Delete(context.WithoutCancel(ctx), a.lease, opts...)
	a.lease = leases.Lease{}
	if err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("release imported content: %w", err)
	}
	return nil
}

// Targets is how many different images (target digests) the archive
// holds.
func (a *Archive) Targets() int {
	seen := map[digest.Digest]bool{}
	for _, img := range a.Images {
		seen[img.Target.Digest] = true
	}
	return len(seen)
}

// ReadOCIArchive reads an OCI image layout (or docker save) tar stream
// into containerd's content store, checks that every image it holds is
// complete for this host's platform, and unpacks each for snapshotter.
// It names nothing: the images come back with the names the archive
// records, for the caller to set (SetTags), and the content stays held
// by the returned Archive until Release. On error, nothing is kept.
//
// index.json and manifest.json larger than MaxManifestSize are refused
// before they are read, as is every index, manifest or config blob whose
// descriptor claims more, or claims another size than the blob has. Bad
// archives are errdefs.ErrInvalidArgument.
func ReadOCIArchive(ctx context.Context, c *ctd.Client, r io.Reader, snapshotter string) (_ *Archive, err error) {
	l, err := c.LeasesService().Create(ctx, leases.WithRandomID(), leases.WithExpiration(importLeaseExpiry))
	if err != nil {
		return nil, fmt.Errorf("import archive: %w", err)
	}
	a := &Archive{c: c, lease: l}
	defer func() {
		if err != nil {
			// Nothing of a failed import stays: what it brought in is
			// collected before the error returns.
			a.release(ctx, leases.SynchronousDelete) //nolint:errcheck // the lease expires anyway
		}
	}()
	ctx = leases.WithLease(ctx, l.ID)
	cs := c.ContentStore()

	index, err := ingest(ctx, cs, r)
	if err != nil {
		return nil, err
	}
	idx, err := readIndex(ctx, cs, index)
	if err != nil {
		return nil, fmt.Errorf("archive index: %w", err)
	}
	matcher := withAttestations{platforms.Default()}
	for _, m := range idx.Manifests {
		if _, ok := m.Annotations[images.AnnotationManifestSubject]; ok {
			continue // a referrer, not an image
		}
		if m.Platform != nil && !matcher.Match(*m.Platform) {
			continue
		}
		w := walker{cs: cs, matcher: matcher}
		if err := w.walk(ctx, m, 0); err != nil {
			return nil, err
		}
		img := ArchiveImage{Name: archiveName(m.Annotations), Target: m, MissingAttestations: w.missing}
		if err := ctd.NewImageWithPlatform(c, images.Image{Name: "import@" + m.Digest.String(), Target: m}, platforms.Default()).Unpack(ctx, snapshotter); err != nil {
			what := m.Digest.String()
			if img.Name != "" {
				what = img.Name
			}
			return nil, fmt.Errorf("unpack %s: %w", what, err)
		}
		a.Images = append(a.Images, img)
	}
	if len(a.Images) == 0 {
		return nil, fmt.Errorf("archive holds no image for %s: %w", platforms.Format(platforms.DefaultSpec()), errdefs.ErrInvalidArgument)
	}
	return a, nil
}

// ReadOCILayout is ReadOCIArchive of an OCI image layout directory.
func ReadOCILayout(ctx context.Context, c *ctd.Client, dir, snapshotter string) (*Archive, error) {
	fi, err := os.Stat(filepath.Join(dir, ocispec.ImageIndexFile))
	if err != nil {
		return nil, fmt.Errorf("%s is not an OCI layout (no index.json): %w", dir, errdefs.ErrInvalidArgument)
	}
	if fi.Size() > MaxManifestSize {
		return nil, tooLarge(ocispec.ImageIndexFile, fi.Size())
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(tarDir(pw, dir)) }()
	defer pr.Close()
	return ReadOCIArchive(ctx, c, pr, snapshotter)
}

func tooLarge(what string, size int64) error {
	return fmt.Errorf("%s is %d bytes, more than the %d an import reads (a real one is a few KiB): %w", what, size, MaxManifestSize, errdefs.ErrInvalidArgument)
}

// ingest writes every file of the tar stream r into cs (containerd's
// archive importer, which stores each under the digest of its bytes) and
// returns the descriptor of its index: index.json for an OCI layout, one
// made from manifest.json for docker's format. The stream passes through
// checkArchive on its way, which refuses oversized index files before
// anything reads them.
func ingest(ctx context.Context, cs content.Store, r io.Reader) (ocispec.Descriptor, error) {
	pr, pw := io.Pipe()
	checked := make(chan error, 1)
	go func() {
		err := checkArchive(r, pw)
		pw.CloseWithError(err)
		checked <- err
	}()
	index, err := archive.ImportIndex(ctx, cs, pr)
	pr.Close() // stops the check if the importer stopped first
	if cerr := <-checked; cerr != nil && !errors.Is(cerr, io.ErrClosedPipe) {
		return ocispec.Descriptor{}, cerr
	}
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("import archive: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	return index, nil
}

// checkArchive copies the tar stream r to w, refusing by their headers,
// before their contents are read: an index.json, a manifest.json or any
// other JSON file outside blobs/ (docker's format keeps image configs as
// ID.json and layer metadata as ID/json) larger than MaxManifestSize, and
// an oci-layout or repositories file larger than maxSmallFile.
func checkArchive(r io.Reader, w io.Writer) error {
	tr := tar.NewReader(r)
	tw := tar.NewWriter(w)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read archive: %v: %w", err, errdefs.ErrInvalidArgument)
		}
		name := path.Clean(h.Name)
		switch {
		case name == ocispec.ImageLayoutFile || name == "repositories":
			if h.Size > maxSmallFile {
				return fmt.Errorf("the archive's %s is %d bytes, more than the %d it may have: %w", name, h.Size, maxSmallFile, errdefs.ErrInvalidArgument)
			}
		case strings.HasPrefix(name, ocispec.ImageBlobsDir+"/"):
		case strings.HasSuffix(name, ".json") || path.Base(name) == "json":
			if h.Size > MaxManifestSize {
				return tooLarge("the archive's "+name, h.Size)
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return fmt.Errorf("read archive entry %s: %w", h.Name, err)
		}
	}
	return tw.Close()
}

// readBlob reads a JSON blob the archive's images reference: its
// descriptor must be sane and claim no more than MaxManifestSize, and the
// blob in the store must have exactly the size claimed.
func readBlob(ctx context.Context, cs content.Store, desc ocispec.Descriptor) ([]byte, error) {
	if err := checkDescriptor(ctx, cs, desc, MaxManifestSize); err != nil {
		return nil, err
	}
	return content.ReadBlob(ctx, cs, desc)
}

// checkDescriptor checks desc against limit (no limit when negative) and
// against the blob the store holds for it.
func checkDescriptor(ctx context.Context, cs content.Store, desc ocispec.Descriptor, limit int64) error {
	if err := desc.Digest.Validate(); err != nil {
		return fmt.Errorf("descriptor of %s: digest %q: %v: %w", desc.MediaType, desc.Digest, err, errdefs.ErrInvalidArgument)
	}
	if desc.Size < 0 || (limit >= 0 && desc.Size > limit) {
		return fmt.Errorf("%s %s claims %d bytes, more than the %d an import reads: %w", desc.MediaType, desc.Digest, desc.Size, limit, errdefs.ErrInvalidArgument)
	}
	info, err := cs.Info(ctx, desc.Digest)
	if err != nil {
		return err
	}
	if info.Size != desc.Size {
		return fmt.Errorf("%s %s claims %d bytes, the archive's blob has %d: %w", desc.MediaType, desc.Digest, desc.Size, info.Size, errdefs.ErrInvalidArgument)
	}
	return nil
}

func readIndex(ctx context.Context, cs content.Store, desc ocispec.Descriptor) (ocispec.Index, error) {
	var idx ocispec.Index
	b, err := readBlob(ctx, cs, desc)
	if err != nil {
		return idx, err
	}
	if err := json.Unmarshal(b, &idx); err != nil {
		return idx, fmt.Errorf("%s: %v: %w", desc.Digest, err, errdefs.ErrInvalidArgument)
	}
	return idx, nil
}

// walker checks that an image is complete for a platform in the content
// store and labels its content for containerd's garbage collector as an
// import does (each index and manifest references its children), so that
// a name keeps all of it.
type walker struct {
	cs      content.Store
	matcher platforms.Matcher
	missing []digest.Digest
}

func (w *walker) walk(ctx context.Context, desc ocispec.Descriptor, depth int) error {
	if depth > maxIndexDepth {
		return fmt.Errorf("image indexes nest deeper than %d at %s: %w", maxIndexDepth, desc.Digest, errdefs.ErrInvalidArgument)
	}
	var children []ocispec.Descriptor
	switch {
	case images.IsIndexType(desc.MediaType):
		idx, err := readIndex(ctx, w.cs, desc)
		if err != nil {
			return w.absent(desc, err)
		}
		for _, ch := range idx.Manifests {
			if ch.Platform != nil && !w.matcher.Match(*ch.Platform) {
				continue
			}
			if isAttestation(ch) {
				if _, err := w.cs.Info(ctx, ch.Digest); errdefs.IsNotFound(err) {
					w.missing = append(w.missing, ch.Digest)
					continue
				}
			}
			if err := w.walk(ctx, ch, depth+1); err != nil {
				return err
			}
			children = append(children, ch)
		}
	case images.IsManifestType(desc.MediaType):
		b, err := readBlob(ctx, w.cs, desc)
		if err != nil {
			return w.absent(desc, err)
		}
		var mf ocispec.Manifest
		if err := json.Unmarshal(b, &mf); err != nil {
			return fmt.Errorf("manifest %s: %v: %w", desc.Digest, err, errdefs.ErrInvalidArgument)
		}
		if err := checkDescriptor(ctx, w.cs, mf.Config, MaxManifestSize); err != nil {
			return w.absent(mf.Config, err)
		}
		children = append(children, mf.Config)
		for _, l := range mf.Layers {
			if err := checkDescriptor(ctx, w.cs, l, -1); err != nil {
				return w.absent(l, err)
			}
			children = append(children, l)
		}
	default:
		return fmt.Errorf("%s is a %q, neither an image index nor a manifest: %w", desc.Digest, desc.MediaType, errdefs.ErrInvalidArgument)
	}
	_, err := images.SetChildrenLabels(w.cs, func(context.Context, ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		return children, nil
	})(ctx, desc)
	return err
}

// absent explains a blob the archive does not hold.
func (w *walker) absent(desc ocispec.Descriptor, err error) error {
	if !errdefs.IsNotFound(err) {
		return err
	}
	return fmt.Errorf("the archive lacks %s %s, which the image needs: export the image with all of its content (e.g. `ctr images export --all-platforms`): %w",
		desc.MediaType, desc.Digest, errdefs.ErrInvalidArgument)
}

// isAttestation tells an attestation manifest in an image index: BuildKit
// and skillbuild mark it with a reference type and give it the platform
// unknown/unknown.
func isAttestation(d ocispec.Descriptor) bool {
	return d.Annotations["vnd.docker.reference.type"] == "attestation-manifest" ||
		(d.Platform != nil && d.Platform.OS == "unknown" && d.Platform.Architecture == "unknown")
}

// archiveName is the name an archive records for an index.json entry:
// containerd's image name annotation, or the OCI ref name when it is a
// full reference (a layout may record only a tag there: "latest" names
// nothing).
func archiveName(annotations map[string]string) string {
	n := annotations[images.AnnotationImageName]
	if n == "" {
		n = annotations[ocispec.AnnotationRefName]
		if !strings.ContainsAny(n, "/:@") {
			return ""
		}
	}
	named, err := reference.ParseNormalizedNamed(n)
	if err != nil {
		return ""
	}
	return reference.TagNameOnly(named).String()
}
