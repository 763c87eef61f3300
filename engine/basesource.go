package engine

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

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	sbllb "github.com/skillbuild/skillbuild/llb"
)

// baseSource is where the base image comes from when it is not the
// builder's own store or registry: an OCI image layout directory or an
// OCI archive, served to the builder through the client session (so it
// works for a remote buildkitd too).
type baseSource struct {
	archive, layout string
}

// baseStoreID names the session content store holding the base image.
const baseStoreID = "skillbuild-base"

// WithBaseArchive takes the base image from an OCI image layout tar
// archive (`docker save` of an OCI image, `ctr images export`, `skopeo
// copy ... oci-archive:`), read in place and sent to the builder through
// the session. For builders without containerd (embedded-oci, remote)
// and no registry.
func WithBaseArchive(file string) Opt {
	return func(o *options) error {
		if _, err := os.Stat(file); err != nil {
			return fmt.Errorf("base archive: %w: %w", err, errdefs.ErrInvalidArgument)
		}
		o.base = baseSource{archive: file}
		return nil
	}
}

// WithBaseLayout takes the base image from an OCI image layout directory,
// as WithBaseArchive.
func WithBaseLayout(dir string) Opt {
	return func(o *options) error {
		if _, err := os.Stat(filepath.Join(dir, ocispec.ImageIndexFile)); err != nil {
			return fmt.Errorf("base layout %s is not an OCI image layout (%w): %w", dir, err, errdefs.ErrInvalidArgument)
		}
		o.base = baseSource{layout: dir}
		return nil
	}
}

func (b baseSource) set() bool { return b.archive != "" || b.layout != "" }

func (b baseSource) String() string {
	if b.archive != "" {
		return "base archive " + b.archive
	}
	return "base layout " + b.layout
}

// open returns the content store of the archive or layout and the image
// in it named ref (or its only image), pinned by digest.
func (b baseSource) open(ref string) (content.Store, string, func() error, error) {
	var (
		cs    content.Store
		close = func() error { return nil }
		index []byte
		err   error
	)
	if b.layout != "" {
		if cs, err = local.NewStore(b.layout); err != nil {
			return nil, "", nil, fmt.Errorf("%s: %w", b, err)
		}
		if index, err = os.ReadFile(filepath.Join(b.layout, ocispec.ImageIndexFile)); err != nil {
			return nil, "", nil, fmt.Errorf("%s: %w", b, err)
		}
	} else {
		ts, err := openTarStore(b.archive)
		if err != nil {
			return nil, "", nil, fmt.Errorf("%s: %w: %w", b, err, errdefs.ErrInvalidArgument)
		}
		cs, index, close = ts, ts.index, ts.f.Close
	}
	dgst, err := pickImage(index, ref)
	if err != nil {
		close()
		return nil, "", nil, fmt.Errorf("%s: %w", b, err)
	}
	return cs, pinRef(ref, dgst), close, nil
}

// pickImage finds the image named ref in an OCI index (by the names
// containerd and BuildKit record), or the index's only image.
func pickImage(index []byte, ref string) (digest.Digest, error) {
	var idx ocispec.Index
	if err := json.Unmarshal(index, &idx); err != nil {
		return "", fmt.Errorf("index.json: %w: %w", err, errdefs.ErrInvalidArgument)
	}
	want := ref
	if named, err := reference.ParseNormalizedNamed(ref); err == nil {
		want = reference.TagNameOnly(named).String()
	}
	var names []string
	for _, m := range idx.Manifests {
		for _, key := range []string{images.AnnotationImageName, ocispec.AnnotationRefName} {
			n := m.Annotations[key]
			if n == "" {
				continue
			}
			names = append(names, n)
			if n == ref || n == want {
				return m.Digest, nil
			}
		}
	}
	if len(idx.Manifests) == 1 {
		return idx.Manifests[0].Digest, nil
	}
	return "", fmt.Errorf("no image named %s among %d (names: %s); pass --base with one of them: %w",
		ref, len(idx.Manifests), strings.Join(names, ", "), errdefs.ErrNotFound)
}

// baseImage is the base as the build functions use it: how to resolve its
// config and the LLB state of a pinned reference.
type baseImage struct {
	storeID string // empty: the builder's image store or the registry
	builder string
}

// missing explains a base image the builder could not resolve.
func (b baseImage) missing(base string, err error) error {
	switch {
	case b.storeID != "":
		return fmt.Errorf("base image %s could not be read from the base archive or layout (%s): %w", base, firstLine(err.Error()), errdefs.ErrNotFound)
	case b.builder != BuilderEmbedded:
		return fmt.Errorf("base image %s could not be pulled by builder %s (%s); pass --base-archive FILE or --base-layout DIR with an OCI image of it, or a --base the builder can pull: %w",
			base, b.builder, firstLine(err.Error()), errdefs.ErrNotFound)
	}
	return baseMissing(base, err)
}

