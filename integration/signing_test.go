package integration

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	ctd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/pkg/archive/compression"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/skillbuild/skillbuild/internal/pyindex"
	"github.com/skillbuild/skillbuild/registry"
	"github.com/skillbuild/skillbuild/signature"
	"github.com/skillbuild/skillbuild/skill/api"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The cosign the interoperability checks run is the version pinned in
// hack/cosign.version, built from its Go module by hack/cosign.sh (`make
// cosign`, which `make test` runs) into
// /var/cache/skillbuild/cosign-<version>/cosign; SKILLBUILD_TEST_COSIGN
// names another binary.
var cosignBin struct {
	once sync.Once
	path string
	err  error
}

// cosignBinary is the pinned cosign, built on first use when `make
// cosign` did not build it (minutes: cosign has hundreds of modules).
func cosignBinary(t *testing.T) string {
	t.Helper()
	cosignBin.once.Do(func() {
		if p := os.Getenv("SKILLBUILD_TEST_COSIGN"); p != "" {
			cosignBin.path = p
			return
		}
		b, err := os.ReadFile(filepath.Join("..", "hack", "cosign.version"))
		if err != nil {
			cosignBin.err = err
			return
		}
		cosignVersion := strings.TrimSpace(string(b))
		cache := "/var/cache/skillbuild"
		cosignBin.path = filepath.Join(cache, "cosign-"+cosignVersion, "cosign")
		if _, err := os.Stat(cosignBin.path); err == nil {
			return
		}
		t.Logf("building cosign %s into %s (hack/cosign.sh; `make cosign` does it once)", cosignVersion, cosignBin.path)
		cmd := exec.Command(filepath.Join("..", "hack", "cosign.sh"), cosignVersion, cache)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			cosignBin.err = fmt.Errorf("hack/cosign.sh %s: %v: %s", cosignVersion, err, tailString(out.String(), 3000))
		}
	})
	require.NoError(t, cosignBin.err)
	return cosignBin.path
}

// runCosign runs cosign with the suite's clean environment plus extra.
func runCosign(t *testing.T, extra []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, cosignBinary(t), args...)
	cmd.Env = append(cleanEnv(), extra...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("cosign %v: %v", args, err)
	}
	t.Logf("cosign %s → exit %d", strings.Join(args, " "), r.code)
	return r
}

// cosignVerify is `cosign verify --key PUB` of ref on the plain registry,
// offline.
func cosignVerify(t *testing.T, pub, ref string) result {
	t.Helper()
	return runCosign(t, nil, "verify", "--key", pub, "--insecure-ignore-tlog", "--allow-insecure-registry", ref)
}

// writeKeyPair writes an ECDSA P-256 key pair as PEM files (PKCS#8
// private key, PKIX public key) into dir.
func writeKeyPair(t *testing.T, dir, name string) (priv, pub string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	der, err := x509.MarshalPKCS8PrivateKey(k)
	require.NoError(t, err)
	pder, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	require.NoError(t, err)
	priv, pub = filepath.Join(dir, name+".key"), filepath.Join(dir, name+".pub")
	require.NoError(t, os.WriteFile(priv, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(pub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pder}), 0o644))
	return priv, pub
}

func keySet(t *testing.T, paths ...string) signature.KeySet {
	t.Helper()
	ks, err := signature.LoadKeySet(paths...)
	require.NoError(t, err)
	return ks
}

// pullHost2 pulls ref into the second containerd's namespace ns with the
// library (the CLI's --trusted-key is wired on top of it).
func pullHost2(t *testing.T, ns, ref string, opts ...registry.PullOpt) (registry.PullResult, *ctd.Client, error) {
	t.Helper()
	c, err := ctd.New(regs.host2.Socket, ctd.WithDefaultNamespace(ns), ctd.WithTimeout(10*time.Second))
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	rc, err := registry.New(registry.WithInsecureHosts(regs.plain.Host), registry.WithDockerConfigDir(t.TempDir()))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	res, err := rc.Pull(ctx, c, ref, append([]registry.PullOpt{registry.WithSnapshotter("overlayfs")}, opts...)...)
	return res, c, err
}

func requireNotNamed(t *testing.T, c *ctd.Client, ref string) {
	t.Helper()
	_, err := c.ImageService().Get(context.Background(), ref)
	assert.True(t, errdefs.IsNotFound(err), "a refused pull named nothing: %v", err)
}

