package engine

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"

	ctd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/containerd/errdefs"
	bkclient "github.com/moby/buildkit/client"
	"github.com/moby/buildkit/client/ociindex"
	"github.com/moby/buildkit/exporter/containerimage/exptypes"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	sbllb "github.com/skillbuild/skillbuild/llb"
	"github.com/skillbuild/skillbuild/store"
)

// An Output is where a built image goes. Each one contributes a BuildKit
// exporter to the solve, and only publishes what it wrote (a tag, an
// index entry, a file name) in commit, after the whole build succeeded;
// discard removes what an unfinished or failed build left. A registry
// push plugs in the same way: an image exporter with push set, or a
// content-store exporter followed by a push in commit.
type Output interface {
	entry(ctx context.Context, spec exportSpec) (bkclient.ExportEntry, error)
	commit(ctx context.Context, img exported) error
	discard(ctx context.Context)
	// clientStore reports whether the exporter writes into a content store of
	// the client (BuildKit allows one such exporter per solve).
	clientStore() bool
}

// exported is what the solve produced, handed to every output's commit.
type exported struct {
	name   string // the image's final name
	desc   ocispec.Descriptor
	labels map[string]string // image record labels (containerd outputs)
	// attach, if set, wraps the image in an index with its attestations
	// in a content store; containerd outputs tag what it returns.
	attach func(ctx context.Context, cs content.Store, target ocispec.Descriptor) (ocispec.Descriptor, error)
	// tagged, if set, receives what a containerd output tagged.
	tagged *ocispec.Descriptor
	// marks, if set, adds record labels computed from the tagged digest.
	marks func(target digest.Digest) map[string]string
}

// exportedImage reads the image descriptor from the exporters' response.
func exportedImage(name string, resp map[string]string, labels map[string]string) (exported, error) {
	dgst, err := digest.Parse(resp[exptypes.ExporterImageDigestKey])
	if err != nil {
		return exported{}, fmt.Errorf("exporter returned no image digest: %w", err)
	}
	img := exported{name: name, labels: labels, desc: ocispec.Descriptor{Digest: dgst}}
	if b64 := resp[exptypes.ExporterImageDescriptorKey]; b64 != "" {
		if b, err := base64.StdEncoding.DecodeString(b64); err == nil {
			var d ocispec.Descriptor
			if json.Unmarshal(b, &d) == nil && d.Digest == dgst {
				img.desc = d
			}
		}
	}
	return img, nil
}

// exportSpec is what every exporter of one build is told.
type exportSpec struct {
	name string // the image's name
	// rewrite says the skill's layers may hold files with their step's
	// own times (pip wrote them; see llb.FixedTimes).
	rewrite bool
}

// attrs are the attributes every exporter gets: the image name and the
// epoch as every timestamp of the image config, so every builder exports
// the same bytes for one skill. The files in the skill's layers have the
// epoch as their time already (the steps set it), unless the build says
// otherwise: then the exporter rewrites the times in every layer it
// exports (decompressing, rewriting and recompressing each).
func (s exportSpec) attrs() map[string]string {
	a := map[string]string{"name": s.name, "source-date-epoch": "0"}
	if s.rewrite {
		a["rewrite-timestamp"] = "true"
	}
	return a
}

// What an output does with a path that exists is the same for every
// builder (their own exporters, and Export from containerd for the
// embedded one), and is checked before anything is built:
//   - oci-archive=FILE: the file appears whole, renamed over FILE from a
//     temporary file beside it when the build succeeded, so an existing
//     FILE is replaced atomically (a reader sees the old or the new
//     archive). A directory or a special file there is refused.
//   - oci-layout=DIR: a layout is a store of many images, so the image is
//     added: blobs first, its index entry (named after the image, replacing
//     an entry of the same name) last. DIR may be missing (created), empty,
//     or an OCI image layout; a directory holding anything else is refused
//     rather than filled with blobs.

// OCIArchive writes the image as an OCI image layout tar archive to path.
// The file appears (renamed from a temporary file beside it) only when the
// build succeeded; an existing file is replaced then.
func OCIArchive(path string) (Output, error) {
	if path == "" {
		return nil, fmt.Errorf("oci-archive output: no file name: %w", errdefs.ErrInvalidArgument)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("oci-archive output %s: %w", path, errdefs.ErrInvalidArgument)
	}
	if st, err := os.Stat(filepath.Dir(abs)); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("oci-archive output %s: directory %s does not exist: %w", path, filepath.Dir(abs), errdefs.ErrInvalidArgument)
	}
	if st, err := os.Stat(abs); err == nil && !st.Mode().IsRegular() {
		return nil, fmt.Errorf("oci-archive output %s exists and is not a regular file (only a file is replaced); give a file name: %w", path, errdefs.ErrInvalidArgument)
	}
	return &archiveOutput{path: abs}, nil
}

