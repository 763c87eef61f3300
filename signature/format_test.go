package signature

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/distribution/reference"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// updateGoldenEnv regenerates testdata/golden when set:
//
//	SKILLBUILD_UPDATE_GOLDEN=1 go test ./signature -run Golden
const updateGoldenEnv = "SKILLBUILD_UPDATE_GOLDEN"

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if os.Getenv(updateGoldenEnv) != "" {
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, os.WriteFile(path, got, 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run with %s=1 to create", updateGoldenEnv)
	assert.Equal(t, string(want), string(got), "%s differs; rerun with %s=1 to update", path, updateGoldenEnv)
}

const testDigest = digest.Digest("sha256:d34db33fd34db33fd34db33fd34db33fd34db33fd34db33fd34db33fd34db33f")

func mustNamed(t *testing.T, s string) reference.Named {
	t.Helper()
	n, err := reference.ParseNormalizedNamed(s)
	require.NoError(t, err)
	return n
}

// TestPayloadGolden pins the payload bytes: what cosign sign writes for
// the same image (cosign v3.1.3 marshals sigstore's payload.Cosign with
// no claimed identity and no annotations, as here).
func TestPayloadGolden(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ file, ref string }{
		{file: "payload.json", ref: "127.0.0.1:5000/skills/weather:v1"},
		// Docker Hub is index.docker.io in go-containerregistry's
		// names, and so in cosign's payloads.
		{file: "payload-dockerhub.json", ref: "docker.io/skills/weather"},
	} {
		p, err := Payload(mustNamed(t, tc.ref), testDigest)
		require.NoError(t, err)
		golden(t, tc.file, p)

		var doc struct {
			Critical struct {
				Identity struct {
					DockerReference string `json:"docker-reference"`
				} `json:"identity"`
				Image struct {
					DockerManifestDigest string `json:"docker-manifest-digest"`
				} `json:"image"`
				Type string `json:"type"`
			} `json:"critical"`
			Optional any `json:"optional"`
		}
		require.NoError(t, json.Unmarshal(p, &doc))
		assert.Equal(t, "cosign container image signature", doc.Critical.Type)
		assert.Equal(t, testDigest.String(), doc.Critical.Image.DockerManifestDigest)
		assert.NotContains(t, doc.Critical.Identity.DockerReference, ":v1", "the repository, without the tag")
	}
	_, err := Payload(mustNamed(t, "127.0.0.1:5000/a:b"), "sha256:nothex")
	assert.Error(t, err)
}

// TestArtifactGolden pins the signature artifact: the layer (media type,
// annotation), the config cosign writes and the manifest. RSA PKCS#1
// v1.5 signatures are deterministic, so the whole artifact is.
func TestArtifactGolden(t *testing.T) {
	t.Parallel()
	s, err := ParsePrivateKey("rsa.key", keyFile(t, "rsa.key"), nil)
	require.NoError(t, err)
	l, err := s.Sign(mustNamed(t, "127.0.0.1:5000/skills/weather:v1"), testDigest)
	require.NoError(t, err)
	assert.Equal(t, "application/vnd.dev.cosign.simplesigning.v1+json", l.Desc.MediaType)
	assert.Contains(t, l.Desc.Annotations, "dev.cosignproject.cosign/signature")
	assert.Equal(t, digest.FromBytes(l.Payload), l.Desc.Digest)

	a, err := NewArtifact(append(existingLayers(t), l.Desc))
	require.NoError(t, err)
	golden(t, "artifact-config.json", a.ConfigJSON)
	golden(t, "artifact-manifest.json", a.ManifestJSON)
	assert.Equal(t, digest.FromBytes(a.ManifestJSON), a.Manifest.Digest)
	assert.Equal(t, "application/vnd.oci.image.manifest.v1+json", a.Manifest.MediaType)
	assert.Equal(t, "application/vnd.oci.image.config.v1+json", a.Config.MediaType)

	_, err = NewArtifact(nil)
	assert.Error(t, err)
}

// existingLayers is a signature layer another signer left: re-signing
// appends after it, annotations and all.
func existingLayers(t *testing.T) []ocispec.Descriptor {
	t.Helper()
	var d []ocispec.Descriptor
	require.NoError(t, json.Unmarshal([]byte(`[{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json","digest":"sha256:0cf4e4c4ecdd7c6f8a4d0b1b3c5e0f4c0d1f1e8a2b3c4d5e6f708192a3b4c5d6","size":242,"annotations":{"dev.cosignproject.cosign/signature":"MEUCIQ==","dev.sigstore.cosign/certificate":"-----BEGIN CERTIFICATE-----"}}]`), &d))
	return d
}

func TestTag(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "sha256-d34db33fd34db33fd34db33fd34db33fd34db33fd34db33fd34db33fd34db33f.sig", Tag(testDigest))
	r, err := ArtifactRef(mustNamed(t, "127.0.0.1:5000/skills/weather:v1"), testDigest)
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:5000/skills/weather:sha256-d34db33fd34db33fd34db33fd34db33fd34db33fd34db33fd34db33fd34db33f.sig", r.String())
	r, err = ArtifactRef(mustNamed(t, "127.0.0.1:5000/skills/weather@"+testDigest.String()), testDigest)
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:5000/skills/weather:"+Tag(testDigest), r.String(), "a digest reference loses its digest")
}
