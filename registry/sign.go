package registry

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"sync"

	ctd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/skillbuild/skillbuild/signature"
)

// SignResult says what a signing did.
type SignResult struct {
	// Ref is the image signed, by digest (REPO@DIGEST).
	Ref string `json:"ref"`
	// Digest is what the reference given pointed at (an index or a
	// manifest): the digest signed.
	Digest digest.Digest `json:"digest"`
	// Artifact is the signature artifact's reference
	// (REPO:sha256-<hex>.sig) and ArtifactDigest its manifest digest.
	Artifact       string        `json:"artifact"`
	ArtifactDigest digest.Digest `json:"artifact_digest"`
	// KeyID is the signing key's fingerprint (signature.KeyID).
	KeyID string `json:"key_id"`
	// Signatures counts the signatures the artifact now holds (others'
	// are kept).
	Signatures int `json:"signatures"`
	// AlreadySigned is true when the artifact already held a valid
	// signature by this key over this image: nothing was pushed.
	AlreadySigned bool `json:"already_signed,omitempty"`
}

// Sign signs the image ref points at (a tag, or a digest: pass
// REPO:TAG@DIGEST from a push to sign exactly what was pushed) with s, in
// cosign's classic format: it reads the signature artifact
// REPO:sha256-<hex>.sig, appends a signature layer to the ones there (a
// signature by another key is never dropped; one by this key over this
// image makes the signing a no-op) and pushes the payload, then the
// artifact's manifest under that tag. Nothing goes to a transparency log.
//
// Two signings of one image at the same moment can lose one of the two
// signatures (the registry has no compare-and-swap on tags), as with
// cosign.
func (c *Client) Sign(ctx context.Context, ref string, s *signature.Signer) (SignResult, error) {
	named, err := ParseRef(ref)
	if err != nil {
		return SignResult{}, err
	}
	host := reference.Domain(named)
	op := "sign " + named.String()
	res := c.resolver()
	_, desc, err := res.Resolve(ctx, named.String())
	if err != nil {
		return SignResult{}, c.classify(op, host, err)
	}
	artRef, err := signature.ArtifactRef(named, desc.Digest)
	if err != nil {
		return SignResult{}, fmt.Errorf("%s: %w", op, err)
	}
	repo := reference.TrimNamed(named)
	out := SignResult{Ref: repo.String() + "@" + desc.Digest.String(), Digest: desc.Digest, Artifact: artRef.String(), KeyID: s.Key().ID}

	// What is there already: keep it, and stop if this key signed already.
	var layers []ocispec.Descriptor
	_, adesc, err := res.Resolve(ctx, artRef.String())
	switch {
	case err == nil:
		prov, err := c.provider(ctx, res, op, host, artRef.String())
		if err != nil {
			return SignResult{}, err
		}
		if layers, err = signature.ReadManifest(ctx, prov, adesc); err != nil {
			return SignResult{}, fmt.Errorf("%s: the existing %s: %w; delete that tag to start over", op, artRef, err)
		}
		if _, err := signature.NewKeySet(s.Key()).Verify(ctx, prov, adesc, named, desc.Digest); err == nil {
			out.ArtifactDigest, out.Signatures, out.AlreadySigned = adesc.Digest, countSignatures(layers), true
			return out, nil
		}
	case isNotFound(err):
	default:
		return SignResult{}, c.classify(op, host, err)
	}

	layer, err := s.Sign(named, desc.Digest)
	if err != nil {
		return SignResult{}, fmt.Errorf("%s: %w", op, err)
	}
	layers = append(layers, layer.Desc)
	art, err := signature.NewArtifact(layers)
	if err != nil {
		return SignResult{}, fmt.Errorf("%s: %w", op, err)
	}
	p, err := res.Pusher(ctx, artRef.String())
	if err != nil {
		return SignResult{}, c.classify(op, host, err)
	}
	// Blobs first, the tagged manifest last.
	for _, b := range []struct {
		desc ocispec.Descriptor
		data []byte
	}{{layer.Desc, layer.Payload}, {art.Config, art.ConfigJSON}, {art.Manifest, art.ManifestJSON}} {
		if err := pushBytes(ctx, p, b.desc, b.data); err != nil {
			return SignResult{}, c.classify(op, host, err)
		}
	}
	out.ArtifactDigest, out.Signatures = art.Manifest.Digest, countSignatures(layers)
	return out, nil
}

