package signature

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sigstore/sigstore/pkg/signature/payload"
)

// Verified says which trusted key signed an image.
type Verified struct {
	// Digest is the image signed: what its tag pointed at (an index or a
	// manifest).
	Digest digest.Digest `json:"digest"`
	// Repository is the repository the image and its signature artifact
	// were read from; the signed payload names it.
	Repository string `json:"repository"`
	// Key names the trusted key that verified the signature (its file)
	// and KeyID is its fingerprint.
	Key   string `json:"key"`
	KeyID string `json:"key_id"`
	// Artifact is the signature artifact's manifest digest.
	Artifact digest.Digest `json:"artifact"`
}

// Verify checks the signature artifact desc, read from p, for the image
// in repo's repository with digest image: at least one of its signature
// layers must be
//
//   - a signature, by a key of s, over the layer's payload, and
//   - a payload of type PayloadType whose docker-manifest-digest is image
//     and whose docker-reference names repo's repository (a tag or digest
//     in it is ignored; cosign itself checks only the digest).
//
// Otherwise the error (errdefs.ErrFailedPrecondition) says, per
// signature, what was wrong.
func (s KeySet) Verify(ctx context.Context, p content.Provider, desc ocispec.Descriptor, repo reference.Named, image digest.Digest) (Verified, error) {
	layers, err := readLayers(ctx, p, desc)
	if err != nil {
		return Verified{}, err
	}
	k, err := s.VerifyLayers(layers, repo, image)
	if err != nil {
		return Verified{}, fmt.Errorf("signature artifact %s: %w", desc.Digest, err)
	}
	return Verified{Digest: image, Repository: reference.TrimNamed(repo).Name(), Key: k.Name, KeyID: k.ID, Artifact: desc.Digest}, nil
}

// VerifyLayers is Verify on layers already read: it returns the first
// trusted key with a valid signature over this image.
func (s KeySet) VerifyLayers(layers []Layer, repo reference.Named, image digest.Digest) (Key, error) {
	repoName := reference.TrimNamed(repo).Name()
	if len(s.keys) == 0 {
		return Key{}, fmt.Errorf("no trusted keys to verify %s@%s with: %w", repoName, image, errdefs.ErrFailedPrecondition)
	}
	if len(layers) == 0 {
		return Key{}, fmt.Errorf("it holds no signature (no %s layer): %w", MediaTypePayload, errdefs.ErrFailedPrecondition)
	}
	var reasons []string
	for i, l := range layers {
		k, err := s.verifyLayer(l, repoName, image)
		if err == nil {
			return k, nil
		}
		reasons = append(reasons, fmt.Sprintf("signature %d: %v", i+1, err))
	}
	return Key{}, fmt.Errorf("none of its %d signatures is by a trusted key (%s) over %s@%s: %s; sign the image with one of these keys, or trust its signer's public key: %w",
		len(layers), s.names(), repoName, image, strings.Join(reasons, "; "), errdefs.ErrFailedPrecondition)
}

// verifyLayer checks one signature: by which trusted key, then over what.
func (s KeySet) verifyLayer(l Layer, repoName string, image digest.Digest) (Key, error) {
	if digest.FromBytes(l.Payload) != l.Desc.Digest {
		return Key{}, fmt.Errorf("payload does not match its digest %s", l.Desc.Digest)
	}
	b64, ok := l.Desc.Annotations[AnnotationSignature]
	if !ok {
		return Key{}, fmt.Errorf("no %s annotation", AnnotationSignature)
	}
	sig, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return Key{}, fmt.Errorf("%s annotation is not base64: %v", AnnotationSignature, err)
	}
	var by *Key
	for i := range s.keys {
		if s.keys[i].verify(l.Payload, sig) == nil {
			by = &s.keys[i]
			break
		}
	}
	if by == nil {
		return Key{}, fmt.Errorf("not by a trusted key")
	}
	var p payload.SimpleContainerImage
	if err := json.Unmarshal(l.Payload, &p); err != nil {
		return Key{}, fmt.Errorf("by %s, but the payload is not JSON: %v", by.Name, err)
	}
	if p.Critical.Type != PayloadType {
		return Key{}, fmt.Errorf("by %s, but the payload's type is %q, not %q", by.Name, p.Critical.Type, PayloadType)
	}
	if got := p.Critical.Image.DockerManifestDigest; got != image.String() {
		return Key{}, fmt.Errorf("by %s, but over another image (%s)", by.Name, got)
	}
	ref, err := reference.ParseNormalizedNamed(p.Critical.Identity.DockerReference)
	if err != nil {
		return Key{}, fmt.Errorf("by %s, but its docker-reference %q is not a reference: %v", by.Name, p.Critical.Identity.DockerReference, err)
	}
	if got := reference.TrimNamed(ref).Name(); got != repoName {
		return Key{}, fmt.Errorf("by %s, but for repository %s, not %s", by.Name, got, repoName)
	}
	return *by, nil
}
