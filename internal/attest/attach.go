package attest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	"github.com/distribution/reference"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/package-url/packageurl-go"
)

// Predicate types of the statements a skill image carries.
const (
	// PredicateSPDX is an SPDX document (the SBOM).
	PredicateSPDX = "https://spdx.dev/Document"
	// PredicateVerdict is skillbuild's scan verdict.
	PredicateVerdict = "https://github.com/skillbuild/skillbuild/attestation/scan-verdict/v1"
)

// The attestation-manifest layout, as BuildKit writes it.
const (
	// StatementType is the in-toto statement type (ITE-6 v1).
	StatementType = "https://in-toto.io/Statement/v1"
	// MediaTypeInToto is the media type of a statement layer.
	MediaTypeInToto = "application/vnd.in-toto+json"
	// AnnotationPredicateType names a statement layer's predicate type.
	AnnotationPredicateType = "in-toto.io/predicate-type"
	// AnnotationReferenceType and AnnotationReferenceDigest mark an index
	// entry as the attestation manifest of another entry.
	AnnotationReferenceType   = "vnd.docker.reference.type"
	AnnotationReferenceDigest = "vnd.docker.reference.digest"
	// ReferenceTypeAttestation is AnnotationReferenceType's value.
	ReferenceTypeAttestation = "attestation-manifest"
)

// Predicate is one statement's body before it is bound to an image.
type Predicate struct {
	Type string
	Body json.RawMessage
}

// Subject is what a statement is about.
type Subject struct {
	Name   string            `json:"name"`
	Digest map[string]string `json:"digest"`
}

// Statement is an in-toto statement.
type Statement struct {
	Type          string          `json:"_type"`
	Subject       []Subject       `json:"subject"`
	PredicateType string          `json:"predicateType"`
	Predicate     json.RawMessage `json:"predicate"`
}

// unknownPlatform is the platform of an attestation manifest in an index,
// so that platform-matching clients never run it.
var unknownPlatform = ocispec.Platform{OS: "unknown", Architecture: "unknown"}

// Attach writes, next to the image manifest in cs, one statement per
// predicate about it, an attestation manifest holding them and an index
// holding both; it returns the index's descriptor (what a tag should point
// at). name is the image's name (the statements' subject). The result is
// a pure function of its inputs: the same image and predicates give the
// same index digest. The new blobs are unreferenced until a caller tags
// the index: hold a lease.
func Attach(ctx context.Context, cs content.Store, manifest ocispec.Descriptor, name string, preds ...Predicate) (ocispec.Descriptor, error) {
	if !images.IsManifestType(manifest.MediaType) {
		return ocispec.Descriptor{}, fmt.Errorf("attach attestations: %s is a %s, not an image manifest: %w", manifest.Digest, manifest.MediaType, errdefs.ErrInvalidArgument)
	}
	if len(preds) == 0 {
		return ocispec.Descriptor{}, fmt.Errorf("attach attestations: no predicates: %w", errdefs.ErrInvalidArgument)
	}
	platform, err := manifestPlatform(ctx, cs, manifest)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	subject, err := subjectName(name, platform)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	var layers []ocispec.Descriptor
	var diffIDs []digest.Digest
	for _, p := range preds {
		if !json.Valid(p.Body) {
			return ocispec.Descriptor{}, fmt.Errorf("attach attestations: predicate %s is not JSON: %w", p.Type, errdefs.ErrInvalidArgument)
		}
		st := Statement{
			Type:          StatementType,
			Subject:       []Subject{{Name: subject, Digest: map[string]string{manifest.Digest.Algorithm().String(): manifest.Digest.Encoded()}}},
			PredicateType: p.Type,
			Predicate:     p.Body,
		}
		desc, err := writeJSON(ctx, cs, MediaTypeInToto, st, nil)
		if err != nil {
			return ocispec.Descriptor{}, err
		}
		desc.Annotations = map[string]string{AnnotationPredicateType: p.Type}
		layers = append(layers, desc)
		diffIDs = append(diffIDs, desc.Digest)
	}
	cfg, err := writeJSON(ctx, cs, ocispec.MediaTypeImageConfig, ocispec.Image{
		Platform: unknownPlatform,
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: diffIDs},
	}, nil)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	gc := map[string]string{"containerd.io/gc.ref.content.config": cfg.Digest.String()}
	for i, l := range layers {
		gc[fmt.Sprintf("containerd.io/gc.ref.content.l.%d", i)] = l.Digest.String()
	}
	attMf, err := writeJSON(ctx, cs, ocispec.MediaTypeImageManifest, ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    cfg,
		Layers:    layers,
	}, gc)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	attMf.Platform = &unknownPlatform
	attMf.Annotations = map[string]string{
		AnnotationReferenceType:   ReferenceTypeAttestation,
		AnnotationReferenceDigest: manifest.Digest.String(),
	}
	img := manifest
	img.Platform = &platform
	img.Annotations = nil
	return writeJSON(ctx, cs, ocispec.MediaTypeImageIndex, ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{img, attMf},
	}, map[string]string{
		"containerd.io/gc.ref.content.m.0": img.Digest.String(),
		"containerd.io/gc.ref.content.m.1": attMf.Digest.String(),
	})
}

