package registry

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"

	ctd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	"github.com/distribution/reference"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/skillbuild/skillbuild/internal/attest"
	"github.com/skillbuild/skillbuild/signature"
)

// PullResult says what a pull stored.
type PullResult struct {
	// Ref is the reference pulled (normalized); the image is stored under
	// it and under Names.
	Ref string `json:"ref"`
	// Digest is what Ref points at (a manifest or an index).
	Digest digest.Digest `json:"digest"`
	// Names are the containerd image names now pointing at Digest.
	Names []string `json:"names"`
	// Labels are the image config's labels.
	Labels map[string]string `json:"labels,omitempty"`
	// BytesFetched counts what came over the network (content the store
	// already had is not fetched again).
	BytesFetched int64 `json:"bytes_fetched"`
	// Signature says which trusted key signed the image, when the pull
	// was asked to verify it (WithTrustedKeys).
	Signature *signature.Verified `json:"signature,omitempty"`
}

// Namer decides, from the pulled image (its target and config labels),
// the image names to store besides the reference itself and the labels of
// the image records (containerd's record labels, not the config's). An
// error stops the pull before any name is set.
type Namer func(target ocispec.Descriptor, configLabels map[string]string) (names []string, recordLabels map[string]string, err error)

type pullOptions struct {
	snapshotter string
	platform    platforms.MatchComparer
	namer       Namer
	keys        *signature.KeySet
}

// PullOpt configures Pull.
type PullOpt func(*pullOptions) error

// WithSnapshotter unpacks the image for the named snapshotter (the one
// the runtime will use).
func WithSnapshotter(name string) PullOpt {
	return func(o *pullOptions) error {
		if name == "" {
			return fmt.Errorf("empty snapshotter name: %w", errdefs.ErrInvalidArgument)
		}
		o.snapshotter = name
		return nil
	}
}

// WithPlatform pulls the manifest for platform instead of the host's.
func WithPlatform(p platforms.MatchComparer) PullOpt {
	return func(o *pullOptions) error {
		o.platform = p
		return nil
	}
}

// WithNamer adds names and record labels from the image's config labels.
func WithNamer(n Namer) PullOpt {
	return func(o *pullOptions) error {
		o.namer = n
		return nil
	}
}

// WithTrustedKeys makes the pull verify, before it fetches the image,
// that the digest ref points at is signed by one of keys (cosign's
// classic signature artifact in the same repository; see
// Client.Verify). An image that is not fails the pull with
// errdefs.ErrFailedPrecondition: nothing is fetched or named. The
// verified artifact is stored with the image and recorded on it, so that
// signature.VerifyStored verifies it again later (a run) without the
// registry.
func WithTrustedKeys(keys signature.KeySet) PullOpt {
	return func(o *pullOptions) error {
		if keys.Len() == 0 {
			return fmt.Errorf("no trusted keys to verify the pull with: %w", errdefs.ErrInvalidArgument)
		}
		o.keys = &keys
		return nil
	}
}