type archiveOutput struct {
	path string
	tmp  *os.File
}

func (a *archiveOutput) clientStore() bool { return false }

func (a *archiveOutput) entry(_ context.Context, spec exportSpec) (bkclient.ExportEntry, error) {
	return bkclient.ExportEntry{
		Type:   bkclient.ExporterOCI,
		Attrs:  spec.attrs(),
		Output: func(map[string]string) (io.WriteCloser, error) { return a.create() },
	}, nil
}

// create opens the temporary file beside the archive's path.
func (a *archiveOutput) create() (*os.File, error) {
	f, err := os.CreateTemp(filepath.Dir(a.path), "."+filepath.Base(a.path)+".tmp*")
	if err != nil {
		return nil, err
	}
	a.tmp = f
	return f, nil
}

func (a *archiveOutput) commit(context.Context, exported) error {
	if a.tmp == nil {
		return fmt.Errorf("oci-archive output %s: the exporter wrote nothing", a.path)
	}
	if err := a.tmp.Sync(); err != nil && !errors.Is(err, os.ErrClosed) {
		return fmt.Errorf("oci-archive output %s: %w", a.path, err)
	}
	if err := os.Rename(a.tmp.Name(), a.path); err != nil {
		return fmt.Errorf("oci-archive output: %w", err)
	}
	a.tmp = nil
	return nil
}

func (a *archiveOutput) discard(context.Context) {
	if a.tmp != nil {
		a.tmp.Close()
		os.Remove(a.tmp.Name())
	}
}

// OCILayout writes the image into the OCI image layout directory dir
// (created if missing; other images in it stay). Blobs are written during
// the build; the index entry naming the image is added only when the build
// succeeded, so a failed build leaves no new name in the layout.
func OCILayout(dir string) (Output, error) {
	if dir == "" {
		return nil, fmt.Errorf("oci-layout output: no directory: %w", errdefs.ErrInvalidArgument)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("oci-layout output %s: %w", dir, errdefs.ErrInvalidArgument)
	}
	if err := checkLayoutDir(abs); err != nil {
		return nil, fmt.Errorf("oci-layout output %s: %w", dir, err)
	}
	return &layoutOutput{dir: abs}, nil
}

// checkLayoutDir accepts a missing directory, an empty one, or an OCI
// image layout (it has an oci-layout or index.json file).
func checkLayoutDir(dir string) error {
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return err
	case !st.IsDir():
		return fmt.Errorf("it exists and is not a directory: %w", errdefs.ErrInvalidArgument)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	if len(entries) == 0 {
		return nil
	}
	for _, f := range []string{ocispec.ImageLayoutFile, ocispec.ImageIndexFile} {
		if st, err := os.Stat(filepath.Join(dir, f)); err == nil && st.Mode().IsRegular() {
			return nil
		}
	}
	return fmt.Errorf("the directory is neither empty nor an OCI image layout (no %s); choose a new or empty directory: %w", ocispec.ImageLayoutFile, errdefs.ErrInvalidArgument)
}

type layoutOutput struct{ dir string }

func (l *layoutOutput) clientStore() bool { return true }

func (l *layoutOutput) entry(_ context.Context, spec exportSpec) (bkclient.ExportEntry, error) {
	if err := os.MkdirAll(l.dir, 0o755); err != nil {
		return bkclient.ExportEntry{}, fmt.Errorf("oci-layout output: %w", err)
	}
	cs, err := local.NewStore(l.dir)
	if err != nil {
		return bkclient.ExportEntry{}, fmt.Errorf("oci-layout output %s: %w", l.dir, err)
	}
	attrs := spec.attrs()
	attrs["tar"] = "false"
	return bkclient.ExportEntry{Type: bkclient.ExporterOCI, Attrs: attrs, OutputStore: cs}, nil
}