// manifestPlatform reads the platform from the manifest's config.
func manifestPlatform(ctx context.Context, cs content.Provider, manifest ocispec.Descriptor) (ocispec.Platform, error) {
	var mf ocispec.Manifest
	if err := readJSON(ctx, cs, manifest, &mf); err != nil {
		return ocispec.Platform{}, err
	}
	var img ocispec.Image
	if err := readJSON(ctx, cs, mf.Config, &img); err != nil {
		return ocispec.Platform{}, err
	}
	if img.OS == "" || img.Architecture == "" {
		return ocispec.Platform{}, fmt.Errorf("image config %s names no OS and architecture: %w", mf.Config.Digest, errdefs.ErrInvalidArgument)
	}
	return platforms.Normalize(img.Platform), nil
}

// subjectName is the package URL of the image, as BuildKit names its
// statements' subjects (pkg:docker/NAMESPACE/NAME@TAG?platform=...).
func subjectName(name string, p ocispec.Platform) (string, error) {
	named, err := reference.ParseNormalizedNamed(name)
	if err != nil {
		return "", fmt.Errorf("image name %q: %v: %w", name, err, errdefs.ErrInvalidArgument)
	}
	named = reference.TagNameOnly(named)
	version := ""
	if t, ok := named.(reference.Tagged); ok {
		version = t.Tag()
	}
	path := reference.FamiliarName(named)
	ns, base := "", path
	if i := lastSlash(path); i >= 0 {
		ns, base = path[:i], path[i+1:]
	}
	q := packageurl.Qualifiers{{Key: "platform", Value: platforms.Format(p)}}
	return packageurl.NewPackageURL(packageurl.TypeDocker, ns, base, version, q, "").ToString(), nil
}

func lastSlash(s string) int {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '/' {
			return i
		}
	}
	return -1
}