// Pull fetches ref into c's content store (the host platform's manifest
// and, when the image has them, its attestation manifests), unpacks it
// for the snapshotter and only then stores the image names: a failed pull
// leaves existing names untouched.
func (rc *Client) Pull(ctx context.Context, c *ctd.Client, ref string, opts ...PullOpt) (PullResult, error) {
	o := pullOptions{platform: platforms.Default()}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return PullResult{}, err
		}
	}
	named, err := ParseRef(ref)
	if err != nil {
		return PullResult{}, err
	}
	host := reference.Domain(named)
	op := "pull " + named.String()
	ctx, done, err := c.WithLease(ctx)
	if err != nil {
		return PullResult{}, err
	}
	defer done(context.WithoutCancel(ctx)) //nolint:errcheck

	res := rc.resolver()
	name, desc, err := res.Resolve(ctx, named.String())
	if err != nil {
		return PullResult{}, rc.classify(op, host, err)
	}
	cs := c.ContentStore()
	// The signature first: an image that is not signed by a trusted key
	// is not fetched at all.
	var verified *signature.Verified
	var sigBlobs *readBlobs
	if o.keys != nil {
		v, blobs, err := rc.verifyRemote(ctx, res, op, named, desc.Digest, *o.keys)
		if err != nil {
			return PullResult{}, err
		}
		if err := storeArtifact(ctx, cs, blobs, v.Artifact); err != nil {
			return PullResult{}, fmt.Errorf("%s: %w", op, err)
		}
		verified, sigBlobs = &v, blobs
	}
	fetcher, err := res.Fetcher(ctx, name)
	if err != nil {
		return PullResult{}, rc.classify(op, host, err)
	}
	cf := &countingFetcher{Fetcher: fetcher}
	children := images.SetChildrenMappedLabels(cs, platformOrAttestation(images.ChildrenHandler(cs), o.platform), nil)
	source, err := docker.AppendDistributionSourceLabel(cs, name)
	if err != nil {
		return PullResult{}, err
	}
	if err := images.Dispatch(ctx, images.Handlers(remotes.FetchHandler(cs, cf), source, children), nil, desc); err != nil {
		return PullResult{}, rc.classify(op, host, err)
	}

	img := ctd.NewImageWithPlatform(c, images.Image{Name: named.String(), Target: desc}, o.platform)
	if err := img.Unpack(ctx, o.snapshotter); err != nil {
		return PullResult{}, fmt.Errorf("%s: unpack: %w", op, err)
	}
	inspected, err := attest.Inspect(ctx, cs, desc, o.platform)
	if err != nil {
		return PullResult{}, fmt.Errorf("%s: %w", op, err)
	}
	out := PullResult{Ref: named.String(), Digest: desc.Digest, Labels: inspected.Labels, BytesFetched: cf.n.Load(), Signature: verified}
	if verified != nil {
		if err := signature.Record(ctx, cs, desc, named, ocispec.Descriptor{Digest: verified.Artifact}); err != nil {
			return PullResult{}, fmt.Errorf("%s: %w", op, err)
		}
		out.BytesFetched += sigBlobs.size()
	}
	names := []string{named.String()}
	var recLabels map[string]string
	if o.namer != nil {
		extra, l, err := o.namer(desc, inspected.Labels)
		if err != nil {
			return PullResult{}, fmt.Errorf("%s: %w", op, err)
		}
		names, recLabels = append(names, extra...), l
	}
	// Names last: only now does anything point at the new image.
	is := c.ImageService()
	for _, n := range names {
		rec := images.Image{Name: n, Target: desc, Labels: recLabels}
		if _, err := is.Create(ctx, rec); errdefs.IsAlreadyExists(err) {
			_, err = is.Update(ctx, rec, "target", "labels")
			if err != nil {
				return out, fmt.Errorf("%s: tag %s: %w", op, n, err)
			}
		} else if err != nil {
			return out, fmt.Errorf("%s: tag %s: %w", op, n, err)
		}
		out.Names = append(out.Names, n)
	}
	return out, nil
}

// platformOrAttestation keeps, of an index's children, the manifests for
// platform and the attestation manifests that belong to them.
func platformOrAttestation(f images.HandlerFunc, m platforms.Matcher) images.HandlerFunc {
	return func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		children, err := f(ctx, desc)
		if err != nil || !images.IsIndexType(desc.MediaType) {
			return children, err
		}
		kept := map[digest.Digest]bool{}
		var out []ocispec.Descriptor
		for _, ch := range children {
			if ch.Annotations[attest.AnnotationReferenceType] == attest.ReferenceTypeAttestation {
				continue
			}
			if ch.Platform == nil || m.Match(*ch.Platform) {
				out = append(out, ch)
				kept[ch.Digest] = true
			}
		}
		for _, ch := range children {
			if ch.Annotations[attest.AnnotationReferenceType] == attest.ReferenceTypeAttestation && kept[digest.Digest(ch.Annotations[attest.AnnotationReferenceDigest])] {
				out = append(out, ch)
			}
		}
		return out, nil
	}
}

// countingFetcher counts the bytes read from the registry.
type countingFetcher struct {
	remotes.Fetcher
	n atomic.Int64
}

func (f *countingFetcher) Fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	rc, err := f.Fetcher.Fetch(ctx, desc)
	if err != nil {
		return nil, err
	}
	return &countingReader{ReadCloser: rc, n: &f.n}, nil
}

type countingReader struct {
	io.ReadCloser
	n *atomic.Int64
}

func (r *countingReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	r.n.Add(int64(n))
	return n, err
}
