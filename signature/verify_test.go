package signature

import (
	"bytes"
	"context"
	"encoding/base64"
	"maps"
	"sync"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func signer(t *testing.T, file string) *Signer {
	t.Helper()
	s, err := ParsePrivateKey(file, keyFile(t, file), nil)
	require.NoError(t, err)
	return s
}

func signLayer(t *testing.T, s *Signer, ref string, d digest.Digest) Layer {
	t.Helper()
	l, err := s.Sign(mustNamed(t, ref), d)
	require.NoError(t, err)
	return l
}

// withPayload is l with another payload (its digest updated, its
// signature kept).
func withPayload(l Layer, p []byte) Layer {
	l.Payload = p
	l.Desc.Digest, l.Desc.Size = digest.FromBytes(p), int64(len(p))
	return l
}

func withAnnotation(l Layer, v *string) Layer {
	l.Desc.Annotations = maps.Clone(l.Desc.Annotations)
	if v == nil {
		delete(l.Desc.Annotations, AnnotationSignature)
	} else {
		l.Desc.Annotations[AnnotationSignature] = *v
	}
	return l
}

func TestVerifyLayers(t *testing.T) {
	t.Parallel()
	const repo = "127.0.0.1:5000/skills/weather"
	ours, theirs, rsa := signer(t, "ec-pkcs8.key"), signer(t, "ec-sec1.key"), signer(t, "rsa.key")
	trusted := NewKeySet(ours.Key(), rsa.Key())
	none := NewKeySet()
	other := digest.FromString("another image")
	good := signLayer(t, ours, repo+":v1", testDigest)
	notB64 := "not base64!"
	// The same claims, in the format containers/image writes by hand:
	// whitespace differs, so the signature over cosign's bytes fails.
	reformatted := bytes.ReplaceAll(good.Payload, []byte(`":`), []byte(`": `))

	for _, tc := range []struct {
		name    string
		layers  []Layer
		keys    *KeySet
		repo    string
		wantKey string
		wantErr []string
	}{
		{name: "ECDSA", layers: []Layer{good}, wantKey: "ec-pkcs8.key"},
		{name: "RSA", layers: []Layer{signLayer(t, rsa, repo+":v1", testDigest)}, wantKey: "rsa.key"},
		{name: "a reference with a tag or digest names the same repository", repo: repo + "@" + testDigest.String(), layers: []Layer{good}, wantKey: "ec-pkcs8.key"},
		{name: "an untrusted signature beside a trusted one", layers: []Layer{signLayer(t, theirs, repo, testDigest), good}, wantKey: "ec-pkcs8.key"},
		{name: "by an untrusted key", layers: []Layer{signLayer(t, theirs, repo, testDigest)}, wantErr: []string{"signature 1: not by a trusted key", "ec-pkcs8.key, rsa.key"}},
		{name: "over another image", layers: []Layer{signLayer(t, ours, repo, other)}, wantErr: []string{"by ec-pkcs8.key, but over another image (" + other.String() + ")"}},
		{name: "for another repository", layers: []Layer{signLayer(t, ours, "127.0.0.1:5000/skills/other", testDigest)}, wantErr: []string{"but for repository 127.0.0.1:5000/skills/other, not " + repo}},
		{name: "a payload changed after signing", layers: []Layer{withPayload(good, bytes.Replace(good.Payload, []byte("d34db33f"), []byte("0000000f"), 1))}, wantErr: []string{"not by a trusted key"}},
		{name: "the same claims in other bytes", layers: []Layer{withPayload(good, reformatted)}, wantErr: []string{"not by a trusted key"}},
		{name: "a payload that is not its layer's", layers: []Layer{{Desc: good.Desc, Payload: []byte("{}")}}, wantErr: []string{"does not match its digest"}},
		{name: "no signature annotation", layers: []Layer{withAnnotation(good, nil)}, wantErr: []string{"no dev.cosignproject.cosign/signature annotation"}},
		{name: "a signature that is not base64", layers: []Layer{withAnnotation(good, &notB64)}, wantErr: []string{"is not base64"}},
		{name: "no signature layer", wantErr: []string{"holds no signature"}},
		{name: "no trusted key", keys: &none, layers: []Layer{good}, wantErr: []string{"no trusted keys"}},
		{name: "every reason, per signature", layers: []Layer{signLayer(t, theirs, repo, testDigest), signLayer(t, ours, repo, other)},
			wantErr: []string{"none of its 2 signatures", "signature 1: not by a trusted key", "signature 2: by ec-pkcs8.key, but over another image"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			keys := trusted
			if tc.keys != nil {
				keys = *tc.keys
			}
			r := repo
			if tc.repo != "" {
				r = tc.repo
			}
			k, err := keys.VerifyLayers(tc.layers, mustNamed(t, r), testDigest)
			if len(tc.wantErr) > 0 {
				require.Error(t, err)
				assert.True(t, errdefs.IsFailedPrecondition(err), "%v", err)
				for _, w := range tc.wantErr {
					assert.Contains(t, err.Error(), w)
				}
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.wantKey, k.Name)
		})
	}
}

// TestVerifyDockerHubNames: a payload cosign wrote for a Docker Hub image
// says index.docker.io; the repository it is checked against says
// docker.io. They are one repository.
func TestVerifyDockerHubNames(t *testing.T) {
	t.Parallel()
	s := signer(t, "ec-pkcs8.key")
	l := signLayer(t, s, "docker.io/skills/weather:v1", testDigest)
	assert.Contains(t, string(l.Payload), `"index.docker.io/skills/weather"`)
	k, err := NewKeySet(s.Key()).VerifyLayers([]Layer{l}, mustNamed(t, "skills/weather:v1"), testDigest)
	require.NoError(t, err)
	assert.Equal(t, s.Key().ID, k.ID)
}

// labelMap is an in-memory label store for a local content store.
type labelMap struct {
	mu sync.Mutex
	m  map[digest.Digest]map[string]string
}

func (l *labelMap) Get(d digest.Digest) (map[string]string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.m[d]), nil
}