// TestSigningRoundTrip signs a pushed skill image and verifies it against
// the CNCF registry, with cosign on both sides: cosign verify accepts what
// skillbuild signed (with a plain PKCS#8 key and with cosign's encrypted
// cosign.key) and skillbuild accepts what cosign sign signed. A pull with
// trusted keys verifies before it fetches, and stores the signature for
// later. The same tag re-pushed with one file changed, an unsigned image
// and a signature by an untrusted key are refused.
func TestSigningRoundTrip(t *testing.T) {
	registries(t)
	ctx := context.Background()
	cosignBinary(t) // fail early when it cannot be built
	srv, _ := index(t, pyindex.Wheel{Name: "sigdep", Version: "1.0", Init: "VALUE = 'genuine'\n"})
	_, r := install(t, srv, "sig-a", nil, "sigdep")
	require.Equal(t, 0, r.code, r.stderr)
	emptySkill(t, "sig-unsigned")
	ref := regs.plain.Host + "/skills/sig-a:v1"
	unsignedRef := regs.plain.Host + "/skills/sig-unsigned:v1"
	r = sb(t, "push", "--json", "--insecure-registry", regs.plain.Host, "sig-a", ref)
	require.Equal(t, 0, r.code, r.stderr)
	pushed := decodeJSON[api.PushResult](t, r)
	r = sb(t, "push", "--json", "--insecure-registry", regs.plain.Host, "sig-unsigned", unsignedRef)
	require.Equal(t, 0, r.code, r.stderr)

	keys := t.TempDir()
	trustDir := filepath.Join(keys, "trusted")
	require.NoError(t, os.MkdirAll(trustDir, 0o755))
	oursKey, oursPub := writeKeyPair(t, trustDir, "ours")
	strangerKey, strangerPub := writeKeyPair(t, keys, "stranger")
	const cosignPassword = "correct horse battery staple"
	pw := []string{"COSIGN_PASSWORD=" + cosignPassword}
	r = runCosign(t, pw, "generate-key-pair", "--output-key-prefix", filepath.Join(keys, "cosign"))
	require.Equal(t, 0, r.code, r.stderr)
	cosignKey, cosignPub := filepath.Join(keys, "cosign.key"), filepath.Join(keys, "cosign.pub")

	rc, err := registry.New(registry.WithInsecureHosts(regs.plain.Host), registry.WithDockerConfigDir(t.TempDir()))
	require.NoError(t, err)

	// Sign what was pushed, by digest, as `push --sign-key` will.
	ours, err := signature.LoadPrivateKey(oursKey, nil)
	require.NoError(t, err)
	signed, err := rc.Sign(ctx, ref+"@"+pushed.Digest.String(), ours)
	require.NoError(t, err)
	assert.Equal(t, pushed.Digest, signed.Digest)
	assert.Equal(t, regs.plain.Host+"/skills/sig-a:sha256-"+pushed.Digest.Encoded()+".sig", signed.Artifact)
	tag, err := regs.plain.TagDigest("skills/sig-a", signature.Tag(pushed.Digest))
	require.NoError(t, err)
	assert.Equal(t, signed.ArtifactDigest.String(), tag, "the artifact is in the registry under cosign's tag")

	// cosign accepts it.
	r = cosignVerify(t, oursPub, ref)
	require.Equal(t, 0, r.code, "cosign verify of skillbuild's signature: %s", r.stderr)
	assert.Contains(t, r.stdout, pushed.Digest.String())
	r = cosignVerify(t, strangerPub, ref)
	assert.NotEqual(t, 0, r.code, "cosign refuses another key too")

	// cosign signs beside it; skillbuild accepts cosign's signature and
	// keeps its own.
	r = runCosign(t, pw, "sign", "--key", cosignKey, "--tlog-upload=false", "--new-bundle-format=false", "--use-signing-config=false",
		"--allow-insecure-registry", "-y", regs.plain.Host+"/skills/sig-a@"+pushed.Digest.String())
	require.Equal(t, 0, r.code, "cosign sign: %s", r.stderr)
	// Byte for byte the format: cosign's payload is skillbuild's (one
	// blob, two signatures), and the config cosign wrote for both layers
	// is the one skillbuild writes.
	adesc, prov, err := rc.Open(ctx, signed.Artifact)
	require.NoError(t, err)
	mb, err := content.ReadBlob(ctx, prov, adesc)
	require.NoError(t, err)
	var art ocispec.Manifest
	require.NoError(t, json.Unmarshal(mb, &art))
	require.Len(t, art.Layers, 2, "cosign appended to skillbuild's artifact")
	named, err := registry.ParseRef(ref)
	require.NoError(t, err)
	payload, err := signature.Payload(named, pushed.Digest)
	require.NoError(t, err)
	for _, l := range art.Layers {
		assert.Equal(t, signature.MediaTypePayload, l.MediaType)
		assert.Equal(t, digest.FromBytes(payload), l.Digest, "cosign signed the same payload bytes")
		assert.NotEmpty(t, l.Annotations[signature.AnnotationSignature])
	}
	assert.Equal(t, ocispec.MediaTypeImageManifest, adesc.MediaType)
	cfg, err := content.ReadBlob(ctx, prov, art.Config)
	require.NoError(t, err)
	ours2, err := signature.NewArtifact(art.Layers)
	require.NoError(t, err)
	assert.Equal(t, string(ours2.ConfigJSON), string(cfg), "skillbuild writes cosign's config")

	v, err := rc.Verify(ctx, ref, keySet(t, cosignPub))
	require.NoError(t, err, "skillbuild verifies cosign's signature")
	assert.Equal(t, cosignPub, v.Key)
	v, err = rc.Verify(ctx, ref, keySet(t, trustDir))
	require.NoError(t, err, "cosign sign kept skillbuild's signature")
	assert.Equal(t, oursPub, v.Key)
	r = cosignVerify(t, oursPub, ref)
	assert.Equal(t, 0, r.code, r.stderr)

	_, err = rc.Verify(ctx, ref, keySet(t, strangerPub))
	assert.True(t, errdefs.IsFailedPrecondition(err), "%v", err)
	assert.ErrorContains(t, err, "none of its 2 signatures is by a trusted key")
	t.Logf("refused (untrusted keys): %v", err)

	// A pull with the trust directory verifies, stores and names.
	pulled, host2, err := pullHost2(t, "sign-ok", ref, registry.WithTrustedKeys(keySet(t, trustDir)))
	require.NoError(t, err)
	require.NotNil(t, pulled.Signature)
	assert.Equal(t, oursPub, pulled.Signature.Key)
	assert.Equal(t, pushed.Digest, pulled.Digest)
	rec, err := host2.ImageService().Get(ctx, ref)
	require.NoError(t, err)
	// Later (a run), from the content store alone.
	stored, err := signature.VerifyStored(ctx, host2.ContentStore(), rec.Target, keySet(t, trustDir))
	require.NoError(t, err)
	assert.Equal(t, *pulled.Signature, stored)
	_, err = signature.VerifyStored(ctx, host2.ContentStore(), rec.Target, keySet(t, strangerPub))
	assert.True(t, errdefs.IsFailedPrecondition(err), "%v", err)
	trustHost2(t, "sign-ok")
	r = sbHost2(t, "sign-ok", "run", "--json", "--pull", "never", "--image", ref, "-c", "import sigdep; result = sigdep.VALUE", "sig-a")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, "genuine", resultAs[string](t, decodeRun(t, r.stdout)))

	// Pulled without keys: nothing to verify from until the signature is
	// fetched for the image already there.
	_, later, err := pullHost2(t, "sign-later", ref)
	require.NoError(t, err)
	rec, err = later.ImageService().Get(ctx, ref)
	require.NoError(t, err)
	_, err = signature.VerifyStored(ctx, later.ContentStore(), rec.Target, keySet(t, trustDir))
	assert.True(t, errdefs.IsFailedPrecondition(err), "%v", err)
	assert.ErrorContains(t, err, "not pulled with trusted keys")
	fetched, err := rc.FetchSignature(ctx, later, ref, rec.Target, keySet(t, trustDir))
	require.NoError(t, err)
	stored, err = signature.VerifyStored(ctx, later.ContentStore(), rec.Target, keySet(t, trustDir))
	require.NoError(t, err)
	assert.Equal(t, fetched, stored)

	// A signature by an untrusted key: refused, nothing named.
	_, host2, err = pullHost2(t, "sign-stranger", ref, registry.WithTrustedKeys(keySet(t, strangerPub)))
	assert.True(t, errdefs.IsFailedPrecondition(err), "%v", err)
	requireNotNamed(t, host2, ref)

	// An unsigned image: refused by skillbuild and cosign.
	_, err = rc.Verify(ctx, unsignedRef, keySet(t, trustDir))
	assert.True(t, errdefs.IsFailedPrecondition(err), "%v", err)
	assert.ErrorContains(t, err, "is not signed")
	t.Logf("refused (unsigned): %v", err)
	assert.NotEqual(t, 0, cosignVerify(t, oursPub, unsignedRef).code)
	_, host2, err = pullHost2(t, "sign-unsigned", unsignedRef, registry.WithTrustedKeys(keySet(t, trustDir)))
	assert.True(t, errdefs.IsFailedPrecondition(err), "%v", err)
	requireNotNamed(t, host2, unsignedRef)

	// Signed, but by a key nobody trusts: refused.
	stranger, err := signature.LoadPrivateKey(strangerKey, nil)
	require.NoError(t, err)
	_, err = rc.Sign(ctx, unsignedRef, stranger)
	require.NoError(t, err)
	_, err = rc.Verify(ctx, unsignedRef, keySet(t, trustDir))
	assert.True(t, errdefs.IsFailedPrecondition(err), "%v", err)
	assert.ErrorContains(t, err, "signature 1: not by a trusted key")
	_, host2, err = pullHost2(t, "sign-stranger-signed", unsignedRef, registry.WithTrustedKeys(keySet(t, trustDir)))
	assert.True(t, errdefs.IsFailedPrecondition(err), "%v", err)
	requireNotNamed(t, host2, unsignedRef)

	// skillbuild signs with cosign's encrypted cosign.key; cosign accepts.
	_, err = signature.LoadPrivateKey(cosignKey, []byte("wrong"))
	assert.True(t, errdefs.IsInvalidArgument(err), "%v", err)
	ck, err := signature.LoadPrivateKey(cosignKey, []byte(cosignPassword))
	require.NoError(t, err)
	_, err = rc.Sign(ctx, unsignedRef, ck)
	require.NoError(t, err)
	r = cosignVerify(t, cosignPub, unsignedRef)
	assert.Equal(t, 0, r.code, "cosign verify of skillbuild's signature with cosign.key: %s", r.stderr)

	// The same tag re-pushed with one file of a distribution changed (its
	// layer, diff ID, manifest and index; a consistent image, as a
	// tampering build would push).
	c := suiteClient(t)
	lctx, done, err := c.WithLease(ctx)
	require.NoError(t, err)
	defer done(context.WithoutCancel(ctx)) //nolint:errcheck
	img, err := c.ImageService().Get(ctx, fullName(t, "atom-skill:sig-a-v1"))
	require.NoError(t, err)
	altered := alterFile(t, lctx, c.ContentStore(), img.Target, "sigdep/__init__.py", "genuine", "altered")
	_, err = rc.Push(lctx, c.ContentStore(), altered, ref)
	require.NoError(t, err)
	now, err := regs.plain.TagDigest("skills/sig-a", "v1")
	require.NoError(t, err)
	require.Equal(t, altered.Digest.String(), now, "the tag moved to the altered image")

	_, err = rc.Verify(ctx, ref, keySet(t, trustDir))
	assert.True(t, errdefs.IsFailedPrecondition(err), "%v", err)
	assert.ErrorContains(t, err, "is not signed")
	assert.NotEqual(t, 0, cosignVerify(t, oursPub, ref).code, "cosign refuses it too")

	// The old signature artifact copied to the altered digest's tag: a
	// valid signature by a trusted key, over the old digest.
	copyManifest(t, "skills/sig-a", signature.Tag(pushed.Digest), signature.Tag(altered.Digest))
	_, err = rc.Verify(ctx, ref, keySet(t, trustDir))
	assert.True(t, errdefs.IsFailedPrecondition(err), "%v", err)
	assert.ErrorContains(t, err, "but over another image ("+pushed.Digest.String()+")")
	t.Logf("refused (old signature copied to the altered image): %v", err)
	assert.NotEqual(t, 0, cosignVerify(t, oursPub, ref).code, "cosign checks the digest claim too")
	_, host2, err = pullHost2(t, "sign-altered", ref, registry.WithTrustedKeys(keySet(t, trustDir)))
	assert.True(t, errdefs.IsFailedPrecondition(err), "%v", err)
	requireNotNamed(t, host2, ref)

	// The genuine image, by digest, still verifies.
	_, err = rc.Verify(ctx, regs.plain.Host+"/skills/sig-a@"+pushed.Digest.String(), keySet(t, trustDir))
	assert.NoError(t, err)
}