func (l *layoutOutput) commit(_ context.Context, img exported) error {
	desc := img.desc
	if desc.Size == 0 || desc.MediaType == "" {
		// Older exporters send only the digest: read the rest back.
		b, err := os.ReadFile(filepath.Join(l.dir, "blobs", desc.Digest.Algorithm().String(), desc.Digest.Encoded()))
		if err != nil {
			return fmt.Errorf("oci-layout output %s: image %s: %w", l.dir, desc.Digest, err)
		}
		var m struct {
			MediaType string `json:"mediaType"`
		}
		if err := json.Unmarshal(b, &m); err != nil {
			return fmt.Errorf("oci-layout output %s: image %s: %w", l.dir, desc.Digest, err)
		}
		desc.MediaType, desc.Size = m.MediaType, int64(len(b))
	}
	if err := ociindex.NewStoreIndex(l.dir).Put(desc, ociindex.Name(img.name)); err != nil {
		return fmt.Errorf("oci-layout output %s: %w", l.dir, err)
	}
	return nil
}

func (l *layoutOutput) discard(context.Context) {}

// Export writes the image name as containerd holds it (with its
// attestations) to out, an OCIArchive or OCILayout output, by the same
// rules as the builders' own exporters (see above): the embedded builder
// writes its outputs this way once the image is tagged.
func Export(ctx context.Context, c *ctd.Client, name string, out Output) error {
	switch o := out.(type) {
	case *archiveOutput:
		return o.export(ctx, c, name)
	case *layoutOutput:
		return o.export(ctx, c, name)
	}
	return fmt.Errorf("output %T cannot be written from containerd: %w", out, errdefs.ErrInvalidArgument)
}

func (a *archiveOutput) export(ctx context.Context, c *ctd.Client, name string) error {
	f, err := a.create()
	if err != nil {
		return fmt.Errorf("oci-archive output %s: %w", a.path, err)
	}
	err = store.ExportOCIArchive(ctx, c, f, name)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = a.commit(ctx, exported{})
	}
	if err != nil {
		a.discard(ctx)
		return fmt.Errorf("oci-archive output %s: %w", a.path, err)
	}
	return nil
}

// export writes the image as a layout of its own in a temporary directory
// beside dir, moves the blobs dir lacks into it, then adds the index
// entries.
func (l *layoutOutput) export(ctx context.Context, c *ctd.Client, name string) error {
	if err := l.exportVia(ctx, c, name); err != nil {
		return fmt.Errorf("oci-layout output %s: %w", l.dir, err)
	}
	return nil
}

func (l *layoutOutput) exportVia(ctx context.Context, c *ctd.Client, name string) error {
	if err := checkLayoutDir(l.dir); err != nil {
		return err
	}
	if err := os.MkdirAll(l.dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(l.dir), "."+filepath.Base(l.dir)+".partial")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := store.ExportOCILayout(ctx, c, tmp, name); err != nil {
		return err
	}
	idx, err := ociindex.NewStoreIndex(tmp).Read()
	if err != nil {
		return err
	}
	err = filepath.WalkDir(filepath.Join(tmp, ocispec.ImageBlobsDir), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(tmp, p)
		if err != nil {
			return err
		}
		dst := filepath.Join(l.dir, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		if _, err := os.Lstat(dst); err == nil {
			return nil // blobs are named by their digest: the same bytes
		}
		return os.Rename(p, dst)
	})
	if err != nil {
		return err
	}
	for _, m := range idx.Manifests {
		n := m.Annotations[images.AnnotationImageName]
		if n == "" {
			n = name
		}
		if err := ociindex.NewStoreIndex(l.dir).Put(m, ociindex.Name(n)); err != nil {
			return err
		}
	}
	return nil
}

// imageStoreOutput is the embedded builder's own target: BuildKit's image
// exporter writes into containerd (unpacked) under a staging name, and
// commit points the skill's tag at it.
type imageStoreOutput struct {
	c       *ctd.Client
	staging string
}

func (o *imageStoreOutput) clientStore() bool { return false }

func (o *imageStoreOutput) entry(_ context.Context, spec exportSpec) (bkclient.ExportEntry, error) {
	spec.name = o.staging
	attrs := spec.attrs()
	attrs["unpack"], attrs["store"] = "true", "true"
	return bkclient.ExportEntry{Type: bkclient.ExporterImage, Attrs: attrs}, nil
}