func (l *labelMap) Set(d digest.Digest, m map[string]string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.m[d] = maps.Clone(m)
	return nil
}

func (l *labelMap) Update(d digest.Digest, u map[string]string) (map[string]string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m[d] == nil {
		l.m[d] = map[string]string{}
	}
	for k, v := range u {
		if v == "" {
			delete(l.m[d], k)
		} else {
			l.m[d][k] = v
		}
	}
	return maps.Clone(l.m[d]), nil
}

func newStore(t *testing.T) content.Store {
	t.Helper()
	cs, err := local.NewLabeledStore(t.TempDir(), &labelMap{m: map[digest.Digest]map[string]string{}})
	require.NoError(t, err)
	return cs
}

func writeBlob(t *testing.T, cs content.Store, mediaType string, b []byte, annotations map[string]string) ocispec.Descriptor {
	t.Helper()
	d := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(b), Size: int64(len(b)), Annotations: annotations}
	require.NoError(t, content.WriteBlob(context.Background(), cs, d.Digest.String(), bytes.NewReader(b), d))
	return d
}

// storeArtifact writes a signature artifact holding layers into cs, as
// a pull does.
func storeArtifact(t *testing.T, cs content.Store, layers ...Layer) ocispec.Descriptor {
	t.Helper()
	var descs []ocispec.Descriptor
	for _, l := range layers {
		writeBlob(t, cs, l.Desc.MediaType, l.Payload, nil)
		descs = append(descs, l.Desc)
	}
	a, err := NewArtifact(descs)
	require.NoError(t, err)
	return writeBlob(t, cs, a.Manifest.MediaType, a.ManifestJSON, nil)
}

