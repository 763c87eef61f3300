package attest

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/containerd/platforms"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var sbomIn = SBOMInput{
	SkillID: "weather", SkillVersion: "3",
	LockDigest: digest.FromString("lock"),
	Packages: []Package{
		{Name: "tzdata", Version: "2024.1", Filename: "tzdata-2024.1-py2.py3-none-any.whl", SHA256: strings.Repeat("b", 64)},
		{Name: "requests", Version: "2.31.0", Filename: "requests-2.31.0-py3-none-any.whl", SHA256: strings.Repeat("a", 64)},
	},
	Base:       "localhost/skillbuild/python:3.11-bookworm",
	BaseDigest: digest.FromString("base"),
}

func TestSBOMIsSPDX23(t *testing.T) {
	t.Parallel()
	b, err := SBOM(sbomIn)
	require.NoError(t, err)
	doc, err := spdxjson.Read(bytes.NewReader(b))
	require.NoError(t, err, "SPDX's own reader accepts the document")
	assert.Equal(t, "SPDX-2.3", doc.SPDXVersion)

	byName := map[string]int{}
	for i, p := range doc.Packages {
		byName[p.PackageName] = i
	}
	require.Contains(t, byName, "requests")
	req := doc.Packages[byName["requests"]]
	assert.Equal(t, "2.31.0", req.PackageVersion)
	assert.Equal(t, "requests-2.31.0-py3-none-any.whl", req.PackageFileName)
	require.Len(t, req.PackageChecksums, 1)
	assert.Equal(t, strings.Repeat("a", 64), req.PackageChecksums[0].Value)
	require.Len(t, req.PackageExternalReferences, 1)
	assert.Equal(t, "pkg:pypi/requests@2.31.0", req.PackageExternalReferences[0].Locator)
	base := doc.Packages[byName[sbomIn.Base]]
	assert.Equal(t, sbomIn.BaseDigest.String(), base.PackageVersion)

	again, err := SBOM(sbomIn)
	require.NoError(t, err)
	assert.Equal(t, b, again, "the same lock gives the same bytes")
}

// fakeImage writes a one-layer image manifest into cs.
func fakeImage(t *testing.T, ctx context.Context, cs content.Store) ocispec.Descriptor {
	t.Helper()
	layer, err := writeJSON(ctx, cs, ocispec.MediaTypeImageLayer, "not a tar, never read", nil)
	require.NoError(t, err)
	cfg, err := writeJSON(ctx, cs, ocispec.MediaTypeImageConfig, ocispec.Image{
		Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"},
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{layer.Digest}},
	}, nil)
	require.NoError(t, err)
	mf, err := writeJSON(ctx, cs, ocispec.MediaTypeImageManifest, ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
		Config: cfg, Layers: []ocispec.Descriptor{layer},
	}, nil)
	require.NoError(t, err)
	return mf
}

func TestAttachRead(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cs, err := local.NewStore(t.TempDir())
	require.NoError(t, err)
	mf := fakeImage(t, ctx, cs)
	sbom, err := SBOM(sbomIn)
	require.NoError(t, err)
	verdict := json.RawMessage(`{"result":"passed"}`)
	preds := []Predicate{{Type: PredicateSPDX, Body: sbom}, {Type: PredicateVerdict, Body: verdict}}

	idx, err := Attach(ctx, cs, mf, "127.0.0.1:5000/skills/weather:v3", preds...)
	require.NoError(t, err)
	assert.Equal(t, ocispec.MediaTypeImageIndex, idx.MediaType)
	again, err := Attach(ctx, cs, mf, "127.0.0.1:5000/skills/weather:v3", preds...)
	require.NoError(t, err)
	assert.Equal(t, idx.Digest, again.Digest, "attaching is deterministic")

	// The layout BuildKit writes: the image manifest with its platform, and
	// an attestation manifest for unknown/unknown pointing back at it.
	var index ocispec.Index
	require.NoError(t, readJSON(ctx, cs, idx, &index))
	require.Len(t, index.Manifests, 2)
	assert.Equal(t, mf.Digest, index.Manifests[0].Digest)
	assert.Equal(t, "linux", index.Manifests[0].Platform.OS)
	att := index.Manifests[1]
	assert.Equal(t, "unknown", att.Platform.OS)
	assert.Equal(t, ReferenceTypeAttestation, att.Annotations[AnnotationReferenceType])
	assert.Equal(t, mf.Digest.String(), att.Annotations[AnnotationReferenceDigest])

	// A platform-matching client picks the image, never the attestations.
	m, err := images.Manifest(ctx, cs, idx, platforms.Only(ocispec.Platform{OS: "linux", Architecture: "amd64"}))
	require.NoError(t, err)
	assert.Len(t, m.Layers, 1)

	sts, img, err := Read(ctx, cs, idx, platforms.Only(ocispec.Platform{OS: "linux", Architecture: "amd64"}))
	require.NoError(t, err)
	assert.Equal(t, mf.Digest, img.Digest)
	require.Len(t, sts, 2)
	v := Find(sts, PredicateVerdict)
	require.NotNil(t, v)
	assert.JSONEq(t, string(verdict), string(v.Predicate))
	require.Len(t, v.Subject, 1)
	assert.Equal(t, "pkg:docker/127.0.0.1:5000/skills/weather@v3?platform=linux%2Famd64", v.Subject[0].Name)
	assert.Equal(t, mf.Digest.Encoded(), v.Subject[0].Digest["sha256"])
	assert.Equal(t, StatementType, v.Type)
	assert.NotNil(t, Find(sts, PredicateSPDX))

	// An index whose attestation manifest was not fetched (a platform-
	// filtered pull) has no statements, and that is no error.
	require.NoError(t, cs.Delete(ctx, att.Digest))
	sts, img, err = Read(ctx, cs, idx, platforms.Only(ocispec.Platform{OS: "linux", Architecture: "amd64"}))
	require.NoError(t, err)
	assert.Empty(t, sts)
	assert.Equal(t, mf.Digest, img.Digest)

	// A plain manifest has no statements.
	sts, img, err = Read(ctx, cs, mf, platforms.Default())
	require.NoError(t, err)
	assert.Empty(t, sts)
	assert.Equal(t, mf.Digest, img.Digest)
}

func TestAttachRefusesBadInput(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cs, err := local.NewStore(t.TempDir())
	require.NoError(t, err)
	mf := fakeImage(t, ctx, cs)
	_, err = Attach(ctx, cs, mf, "x:y")
	assert.Error(t, err, "no predicates")
	_, err = Attach(ctx, cs, mf, "x:y", Predicate{Type: PredicateVerdict, Body: []byte("{")})
	assert.Error(t, err, "not JSON")
	idx := mf
	idx.MediaType = ocispec.MediaTypeImageIndex
	_, err = Attach(ctx, cs, idx, "x:y", Predicate{Type: PredicateVerdict, Body: []byte("{}")})
	assert.Error(t, err, "not a manifest")
}
