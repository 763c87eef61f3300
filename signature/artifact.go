package signature

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/name"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sigstore/sigstore/pkg/signature/payload"
)

// The format of cosign's classic signatures.
const (
	// MediaTypePayload is the media type of a signature layer: a
	// simple-signing payload.
	MediaTypePayload = "application/vnd.dev.cosign.simplesigning.v1+json"
	// AnnotationSignature is the signature layer's annotation holding the
	// base64 signature over the payload.
	AnnotationSignature = "dev.cosignproject.cosign/signature"
	// PayloadType is the payload's critical.type.
	PayloadType = payload.CosignSignatureType
	// TagSuffix ends the tag of a signature artifact.
	TagSuffix = ".sig"
)

// Bounds on what is read from a signature artifact, which comes from the
// registry and is untrusted until a signature in it verifies.
const (
	maxManifest = 4 << 20
	maxPayload  = 64 << 10
	maxLayers   = 1000
)

// Tag is the tag of the signature artifact for the image d:
// sha256-<hex>.sig, cosign's scheme.
func Tag(d digest.Digest) string {
	return d.Algorithm().String() + "-" + d.Encoded() + TagSuffix
}

// ArtifactRef is the reference of the signature artifact for the image d
// in repo's repository.
func ArtifactRef(repo reference.Named, d digest.Digest) (reference.NamedTagged, error) {
	return reference.WithTag(reference.TrimNamed(repo), Tag(d))
}

// Payload is the simple-signing payload for the image d in repo's
// repository, byte for byte as cosign sign writes it (it is sigstore's
// payload type marshalled): critical.identity.docker-reference is the
// repository, critical.image.docker-manifest-digest is d, critical.type
// is PayloadType, optional is null.
func Payload(repo reference.Named, d digest.Digest) ([]byte, error) {
	if err := d.Validate(); err != nil {
		return nil, fmt.Errorf("image digest %q: %v: %w", d, err, errdefs.ErrInvalidArgument)
	}
	nd, err := name.NewDigest(reference.TrimNamed(repo).Name() + "@" + d.String())
	if err != nil {
		return nil, fmt.Errorf("image %s@%s: %v: %w", repo.Name(), d, err, errdefs.ErrInvalidArgument)
	}
	return json.Marshal(payload.Cosign{Image: nd})
}

// Layer is one signature: the payload and the layer descriptor that
// carries its signature.
type Layer struct {
	Desc    ocispec.Descriptor
	Payload []byte
}

// Sign signs the image d in repo's repository: the payload and its layer.
func (s *Signer) Sign(repo reference.Named, d digest.Digest) (Layer, error) {
	p, err := Payload(repo, d)
	if err != nil {
		return Layer{}, err
	}
	sig, err := s.sign(p)
	if err != nil {
		return Layer{}, fmt.Errorf("sign with %s: %w", s.Name, err)
	}
	return Layer{Payload: p, Desc: ocispec.Descriptor{
		MediaType:   MediaTypePayload,
		Digest:      digest.FromBytes(p),
		Size:        int64(len(p)),
		Annotations: map[string]string{AnnotationSignature: base64.StdEncoding.EncodeToString(sig)},
	}}, nil
}

// Artifact is a signature artifact's two documents.
type Artifact struct {
	Manifest     ocispec.Descriptor
	ManifestJSON []byte
	Config       ocispec.Descriptor
	ConfigJSON   []byte
}

// artifactConfig is the config document cosign writes for a signature
// artifact (go-containerregistry's empty image with the layers
// appended): nothing reads it but the layers' diff IDs.
type artifactConfig struct {
	Architecture string         `json:"architecture"`
	Created      string         `json:"created"`
	History      []historyEntry `json:"history"`
	OS           string         `json:"os"`
	RootFS       ocispec.RootFS `json:"rootfs"`
	Config       struct{}       `json:"config"`
}

type historyEntry struct {
	Created string `json:"created"`
}

// zeroTime is how go-containerregistry writes an unset time.
const zeroTime = "0001-01-01T00:00:00Z"

// NewArtifact makes the signature artifact holding layers (payloads are
// uncompressed: a layer's diff ID is its digest), in the order given.
func NewArtifact(layers []ocispec.Descriptor) (Artifact, error) {
	if len(layers) == 0 {
		return Artifact{}, fmt.Errorf("a signature artifact needs a signature: %w", errdefs.ErrInvalidArgument)
	}
	cfg := artifactConfig{Created: zeroTime, RootFS: ocispec.RootFS{Type: "layers"}}
	for _, l := range layers {
		cfg.History = append(cfg.History, historyEntry{Created: zeroTime})
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, l.Digest)
	}
	cb, err := json.Marshal(cfg)
	if err != nil {
		return Artifact{}, err
	}
	a := Artifact{ConfigJSON: cb, Config: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(cb), Size: int64(len(cb))}}
	m := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest, Config: a.Config, Layers: layers}
	if a.ManifestJSON, err = json.Marshal(m); err != nil {
		return Artifact{}, err
	}
	a.Manifest = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(a.ManifestJSON), Size: int64(len(a.ManifestJSON))}
	return a, nil
}

// ReadManifest reads the signature artifact desc from p and returns all
// of its layers' descriptors (signature layers and any other, which a
// re-signing keeps).
func ReadManifest(ctx context.Context, p content.Provider, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
	if !images.IsManifestType(desc.MediaType) {
		return nil, fmt.Errorf("signature artifact %s is a %q, not an image manifest: %w", desc.Digest, desc.MediaType, errdefs.ErrFailedPrecondition)
	}
	if desc.Size > maxManifest {
		return nil, fmt.Errorf("signature artifact %s: %d bytes is too large for a signature manifest: %w", desc.Digest, desc.Size, errdefs.ErrFailedPrecondition)
	}
	b, err := content.ReadBlob(ctx, p, desc)
	if err != nil {
		return nil, fmt.Errorf("signature artifact %s: %w", desc.Digest, err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("signature artifact %s: %v: %w", desc.Digest, err, errdefs.ErrFailedPrecondition)
	}
	if len(m.Layers) > maxLayers {
		return nil, fmt.Errorf("signature artifact %s has %d layers, more than %d: %w", desc.Digest, len(m.Layers), maxLayers, errdefs.ErrFailedPrecondition)
	}
	return m.Layers, nil
}

// readLayers reads the signature layers of the artifact desc from p
// (layers of other media types are skipped).
func readLayers(ctx context.Context, p content.Provider, desc ocispec.Descriptor) ([]Layer, error) {
	descs, err := ReadManifest(ctx, p, desc)
	if err != nil {
		return nil, err
	}
	var out []Layer
	for _, l := range descs {
		if l.MediaType != MediaTypePayload {
			continue
		}
		if l.Size > maxPayload || l.Size < 0 {
			return nil, fmt.Errorf("signature artifact %s: payload %s of %d bytes is too large: %w", desc.Digest, l.Digest, l.Size, errdefs.ErrFailedPrecondition)
		}
		b, err := content.ReadBlob(ctx, p, l)
		if err != nil {
			return nil, fmt.Errorf("signature artifact %s: payload %s: %w", desc.Digest, l.Digest, err)
		}
		out = append(out, Layer{Desc: l, Payload: b})
	}
	return out, nil
}