func TestVerifyStored(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const repo = "127.0.0.1:5000/skills/weather"
	ours, theirs := signer(t, "ec-pkcs8.key"), signer(t, "ec-sec1.key")
	cs := newStore(t)
	image := writeBlob(t, cs, ocispec.MediaTypeImageIndex, []byte(`{"schemaVersion":2,"manifests":[]}`), nil)
	img := image.Digest

	_, err := VerifyStored(ctx, cs, image, NewKeySet(ours.Key()))
	assert.True(t, errdefs.IsFailedPrecondition(err), "nothing recorded: %v", err)
	assert.ErrorContains(t, err, "not pulled with trusted keys")

	// Recorded from the repository it was pulled from.
	art := storeArtifact(t, cs, signLayer(t, ours, repo, img))
	require.NoError(t, Record(ctx, cs, image, mustNamed(t, repo+":v1"), art))
	info, err := cs.Info(ctx, img)
	require.NoError(t, err)
	assert.Equal(t, art.Digest.String(), info.Labels["containerd.io/gc.ref.content.cosign-signature/"+repo], "the label keeps the artifact from the garbage collector")

	v, err := VerifyStored(ctx, cs, image, NewKeySet(theirs.Key(), ours.Key()))
	require.NoError(t, err)
	assert.Equal(t, Verified{Digest: img, Repository: repo, Key: "ec-pkcs8.key", KeyID: ours.Key().ID, Artifact: art.Digest}, v)

	_, err = VerifyStored(ctx, cs, image, NewKeySet(theirs.Key()))
	assert.True(t, errdefs.IsFailedPrecondition(err), "%v", err)
	assert.ErrorContains(t, err, "not by a trusted key")

	// The same signature recorded as if it came from another repository:
	// the payload names the first, so it does not verify there.
	require.NoError(t, Record(ctx, cs, image, mustNamed(t, "127.0.0.1:5000/mirror/weather:v1"), art))
	require.NoError(t, Record(ctx, cs, image, mustNamed(t, repo+":v1"), storeBlobOnly(t, cs)))
	_, err = VerifyStored(ctx, cs, image, NewKeySet(ours.Key()))
	assert.ErrorContains(t, err, "but for repository "+repo+", not 127.0.0.1:5000/mirror/weather")
	assert.ErrorContains(t, err, "holds no signature", "the later record from the first repository replaced the good one")
}

// storeBlobOnly stores an artifact without signature layers.
func storeBlobOnly(t *testing.T, cs content.Store) ocispec.Descriptor {
	t.Helper()
	other := Layer{Desc: ocispec.Descriptor{MediaType: "application/octet-stream"}, Payload: []byte("x")}
	other = withPayload(other, []byte("x"))
	return storeArtifact(t, cs, other)
}

func TestVerifyReadsBoundedArtifacts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cs := newStore(t)
	big := writeBlob(t, cs, ocispec.MediaTypeImageManifest, []byte(`{"schemaVersion":2}`), nil)
	big.Size = maxManifest + 1
	_, err := NewKeySet(signer(t, "ec-pkcs8.key").Key()).Verify(ctx, cs, big, mustNamed(t, "127.0.0.1:5000/a"), testDigest)
	assert.True(t, errdefs.IsFailedPrecondition(err), "%v", err)
	assert.ErrorContains(t, err, "too large")

	idx := writeBlob(t, cs, ocispec.MediaTypeImageIndex, []byte(`{"schemaVersion":2}`), nil)
	_, err = NewKeySet(signer(t, "ec-pkcs8.key").Key()).Verify(ctx, cs, idx, mustNamed(t, "127.0.0.1:5000/a"), testDigest)
	assert.ErrorContains(t, err, "not an image manifest")

	sig := base64.StdEncoding.EncodeToString([]byte("x"))
	huge := Layer{Desc: ocispec.Descriptor{MediaType: MediaTypePayload, Digest: digest.FromString("x"), Size: maxPayload + 1, Annotations: map[string]string{AnnotationSignature: sig}}}
	a, err := NewArtifact([]ocispec.Descriptor{huge.Desc})
	require.NoError(t, err)
	m := writeBlob(t, cs, a.Manifest.MediaType, a.ManifestJSON, nil)
	_, err = NewKeySet(signer(t, "ec-pkcs8.key").Key()).Verify(ctx, cs, m, mustNamed(t, "127.0.0.1:5000/a"), testDigest)
	assert.ErrorContains(t, err, "too large")
}