func (o *imageStoreOutput) commit(ctx context.Context, img exported) error {
	rec, err := o.c.ImageService().Get(ctx, o.staging)
	if err != nil {
		return fmt.Errorf("exported image %s: %w", o.staging, err)
	}
	target := rec.Target
	if img.attach != nil {
		// The attestations' blobs are referenced only once the index is
		// tagged: a lease keeps them until then.
		lctx, done, err := o.c.WithLease(ctx)
		if err != nil {
			return err
		}
		defer done(context.WithoutCancel(ctx)) //nolint:errcheck
		if target, err = img.attach(lctx, o.c.ContentStore(), target); err != nil {
			return err
		}
		ctx = lctx
	}
	labels := img.labels
	if img.marks != nil {
		labels = maps.Clone(labels)
		maps.Copy(labels, img.marks(target.Digest))
	}
	// Tag last: only now does the skill's name point at the new image.
	if err := store.SetTag(ctx, o.c, images.Image{Name: img.name, Target: target, Labels: labels}); err != nil {
		return err
	}
	if img.tagged != nil {
		*img.tagged = target
	}
	return nil
}

func (o *imageStoreOutput) discard(ctx context.Context) {
	// The staging name never outlives the build.
	o.c.ImageService().Delete(ctx, o.staging) //nolint:errcheck
}

// loadOutput brings a result of a builder without this containerd (the OCI
// worker, a remote buildkitd) into it: the OCI exporter's stream is
// imported and unpacked under a staging name while the build exports, and
// commit tags it.
type loadOutput struct {
	imageStoreOutput
	snapshotter string
	done        chan struct{}
	err         error
}

func (o *loadOutput) entry(ctx context.Context, spec exportSpec) (bkclient.ExportEntry, error) {
	return bkclient.ExportEntry{
		Type:  bkclient.ExporterOCI,
		Attrs: spec.attrs(),
		Output: func(map[string]string) (io.WriteCloser, error) {
			pr, pw := io.Pipe()
			o.done = make(chan struct{})
			go func() {
				defer close(o.done)
				_, o.err = store.ImportOCIArchive(ctx, o.c, pr, o.staging, o.snapshotter)
				pr.CloseWithError(o.err)
			}()
			return pw, nil
		},
	}, nil
}

func (o *loadOutput) commit(ctx context.Context, img exported) error {
	if o.done == nil {
		return fmt.Errorf("load into containerd: the exporter wrote nothing")
	}
	<-o.done
	if o.err != nil {
		return fmt.Errorf("load into containerd: %w", o.err)
	}
	return o.imageStoreOutput.commit(ctx, img)
}

func (o *loadOutput) discard(ctx context.Context) {
	if o.done != nil {
		<-o.done
	}
	o.imageStoreOutput.discard(ctx)
}

// outputs are the destinations of one build: the containerd store for the
// embedded builder (or with load), then the request's own outputs. A
// builder without containerd needs at least one.
func (e *Engine) outputs(ctx context.Context, req Request, id, name string) ([]Output, []bkclient.ExportEntry, error) {
	var outs []Output
	switch {
	case e.opts.builder == BuilderEmbedded:
		outs = append(outs, &imageStoreOutput{c: e.ctd, staging: stagingName(e.opts.root, id)})
	case req.Load:
		c, err := e.containerd(ctx)
		if err != nil {
			return nil, nil, err
		}
		outs = append(outs, &loadOutput{imageStoreOutput: imageStoreOutput{c: c, staging: stagingName(e.opts.root, id)}, snapshotter: e.opts.snapshotter})
	case len(req.Outputs) == 0:
		return nil, nil, fmt.Errorf("builder %s has no containerd of its own: say where the image goes with --output oci-archive=FILE, --output oci-layout=DIR or --load: %w",
			e.opts.builder, errdefs.ErrInvalidArgument)
	}
	outs = append(outs, req.Outputs...)
	spec := exportSpec{name: name, rewrite: !sbllb.FixedTimes(req.Skill, req.Layers)}
	var entries []bkclient.ExportEntry
	stores := 0
	for _, o := range outs {
		if o.clientStore() {
			if stores++; stores > 1 {
				return nil, nil, fmt.Errorf("at most one oci-layout output per build: %w", errdefs.ErrInvalidArgument)
			}
		}
		ent, err := o.entry(ctx, spec)
		if err != nil {
			return nil, nil, err
		}
		entries = append(entries, ent)
	}
	return outs, entries, nil
}
