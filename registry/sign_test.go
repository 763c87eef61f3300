package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log"
	"maps"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/containerd/errdefs"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/skillbuild/skillbuild/signature"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The signing tests run against go-containerregistry's in-memory
// registry; integration/signing_test.go runs the same flow against the
// CNCF registry and cosign.

// testRegistry serves an empty registry on 127.0.0.1 (plain HTTP) and
// returns its host and a client that may use it.
func testRegistry(t *testing.T) (string, *Client) {
	t.Helper()
	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	c, err := New(WithInsecureHosts(host), WithDockerConfigDir(t.TempDir()))
	require.NoError(t, err)
	return host, c
}

func testSigner(t *testing.T, file string) *signature.Signer {
	t.Helper()
	s, err := signature.LoadPrivateKey(filepath.Join("..", "signature", "testdata", "keys", file), nil)
	require.NoError(t, err)
	return s
}

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

func put(t *testing.T, cs content.Store, mediaType string, v any) ocispec.Descriptor {
	t.Helper()
	b, ok := v.([]byte)
	if !ok {
		var err error
		b, err = json.Marshal(v)
		require.NoError(t, err)
	}
	d := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(b), Size: int64(len(b))}
	require.NoError(t, content.WriteBlob(context.Background(), cs, d.Digest.String(), bytes.NewReader(b), d))
	return d
}

// testImage writes an index holding one image manifest with one layer
// (whose bytes are layer) into cs, as skillbuild's images are shaped.
func testImage(t *testing.T, cs content.Store, layer string) ocispec.Descriptor {
	t.Helper()
	l := put(t, cs, ocispec.MediaTypeImageLayer, []byte(layer))
	cfg := put(t, cs, ocispec.MediaTypeImageConfig, ocispec.Image{
		Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"},
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{l.Digest}},
	})
	m := put(t, cs, ocispec.MediaTypeImageManifest, ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest, Config: cfg, Layers: []ocispec.Descriptor{l}})
	m.Platform = &ocispec.Platform{OS: "linux", Architecture: "amd64"}
	return put(t, cs, ocispec.MediaTypeImageIndex, ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{m}})
}

func TestSignVerify(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	host, c := testRegistry(t)
	cs := newStore(t)
	ref := host + "/skills/weather:v1"
	img := testImage(t, cs, "layer one")
	_, err := c.Push(ctx, cs, img, ref)
	require.NoError(t, err)
	ours, theirs := testSigner(t, "ec-pkcs8.key"), testSigner(t, "rsa.key")
	trustOurs, trustTheirs := signature.NewKeySet(ours.Key()), signature.NewKeySet(theirs.Key())

	_, err = c.Verify(ctx, ref, trustOurs)
	assert.True(t, errdefs.IsFailedPrecondition(err), "unsigned: %v", err)
	assert.ErrorContains(t, err, "is not signed: the registry has no signature artifact "+host+"/skills/weather:"+signature.Tag(img.Digest))

	res, err := c.Sign(ctx, ref, ours)
	require.NoError(t, err)
	assert.Equal(t, SignResult{
		Ref: host + "/skills/weather@" + img.Digest.String(), Digest: img.Digest,
		Artifact: host + "/skills/weather:" + signature.Tag(img.Digest), ArtifactDigest: res.ArtifactDigest,
		KeyID: ours.Key().ID, Signatures: 1,
	}, res)

	v, err := c.Verify(ctx, ref, signature.NewKeySet(theirs.Key(), ours.Key()))
	require.NoError(t, err)
	assert.Equal(t, signature.Verified{Digest: img.Digest, Repository: host + "/skills/weather", Key: ours.Name, KeyID: ours.Key().ID, Artifact: res.ArtifactDigest}, v)

	_, err = c.Verify(ctx, ref, trustTheirs)
	assert.True(t, errdefs.IsFailedPrecondition(err), "%v", err)
	assert.ErrorContains(t, err, "not by a trusted key")

	// Signing again with the same key adds nothing.
	again, err := c.Sign(ctx, ref, ours)
	require.NoError(t, err)
	assert.True(t, again.AlreadySigned)
	assert.Equal(t, res.ArtifactDigest, again.ArtifactDigest)

	// Another key adds its signature and keeps the first.
	second, err := c.Sign(ctx, host+"/skills/weather@"+img.Digest.String(), theirs)
	require.NoError(t, err)
	assert.Equal(t, 2, second.Signatures)
	assert.NotEqual(t, res.ArtifactDigest, second.ArtifactDigest)
	v, err = c.Verify(ctx, ref, trustOurs)
	require.NoError(t, err, "the first signature is still there")
	assert.Equal(t, second.ArtifactDigest, v.Artifact)
	v, err = c.Verify(ctx, ref, trustTheirs)
	require.NoError(t, err)
	assert.Equal(t, theirs.Name, v.Key)
}