// copyManifest copies the manifest tagged from to the tag to in repo on
// the plain registry, over the registry API (no client in between).
func copyManifest(t *testing.T, repo, from, to string) {
	t.Helper()
	hc := regs.plain.HTTPClient()
	req, err := http.NewRequest(http.MethodGet, regs.plain.URL()+"/v2/"+repo+"/manifests/"+from, nil)
	require.NoError(t, err)
	req.Header.Set("Accept", ocispec.MediaTypeImageManifest)
	resp, err := hc.Do(req)
	require.NoError(t, err)
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
	req, err = http.NewRequest(http.MethodPut, regs.plain.URL()+"/v2/"+repo+"/manifests/"+to, bytes.NewReader(b))
	require.NoError(t, err)
	req.Header.Set("Content-Type", resp.Header.Get("Content-Type"))
	resp, err = hc.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)
}

// alterFile writes into cs a copy of the image index target whose layer
// holding a file ending in path says to instead of from in it: that
// layer, the config's diff ID, the image manifest and the index change,
// nothing else. It returns the new index.
func alterFile(t *testing.T, ctx context.Context, cs content.Store, target ocispec.Descriptor, path, from, to string) ocispec.Descriptor {
	t.Helper()
	var idx ocispec.Index
	readJSON(t, ctx, cs, target, &idx)
	for i, md := range idx.Manifests {
		if md.Platform == nil || md.Platform.OS != "linux" {
			continue
		}
		var m ocispec.Manifest
		readJSON(t, ctx, cs, md, &m)
		var cfg map[string]json.RawMessage
		readJSON(t, ctx, cs, m.Config, &cfg)
		var rootfs ocispec.RootFS
		require.NoError(t, json.Unmarshal(cfg["rootfs"], &rootfs))
		changed := false
		for j, l := range m.Layers {
			nl, diffID, ok := alterLayer(t, ctx, cs, l, path, from, to)
			if !ok {
				continue
			}
			m.Layers[j], rootfs.DiffIDs[j], changed = nl, diffID, true
		}
		require.True(t, changed, "no layer holds %s", path)
		b, err := json.Marshal(rootfs)
		require.NoError(t, err)
		cfg["rootfs"] = b
		m.Config = writeJSON(t, ctx, cs, m.Config.MediaType, cfg)
		nm := writeJSON(t, ctx, cs, md.MediaType, m)
		nm.Platform, nm.Annotations = md.Platform, md.Annotations
		idx.Manifests[i] = nm
		return writeJSON(t, ctx, cs, target.MediaType, idx)
	}
	t.Fatalf("no linux manifest in %s", target.Digest)
	return ocispec.Descriptor{}
}