func (b baseImage) resolveOpt() sourceresolver.Opt {
	if b.storeID != "" {
		return sourceresolver.Opt{OCILayoutOpt: &sourceresolver.ResolveOCILayoutOpt{
			Store: sourceresolver.ResolveImageConfigOptStore{StoreID: b.storeID},
		}}
	}
	return sourceresolver.Opt{ImageOpt: &sourceresolver.ResolveImageOpt{ResolveMode: llb.ResolveModePreferLocal.String()}}
}

func (b baseImage) state(pinned string) llb.State {
	if b.storeID != "" {
		return sbllb.BaseLayout(pinned, b.storeID)
	}
	return sbllb.Base(pinned)
}

// useBase points the session at the engine's base archive or layout, if
// it has one: the skill's base reference becomes the image found there,
// pinned by digest.
func (e *Engine) useBase(ss *solveSession) error {
	ss.base = baseImage{builder: e.opts.builder}
	if !e.opts.base.set() {
		return nil
	}
	cs, pinned, closeFn, err := e.opts.base.open(ss.skill.Base)
	if err != nil {
		return err
	}
	ss.closers = append(ss.closers, closeFn)
	ss.ociStores = map[string]content.Store{baseStoreID: cs}
	ss.base = baseImage{storeID: baseStoreID, builder: e.opts.builder}
	ss.skill.Base = pinned
	return nil
}

// tarStore is a read-only content store over an OCI archive: blobs are
// read in place from the tar file (OCI archives are not compressed as a
// whole, so each blob is one contiguous region).
type tarStore struct {
	f     *os.File
	blobs map[digest.Digest]region
	index []byte
}

type region struct{ off, size int64 }

func openTarStore(file string) (*tarStore, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	ts := &tarStore{f: f, blobs: map[digest.Digest]region{}}
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("not an OCI archive: %w", err)
		}
		name := path.Clean(strings.TrimPrefix(hdr.Name, "./"))
		switch {
		case name == ocispec.ImageIndexFile:
			if ts.index, err = io.ReadAll(io.LimitReader(tr, 16<<20)); err != nil {
				f.Close()
				return nil, err
			}
		case strings.HasPrefix(name, "blobs/") && hdr.Typeflag == tar.TypeReg:
			parts := strings.Split(name, "/")
			if len(parts) != 3 {
				continue
			}
			d := digest.NewDigestFromEncoded(digest.Algorithm(parts[1]), parts[2])
			if d.Validate() != nil {
				continue
			}
			off, err := f.Seek(0, io.SeekCurrent)
			if err != nil {
				f.Close()
				return nil, err
			}
			ts.blobs[d] = region{off: off, size: hdr.Size}
		}
	}
	if ts.index == nil {
		f.Close()
		return nil, fmt.Errorf("not an OCI archive: no index.json")
	}
	return ts, nil
}

func (ts *tarStore) Info(_ context.Context, d digest.Digest) (content.Info, error) {
	r, ok := ts.blobs[d]
	if !ok {
		return content.Info{}, fmt.Errorf("blob %s: %w", d, errdefs.ErrNotFound)
	}
	return content.Info{Digest: d, Size: r.size}, nil
}

func (ts *tarStore) ReaderAt(_ context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	r, ok := ts.blobs[desc.Digest]
	if !ok {
		return nil, fmt.Errorf("blob %s: %w", desc.Digest, errdefs.ErrNotFound)
	}
	return sectionReaderAt{io.NewSectionReader(ts.f, r.off, r.size)}, nil
}

func (ts *tarStore) Walk(ctx context.Context, fn content.WalkFunc, _ ...string) error {
	for d, r := range ts.blobs {
		if err := fn(content.Info{Digest: d, Size: r.size}); err != nil {
			return err
		}
	}
	return nil
}

func (ts *tarStore) Writer(context.Context, ...content.WriterOpt) (content.Writer, error) {
	return nil, fmt.Errorf("base archive is read-only: %w", errdefs.ErrNotImplemented)
}

func (ts *tarStore) Status(context.Context, string) (content.Status, error) {
	return content.Status{}, errdefs.ErrNotFound
}

func (ts *tarStore) ListStatuses(context.Context, ...string) ([]content.Status, error) {
	return nil, nil
}

func (ts *tarStore) Abort(context.Context, string) error { return errdefs.ErrNotFound }

func (ts *tarStore) Update(context.Context, content.Info, ...string) (content.Info, error) {
	return content.Info{}, errdefs.ErrNotImplemented
}

func (ts *tarStore) Delete(context.Context, digest.Digest) error { return errdefs.ErrNotImplemented }

type sectionReaderAt struct{ *io.SectionReader }

func (sectionReaderAt) Close() error { return nil }