// TestVerifyRefusesAChangedImage re-pushes the tag with one layer
// changed: the new digest has no signature; and when someone copies the
// old signature artifact to the new digest's tag, it is over the old
// digest and still refused.
func TestVerifyRefusesAChangedImage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	host, c := testRegistry(t)
	cs := newStore(t)
	ref := host + "/skills/weather:v1"
	good := testImage(t, cs, "requests/api.py: the real code")
	_, err := c.Push(ctx, cs, good, ref)
	require.NoError(t, err)
	s := testSigner(t, "ec-pkcs8.key")
	signed, err := c.Sign(ctx, ref, s)
	require.NoError(t, err)
	keys := signature.NewKeySet(s.Key())

	bad := testImage(t, cs, "requests/api.py: changed code")
	_, err = c.Push(ctx, cs, bad, ref)
	require.NoError(t, err)
	_, err = c.Verify(ctx, ref, keys)
	assert.True(t, errdefs.IsFailedPrecondition(err), "%v", err)
	assert.ErrorContains(t, err, "is not signed")

	// Copy the good artifact to the bad digest's tag.
	named, err := ParseRef(ref)
	require.NoError(t, err)
	adesc, prov, err := c.Open(ctx, signed.Artifact)
	require.NoError(t, err)
	mb, err := content.ReadBlob(ctx, prov, adesc)
	require.NoError(t, err)
	badTag, err := signature.ArtifactRef(named, bad.Digest)
	require.NoError(t, err)
	p, err := c.resolver().Pusher(ctx, badTag.String())
	require.NoError(t, err)
	require.NoError(t, pushBytes(ctx, p, adesc, mb))

	_, err = c.Verify(ctx, ref, keys)
	assert.True(t, errdefs.IsFailedPrecondition(err), "%v", err)
	assert.ErrorContains(t, err, "but over another image ("+good.Digest.String()+")")

	// The good image, by digest, still verifies.
	_, err = c.Verify(ctx, host+"/skills/weather@"+good.Digest.String(), keys)
	assert.NoError(t, err)
}

// TestFetchSignatureStoresWhatItVerified (FetchSignature without its
// lease, which needs a containerd client): a verified artifact is stored
// and recorded, so VerifyStored answers without the registry; a refused
// one leaves nothing recorded.
func TestFetchSignatureStoresWhatItVerified(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	host, c := testRegistry(t)
	cs := newStore(t)
	ref := host + "/skills/weather:v1"
	img := testImage(t, cs, "layer")
	_, err := c.Push(ctx, cs, img, ref)
	require.NoError(t, err)
	ours, theirs := testSigner(t, "ec-pkcs8.key"), testSigner(t, "rsa.key")
	_, err = c.Sign(ctx, ref, ours)
	require.NoError(t, err)

	_, err = c.fetchSignature(ctx, cs, ref, img, signature.NewKeySet(theirs.Key()))
	assert.True(t, errdefs.IsFailedPrecondition(err), "%v", err)
	_, err = signature.VerifyStored(ctx, cs, img, signature.NewKeySet(ours.Key()))
	assert.ErrorContains(t, err, "not pulled with trusted keys", "a refused signature is not recorded")

	v, err := c.fetchSignature(ctx, cs, ref, img, signature.NewKeySet(ours.Key()))
	require.NoError(t, err)
	info, err := cs.Info(ctx, v.Artifact)
	require.NoError(t, err)
	assert.Len(t, info.Labels, 1, "the artifact's labels keep its payload: %v", info.Labels)

	stored, err := signature.VerifyStored(ctx, cs, img, signature.NewKeySet(ours.Key()))
	require.NoError(t, err)
	assert.Equal(t, v, stored)
	_, err = signature.VerifyStored(ctx, cs, img, signature.NewKeySet(theirs.Key()))
	assert.True(t, errdefs.IsFailedPrecondition(err), "%v", err)
}

func TestSignErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	host, c := testRegistry(t)
	s := testSigner(t, "ec-pkcs8.key")
	_, err := c.Sign(ctx, host+"/skills/none:v1", s)
	assert.True(t, errdefs.IsNotFound(err), "no such image: %v", err)
	_, err = c.Sign(ctx, host+"/skills/none", s)
	assert.True(t, errdefs.IsInvalidArgument(err), "no tag: %v", err)
	_, err = c.Verify(ctx, host+"/skills/none:v1", signature.NewKeySet(s.Key()))
	assert.True(t, errdefs.IsNotFound(err), "no such image: %v", err)
	err = WithTrustedKeys(signature.NewKeySet())(&pullOptions{})
	assert.True(t, errdefs.IsInvalidArgument(err), "%v", err)
}