// alterLayer rewrites the layer l when it holds a file ending in path,
// replacing from with to in it; it returns the new (gzip) layer and its
// diff ID.
func alterLayer(t *testing.T, ctx context.Context, cs content.Store, l ocispec.Descriptor, path, from, to string) (ocispec.Descriptor, digest.Digest, bool) {
	t.Helper()
	ra, err := cs.ReaderAt(ctx, l)
	require.NoError(t, err)
	defer ra.Close()
	ds, err := compression.DecompressStream(content.NewReader(ra))
	require.NoError(t, err)
	defer ds.Close()
	var tarBuf bytes.Buffer
	tw := tar.NewWriter(&tarBuf)
	tr := tar.NewReader(ds)
	found := false
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		body, err := io.ReadAll(tr)
		require.NoError(t, err)
		if h.Typeflag == tar.TypeReg && strings.HasSuffix(h.Name, path) {
			require.Contains(t, string(body), from)
			body = []byte(strings.ReplaceAll(string(body), from, to))
			h.Size = int64(len(body))
			found = true
		}
		require.NoError(t, tw.WriteHeader(h))
		_, err = tw.Write(body)
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	if !found {
		return ocispec.Descriptor{}, "", false
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, err = zw.Write(tarBuf.Bytes())
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	nl := writeBytes(t, ctx, cs, ocispec.MediaTypeImageLayerGzip, gz.Bytes())
	nl.Annotations = l.Annotations
	return nl, digest.FromBytes(tarBuf.Bytes()), true
}

func readJSON(t *testing.T, ctx context.Context, cs content.Store, d ocispec.Descriptor, v any) {
	t.Helper()
	b, err := content.ReadBlob(ctx, cs, d)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, v))
}