// Read returns the statements attached to the image target points at
// (an index in the attestation-manifest layout) for the given platform,
// and the image manifest's descriptor. An image without attestations (a
// plain manifest, an index without an attestation manifest for it, or one
// whose attestation manifest is not in cs) gives no statements and no
// error.
func Read(ctx context.Context, cs content.Provider, target ocispec.Descriptor, p platforms.MatchComparer) ([]Statement, ocispec.Descriptor, error) {
	if images.IsManifestType(target.MediaType) {
		return nil, target, nil
	}
	if !images.IsIndexType(target.MediaType) {
		return nil, ocispec.Descriptor{}, fmt.Errorf("%s is a %s, neither an image index nor a manifest: %w", target.Digest, target.MediaType, errdefs.ErrInvalidArgument)
	}
	var idx ocispec.Index
	if err := readJSON(ctx, cs, target, &idx); err != nil {
		return nil, ocispec.Descriptor{}, err
	}
	var img ocispec.Descriptor
	for _, d := range idx.Manifests {
		if d.Annotations[AnnotationReferenceType] == ReferenceTypeAttestation || !images.IsManifestType(d.MediaType) {
			continue
		}
		if d.Platform == nil || p.Match(*d.Platform) {
			img = d
			break
		}
	}
	if img.Digest == "" {
		return nil, ocispec.Descriptor{}, fmt.Errorf("index %s has no manifest for this platform: %w", target.Digest, errdefs.ErrNotFound)
	}
	var out []Statement
	for _, d := range idx.Manifests {
		if d.Annotations[AnnotationReferenceType] != ReferenceTypeAttestation || d.Annotations[AnnotationReferenceDigest] != img.Digest.String() {
			continue
		}
		var mf ocispec.Manifest
		if err := readJSON(ctx, cs, d, &mf); errdefs.IsNotFound(err) {
			continue // not fetched (a platform-filtered pull or import)
		} else if err != nil {
			return nil, img, err
		}
		for _, l := range mf.Layers {
			if l.MediaType != MediaTypeInToto {
				continue
			}
			var st Statement
			if err := readJSON(ctx, cs, l, &st); err != nil {
				return nil, img, err
			}
			out = append(out, st)
		}
	}
	return out, img, nil
}

// Find is the first statement with predicate type t, or nil.
func Find(sts []Statement, t string) *Statement {
	for i := range sts {
		if sts[i].PredicateType == t {
			return &sts[i]
		}
	}
	return nil
}

func writeJSON(ctx context.Context, cs content.Ingester, mediaType string, v any, labels map[string]string) (ocispec.Descriptor, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	desc := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(b), Size: int64(len(b))}
	var opts []content.Opt
	if labels != nil {
		opts = append(opts, content.WithLabels(labels))
	}
	if err := content.WriteBlob(ctx, cs, "attest-"+desc.Digest.String(), bytes.NewReader(b), desc, opts...); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("write %s: %w", mediaType, err)
	}
	return desc, nil
}

// maxJSON bounds what Read loads into memory from a (possibly remote)
// document.
const maxJSON = 16 << 20

func readJSON(ctx context.Context, cs content.Provider, desc ocispec.Descriptor, v any) error {
	if desc.Size > maxJSON {
		return fmt.Errorf("%s: %d bytes is too large for a %s: %w", desc.Digest, desc.Size, desc.MediaType, errdefs.ErrInvalidArgument)
	}
	b, err := content.ReadBlob(ctx, cs, desc)
	if err != nil {
		return fmt.Errorf("read %s %s: %w", desc.MediaType, desc.Digest, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decode %s %s: %w", desc.MediaType, desc.Digest, err)
	}
	return nil
}

// Image is what Inspect finds about an image: its config labels and the
// statements attached to it.
type Image struct {
	// Digest is what the name points at; Manifest the platform's image
	// manifest (the same when there is no index).
	Digest     digest.Digest     `json:"digest"`
	Manifest   digest.Digest     `json:"manifest_digest"`
	Labels     map[string]string `json:"labels"`
	Statements []Statement       `json:"statements"`
}

// Inspect reads the image target points at (in cs, local or a registry's)
// for platform p: its config's labels and its attestations.
func Inspect(ctx context.Context, cs content.Provider, target ocispec.Descriptor, p platforms.MatchComparer) (Image, error) {
	sts, mfDesc, err := Read(ctx, cs, target, p)
	if err != nil {
		return Image{}, err
	}
	var mf ocispec.Manifest
	if err := readJSON(ctx, cs, mfDesc, &mf); err != nil {
		return Image{}, err
	}
	var cfg ocispec.Image
	if err := readJSON(ctx, cs, mf.Config, &cfg); err != nil {
		return Image{}, err
	}
	if sts == nil {
		sts = []Statement{}
	}
	return Image{Digest: target.Digest, Manifest: mfDesc.Digest, Labels: cfg.Config.Labels, Statements: sts}, nil
}