// Verify checks, against the registry only (nothing is stored), that the
// image ref points at is signed by a key of keys (see
// signature.KeySet.Verify). An unsigned image, or one whose signatures
// are all by other keys or over other images, fails with
// errdefs.ErrFailedPrecondition.
func (c *Client) Verify(ctx context.Context, ref string, keys signature.KeySet) (signature.Verified, error) {
	named, err := ParseRef(ref)
	if err != nil {
		return signature.Verified{}, err
	}
	host := reference.Domain(named)
	op := "verify " + named.String()
	res := c.resolver()
	_, desc, err := res.Resolve(ctx, named.String())
	if err != nil {
		return signature.Verified{}, c.classify(op, host, err)
	}
	v, _, err := c.verifyRemote(ctx, res, op, named, desc.Digest, keys)
	return v, err
}

// FetchSignature fetches the signature artifact of image (by digest)
// from ref's repository, verifies it with keys and, when it verifies,
// stores it in c's content store and records it on image
// (signature.Record), so that signature.VerifyStored verifies the image
// later without the registry. image must be in the store. Pull with
// WithTrustedKeys does the same before it fetches the image; this serves
// an image that is already here (pulled without keys, or whose signer
// signed it since).
func (rc *Client) FetchSignature(ctx context.Context, c *ctd.Client, ref string, image ocispec.Descriptor, keys signature.KeySet) (signature.Verified, error) {
	// The artifact is written before the record that keeps it: a lease
	// holds it from the garbage collector in between.
	ctx, done, err := c.WithLease(ctx)
	if err != nil {
		return signature.Verified{}, err
	}
	defer done(context.WithoutCancel(ctx)) //nolint:errcheck
	return rc.fetchSignature(ctx, c.ContentStore(), ref, image, keys)
}

func (c *Client) fetchSignature(ctx context.Context, cs content.Store, ref string, image ocispec.Descriptor, keys signature.KeySet) (signature.Verified, error) {
	named, err := ParseRef(ref)
	if err != nil {
		return signature.Verified{}, err
	}
	op := "verify " + reference.TrimNamed(named).String() + "@" + image.Digest.String()
	v, blobs, err := c.verifyRemote(ctx, c.resolver(), op, named, image.Digest, keys)
	if err != nil {
		return signature.Verified{}, err
	}
	if err := storeArtifact(ctx, cs, blobs, v.Artifact); err != nil {
		return signature.Verified{}, fmt.Errorf("%s: %w", op, err)
	}
	if err := signature.Record(ctx, cs, image, named, ocispec.Descriptor{Digest: v.Artifact}); err != nil {
		return signature.Verified{}, fmt.Errorf("%s: %w", op, err)
	}
	return v, nil
}

// verifyRemote reads the signature artifact of the image d from named's
// repository and verifies it; it returns the documents it read (the
// artifact's manifest and payloads), which are what was verified.
func (c *Client) verifyRemote(ctx context.Context, res remotes.Resolver, op string, named reference.Named, d digest.Digest, keys signature.KeySet) (signature.Verified, *readBlobs, error) {
	host := reference.Domain(named)
	artRef, err := signature.ArtifactRef(named, d)
	if err != nil {
		return signature.Verified{}, nil, fmt.Errorf("%s: %w", op, err)
	}
	_, adesc, err := res.Resolve(ctx, artRef.String())
	if isNotFound(err) {
		return signature.Verified{}, nil, fmt.Errorf("%s: the image %s is not signed: the registry has no signature artifact %s; sign it with a trusted key (skillbuild push --sign-key KEY, or cosign sign --key KEY): %w",
			op, d, artRef, errdefs.ErrFailedPrecondition)
	}
	if err != nil {
		return signature.Verified{}, nil, c.classify(op, host, err)
	}
	prov, err := c.provider(ctx, res, op, host, artRef.String())
	if err != nil {
		return signature.Verified{}, nil, err
	}
	rec := &readBlobs{p: prov, blobs: map[digest.Digest]readBlob{}}
	v, err := keys.Verify(ctx, rec, adesc, named, d)
	if err != nil {
		return signature.Verified{}, nil, fmt.Errorf("%s: %w", op, err)
	}
	return v, rec, nil
}