func writeJSON(t *testing.T, ctx context.Context, cs content.Store, mediaType string, v any) ocispec.Descriptor {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return writeBytes(t, ctx, cs, mediaType, b)
}

func writeBytes(t *testing.T, ctx context.Context, cs content.Store, mediaType string, b []byte) ocispec.Descriptor {
	t.Helper()
	d := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(b), Size: int64(len(b))}
	require.NoError(t, content.WriteBlob(ctx, cs, "alter-"+d.Digest.String(), bytes.NewReader(b), d))
	return d
}

// TestSigningFromTheCommandLine: install --push --sign-key signs what it
// pushed (cosign verify --key accepts it); pull and run with
// --trusted-key take only images a trusted key signed: the signed one
// pulls and runs, saying which key signed it; an unsigned one is refused
// before anything is named, and so is a run of it pulled without keys.
func TestSigningFromTheCommandLine(t *testing.T) {
	registries(t)
	srv, _ := index(t, pyindex.Wheel{Name: "clisig-dep", Version: "1.0"})
	dir := t.TempDir()
	priv, pub := writeKeyPair(t, dir, "ours")
	signed := regs.plain.Host + "/clisig/signed:v1"
	unsigned := regs.plain.Host + "/clisig/unsigned:v1"
	plain := []string{"--insecure-registry", regs.plain.Host}

	r := sb(t, append([]string{"install", "--json", "--base", env.base, "--index-url", srv.URL(), "--push", signed, "--sign-key", priv, "clisig-a", "clisig-dep"}, plain...)...)
	require.Equal(t, 0, r.code, r.stderr)
	var doc api.InstallResult
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &doc), r.stdout)
	require.NotNil(t, doc.Push)
	require.NotNil(t, doc.Push.Signed, "the push says it signed")
	assert.Contains(t, doc.Push.Signed.Artifact, ".sig")
	assert.Equal(t, 0, cosignVerify(t, pub, signed).code, "cosign verify --key accepts what skillbuild signed")

	r = sb(t, append([]string{"install", "--json", "--base", env.base, "--index-url", srv.URL(), "--push", unsigned, "clisig-b", "clisig-dep"}, plain...)...)
	require.Equal(t, 0, r.code, r.stderr)

	trustHost2(t, "clisig")
	r = sbHost2(t, "clisig", append([]string{"pull", "--json", "--trusted-key", pub, unsigned}, plain...)...)
	assert.Equal(t, 1, r.code, r.stderr)
	assert.Contains(t, r.stderr, "signature")
	assert.False(t, host2Has(t, "clisig", unsigned), "a refused pull names nothing")

	r = sbHost2(t, "clisig", append([]string{"pull", "--json", "--trusted-key", dir, signed}, plain...)...)
	require.Equal(t, 0, r.code, r.stderr)
	var pulled struct {
		SignedBy string `json:"signed_by"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &pulled), r.stdout)
	assert.Equal(t, pub, pulled.SignedBy)
	d, r := runOnHost2(t, "clisig", signed, "--trusted-key", pub)
	require.Equal(t, 0, r.code, r.stderr)
	require.NotNil(t, d.Admission)
	assert.Equal(t, pub, d.Admission.SignedBy)

	// Pulled without keys, then run with them: refused.
	r = sbHost2(t, "clisig", append([]string{"pull", unsigned}, plain...)...)
	require.Equal(t, 0, r.code, r.stderr)
	_, r = runOnHost2(t, "clisig", unsigned, "--trusted-key", pub)
	assert.Equal(t, 1, r.code, r.stderr)
	assert.Contains(t, r.stderr, "no valid signature by a trusted key")
	// --allow-unscanned runs what could not be verified, never what a
	// required signature check refused.
	_, r = runOnHost2(t, "clisig", unsigned, "--trusted-key", pub, "--allow-unscanned")
	assert.Equal(t, 1, r.code, r.stderr)
	assert.Contains(t, r.stderr, "no valid signature by a trusted key")
}

// runOnHost2 runs result = 1 in image ref on the second host's namespace
// ns, with extra run flags.
func runOnHost2(t *testing.T, ns, ref string, extra ...string) (runDoc, result) {
	t.Helper()
	args := append(append([]string{"run", "--json", "--pull", "never", "--insecure-registry", regs.plain.Host}, extra...), "--image", ref, "-c", "result = 1", "clisig")
	r := sbHost2(t, ns, args...)
	return decodeRun(t, r.stdout), r
}

// host2Has reports whether namespace ns of the second containerd has an
// image named ref.
func host2Has(t *testing.T, ns, ref string) bool {
	t.Helper()
	c, err := ctd.New(regs.host2.Socket, ctd.WithDefaultNamespace(ns), ctd.WithTimeout(10*time.Second))
	require.NoError(t, err)
	defer c.Close()
	_, err = c.ImageService().Get(context.Background(), fullName(t, ref))
	return err == nil
}