// provider is a read-only view of ref's repository's documents.
func (c *Client) provider(ctx context.Context, res remotes.Resolver, op, host, ref string) (content.Provider, error) {
	f, err := res.Fetcher(ctx, ref)
	if err != nil {
		return nil, c.classify(op, host, err)
	}
	return &remoteProvider{f: f, classify: func(err error) error { return c.classify(op, host, err) }}, nil
}

// storeArtifact writes the verified artifact's manifest and its payloads
// (what verification read, nothing else) into cs; the manifest's labels
// keep its payloads from the garbage collector.
func storeArtifact(ctx context.Context, cs content.Store, blobs *readBlobs, artifact digest.Digest) error {
	m, ok := blobs.get(artifact)
	if !ok {
		return fmt.Errorf("signature artifact %s was not read: %w", artifact, errdefs.ErrInternal)
	}
	labels := map[string]string{}
	i := 0
	for d, b := range blobs.all() {
		if d == artifact {
			continue
		}
		if err := content.WriteBlob(ctx, cs, "signature-"+d.String(), bytes.NewReader(b.data), b.desc); err != nil {
			return fmt.Errorf("store signature payload %s: %w", d, err)
		}
		labels["containerd.io/gc.ref.content.l."+strconv.Itoa(i)] = d.String()
		i++
	}
	if err := content.WriteBlob(ctx, cs, "signature-"+artifact.String(), bytes.NewReader(m.data), m.desc, content.WithLabels(labels)); err != nil {
		return fmt.Errorf("store signature artifact %s: %w", artifact, err)
	}
	// WriteBlob leaves the labels of content that was already there.
	if _, err := cs.Update(ctx, content.Info{Digest: artifact, Labels: labels}, labelPaths(labels)...); err != nil {
		return fmt.Errorf("label signature artifact %s: %w", artifact, err)
	}
	return nil
}

func labelPaths(labels map[string]string) []string {
	var p []string
	for k := range labels {
		p = append(p, "labels."+k)
	}
	return p
}

// readBlobs is a content.Provider that remembers every blob read through
// it, so that what was verified is what gets stored.
type readBlobs struct {
	p     content.Provider
	mu    sync.Mutex
	blobs map[digest.Digest]readBlob
}

type readBlob struct {
	desc ocispec.Descriptor
	data []byte
}

func (r *readBlobs) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	b, err := content.ReadBlob(ctx, r.p, desc)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.blobs[desc.Digest] = readBlob{desc: desc, data: b}
	r.mu.Unlock()
	return bytesReaderAt{bytes.NewReader(b)}, nil
}

func (r *readBlobs) get(d digest.Digest) (readBlob, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b, ok := r.blobs[d]
	return b, ok
}

// size is the bytes read.
func (r *readBlobs) size() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var n int64
	for _, b := range r.blobs {
		n += int64(len(b.data))
	}
	return n
}

func (r *readBlobs) all() map[digest.Digest]readBlob {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[digest.Digest]readBlob, len(r.blobs))
	for d, b := range r.blobs {
		out[d] = b
	}
	return out
}

// pushBytes uploads one blob or manifest; one the registry has is
// skipped.
func pushBytes(ctx context.Context, p remotes.Pusher, desc ocispec.Descriptor, data []byte) error {
	w, err := p.Push(ctx, desc)
	if errdefs.IsAlreadyExists(err) {
		return nil
	}
	if err != nil {
		return err
	}
	defer w.Close()
	err = content.Copy(ctx, w, bytes.NewReader(data), desc.Size, desc.Digest)
	if errdefs.IsAlreadyExists(err) {
		return nil
	}
	return err
}

func countSignatures(layers []ocispec.Descriptor) int {
	n := 0
	for _, l := range layers {
		if l.MediaType == signature.MediaTypePayload {
			n++
		}
	}
	return n
}

// isNotFound tells a registry's "no such manifest" from other failures.
func isNotFound(err error) bool {
	return err != nil && (errdefs.IsNotFound(err) || isHTTPStatus(err, 404))
}
