package integration

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	ctd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/platforms"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/skillbuild/skillbuild/internal/ctdtest"
	"github.com/skillbuild/skillbuild/internal/pyindex"
	"github.com/skillbuild/skillbuild/internal/regtest"
	"github.com/skillbuild/skillbuild/skill/api"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The registry tests push to and pull from real registries (Debian's
// docker-registry) that the suite starts on first use: one with TLS from a
// test CA and htpasswd authentication, one on plain HTTP for
// --insecure-registry. A second private containerd plays "another host".
var regs struct {
	once  sync.Once
	err   error
	ca    *regtest.CA
	tls   *regtest.Registry // TLS + auth
	plain *regtest.Registry // plain HTTP, no auth
	host2 *ctdtest.Daemon
}

const (
	regUser     = "ci-bot"
	regPassword = "correct horse battery staple"
)

// registries starts the registries and the second containerd once; a
// failure fails every test that needs them (never a skip).
func registries(t *testing.T) {
	t.Helper()
	regs.once.Do(func() {
		dir := filepath.Join(env.dir, "registries")
		if regs.ca, regs.err = regtest.NewCA(filepath.Join(dir, "ca")); regs.err != nil {
			return
		}
		if regs.tls, regs.err = regtest.Start(filepath.Join(dir, "tls"), cleanEnv(), regtest.WithTLS(regs.ca), regtest.WithAuth(regUser, regPassword)); regs.err != nil {
			return
		}
		if regs.plain, regs.err = regtest.Start(filepath.Join(dir, "plain"), cleanEnv()); regs.err != nil {
			return
		}
		// `docker login` for the TLS registry, where docker keeps it: the
		// suite's HOME is env.dir.
		if regs.err = regtest.WriteDockerConfig(filepath.Join(env.dir, ".docker"), map[string][2]string{regs.tls.Host: {regUser, regPassword}}); regs.err != nil {
			return
		}
		regs.host2, regs.err = ctdtest.Start(filepath.Join(env.dir, "host2"), cleanEnv())
	})
	require.NoError(t, regs.err, "starting the test registries")
}

// stopRegistries is called by the suite's teardown.
func stopRegistries() {
	regs.tls.Stop()
	regs.plain.Stop()
	regs.host2.Stop()
}

// tlsFlags are the flags that let skillbuild reach the TLS registry.
func tlsFlags() []string { return []string{"--registry-ca", regs.ca.CertFile} }

// sbHost2 runs skillbuild against the second containerd with its own root.
func sbHost2(t *testing.T, namespace string, args ...string) result {
	t.Helper()
	full := append([]string{"--address", regs.host2.Socket, "--namespace", namespace, "--root", filepath.Join(env.dir, "host2-root")}, args...)
	return sbArgs(t, full...)
}

// trustHost2 makes namespace ns of the second containerd a host that can
// admit images from elsewhere: the base imported as a base (the same root
// filesystem, so the same layers as the images built on the first) and
// the vulnerability database in its root.
func trustHost2(t *testing.T, ns string) {
	t.Helper()
	rootfs := os.Getenv("SKILLBUILD_TEST_ROOTFS")
	if rootfs == "" {
		rootfs = "/var/cache/skillbuild/rootfs-bookworm"
	}
	r := sbHost2(t, ns, "base", "import", "--rootfs", rootfs, "--name", env.base)
	require.Equal(t, 0, r.code, r.stderr)
	r = sbHost2(t, ns, "db", "import", filepath.Join("..", "scan", "testdata", "PyPI-pypa-20241010.zip"))
	require.Equal(t, 0, r.code, r.stderr)
}

// emptySkill builds a skill without requirements.
func emptySkill(t *testing.T, id string) {
	t.Helper()
	r := sb(t, "install", "--base", env.base, "--find-links", t.TempDir(), "--progress", "plain", id)
	require.Equal(t, 0, r.code, r.stderr)
}

// decodeJSON decodes a command's --json document.
func decodeJSON[T any](t *testing.T, r result) T {
	t.Helper()
	var v T
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &v), "stdout: %s", r.stdout)
	return v
}

// payloadWheels are n wheels named prefix-0..n-1, each carrying size
// bytes of incompressible data, so that a layer's bytes are visible in a
// push's byte count.
func payloadWheels(prefix string, n, size int) []pyindex.Wheel {
	var ws []pyindex.Wheel
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("%s-%d", prefix, i)
		ws = append(ws, payloadWheel(name, size))
	}
	return ws
}

func payloadWheel(name string, size int) pyindex.Wheel {
	rng := rand.New(rand.NewSource(int64(len(name)) * 7919))
	b := make([]byte, size)
	for i := range b {
		b[i] = "abcdefghijklmnopqrstuvwxyz0123456789"[rng.Intn(36)]
	}
	pkg := strings.ReplaceAll(name, "-", "_")
	return pyindex.Wheel{Name: name, Version: "1.0", Files: map[string]string{pkg + "/payload.txt": name + "\n" + string(b)}}
}

// skopeoInspect runs `skopeo inspect` of ref on the TLS registry with the
// suite's credentials and CA; raw gives the manifest as stored.
func skopeoInspect(t *testing.T, ref string, raw bool) []byte {
	t.Helper()
	certDir := filepath.Join(env.dir, "skopeo-certs")
	require.NoError(t, os.MkdirAll(certDir, 0o755))
	ca, err := os.ReadFile(regs.ca.CertFile)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(certDir, "ca.crt"), ca, 0o644))
	args := []string{"inspect", "--cert-dir", certDir, "--authfile", filepath.Join(env.dir, ".docker", "config.json")}
	if raw {
		args = append(args, "--raw")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := regtest.Skopeo(ctx, cleanEnv(), append(args, "docker://"+ref)...)
	require.NoError(t, err)
	return out
}

// newBlobs are the registry's blobs that are not in before.
func newBlobs(before, after map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for d, n := range after {
		if _, ok := before[d]; !ok {
			out[d] = n
		}
	}
	return out
}

func sum(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// TestRegistryPushPullRunOnAnotherHost builds a 10-distribution skill,
// pushes it to the TLS registry with auth, reads it back with skopeo,
// pulls it into a second containerd with an empty content store and runs
// code there. A second skill sharing 9 of the 10 distributions then
// uploads only what it does not share.
func TestRegistryPushPullRunOnAnotherHost(t *testing.T) {
	registries(t)
	const size = 256 << 10
	wheels := append(payloadWheels("regshared", 9, size), payloadWheel("rega-only", size), payloadWheel("regb-only", size))
	srv, _ := index(t, wheels...)
	var common []string
	for i := 0; i < 9; i++ {
		common = append(common, fmt.Sprintf("regshared-%d", i))
	}
	tmpl := regs.tls.Host + "/skills/{id}:v{version}"

	// Other tests push to the same registry: compare with what it had.
	before, err := regs.tls.Blobs()
	require.NoError(t, err)

	// Build and push in one command, as a CI job does.
	start := time.Now()
	args := append([]string{"install", "--json", "--progress", "plain", "--base", env.base, "--index-url", srv.URL(), "--push", tmpl}, tlsFlags()...)
	r := sb(t, append(append(args, "reg-a"), append(common, "rega-only")...)...)
	require.Equal(t, 0, r.code, r.stderr)
	inst := parseInstall(t, r)
	require.NotNil(t, inst.Push)
	refA := regs.tls.Host + "/skills/reg-a:v1"
	assert.Equal(t, refA, inst.Push.Ref)
	blobsA, err := regs.tls.Blobs()
	require.NoError(t, err)
	// Blobs the registry already held in another repository (the base
	// layer, from another test) may be uploaded again or mounted; what is
	// new in its storage was uploaded and counted.
	assert.LessOrEqual(t, sum(newBlobs(before, blobsA)), inst.Push.BytesPushed, "what the registry stored anew was counted")
	assert.Greater(t, inst.Push.BytesPushed, int64(10*size/2), "ten payload layers went up")
	t.Logf("MEASURE push (install --push) of a 10-distribution skill: %d bytes, %d blobs, install+push %s", inst.Push.BytesPushed, inst.Push.Uploaded, time.Since(start))

	// An independent reader sees what was pushed, with the scan verdict.
	var ins struct {
		Digest string
		Labels map[string]string
	}
	require.NoError(t, json.Unmarshal(skopeoInspect(t, refA, false), &ins))
	assert.Equal(t, inst.Push.Digest.String(), ins.Digest)
	assert.Equal(t, "passed", ins.Labels["org.skillbuild.scan"])
	assert.Equal(t, "reg-a", ins.Labels["org.skillbuild.skill.id"])

	// The SBOM and the verdict travel as attestations, in BuildKit's
	// layout, and skopeo reads them.
	checkAttestations(t, refA, []string{"pkg:pypi/regshared-0@1.0", "pkg:pypi/rega-only@1.0"})

	// inspect reads them from the registry without pulling.
	r = sb(t, append(append([]string{"inspect", "--json"}, tlsFlags()...), refA)...)
	require.Equal(t, 0, r.code, r.stderr)
	insp := decodeJSON[api.InspectResult](t, r)
	assert.Equal(t, "registry", insp.Source)
	assert.Equal(t, inst.Push.Digest.String(), insp.Digest)
	assert.Equal(t, "passed", verdictOf(t, insp).Result)
	assert.Contains(t, string(insp.SBOM), "pkg:pypi/rega-only@1.0")

	// Pushing again moves nothing.
	r = sb(t, append(append([]string{"push", "--json"}, tlsFlags()...), "reg-a", tmpl)...)
	require.Equal(t, 0, r.code, r.stderr)
	again := decodeJSON[api.PushResult](t, r)
	assert.Equal(t, int64(0), again.BytesPushed)
	assert.Equal(t, inst.Push.Digest, again.Digest)

	// A second skill sharing 9 of the 10 distributions, pushed to another
	// repository of the same registry: only what it does not share moves
	// (the shared layers are mounted from the first repository).
	out, r := install(t, srv, "reg-b", nil, append(common, "regb-only")...)
	require.Equal(t, 0, r.code, r.stderr)
	start = time.Now()
	r = sb(t, append(append([]string{"push", "--json"}, tlsFlags()...), "reg-b", tmpl)...)
	pushB := time.Since(start)
	require.Equal(t, 0, r.code, r.stderr)
	b := decodeJSON[api.PushResult](t, r)
	blobsB, err := regs.tls.Blobs()
	require.NoError(t, err)
	added := newBlobs(blobsA, blobsB)
	assert.Equal(t, sum(added), b.BytesPushed, "the bytes reported are the bytes the registry stored anew")
	la, lb := layers(t, "atom-skill:reg-a-v1"), layers(t, out.ImageTag)
	var differing []string
	for i := range lb {
		if la[i] != lb[i] {
			differing = append(differing, lb[i])
		}
	}
	// The unshared distribution's layer and the lock file's.
	require.Len(t, differing, 2)
	for _, d := range differing {
		assert.Contains(t, added, d, "a layer of its own was uploaded")
	}
	for _, d := range lb {
		if !contains(differing, d) {
			assert.NotContains(t, added, d, "a shared layer was not uploaded")
		}
	}
	assert.Less(t, b.BytesPushed, int64(2*size), "about one payload layer moved")
	t.Logf("MEASURE push of a second skill sharing 9/10 distributions: %d bytes (%d blobs uploaded, %d already there) in %s; first skill: %d bytes",
		b.BytesPushed, b.Uploaded, b.Skipped, pushB, inst.Push.BytesPushed)

	// Another host: a second containerd whose content store is empty.
	start = time.Now()
	r = sbHost2(t, namespace, append(append([]string{"pull", "--json"}, tlsFlags()...), refA)...)
	require.Equal(t, 0, r.code, r.stderr)
	pulled := decodeJSON[api.PullResult](t, r)
	t.Logf("MEASURE pull into an empty content store: %d bytes in %s", pulled.BytesFetched, time.Since(start))
	assert.Equal(t, inst.Push.Digest, pulled.Digest)
	assert.GreaterOrEqual(t, pulled.BytesFetched, int64(10*size/2), "everything came over the network")
	assert.Contains(t, pulled.Names, "docker.io/library/atom-skill:reg-a-v1", "tagged as the skill")
	assert.Equal(t, "passed", pulled.Labels["org.skillbuild.scan"], "the scan verdict travels with the image")

	// The pulled image carries its attestations in the local store.
	r = sbHost2(t, namespace, "inspect", "--json", "reg-a")
	require.Equal(t, 0, r.code, r.stderr)
	insp = decodeJSON[api.InspectResult](t, r)
	assert.Equal(t, "containerd", insp.Source)
	assert.Equal(t, inst.Push.Digest.String(), insp.Digest)
	assert.Equal(t, "passed", verdictOf(t, insp).Result)
	assert.Contains(t, string(insp.SBOM), "pkg:pypi/regshared-8@1.0")

	// Run here once admitted: its layers hold its lock, on this host's
	// base, and the lock passes this host's scan.
	trustHost2(t, namespace)
	r = sbHost2(t, namespace, "run", "--json", "-c", "import regshared_0, rega_only; result = {'ok': True}", "reg-a")
	require.Equal(t, 0, r.code, r.stderr)
	d := decodeRun(t, r.stdout)
	requireClean(t, d)
	assert.Equal(t, map[string]any{"ok": true}, resultAs[map[string]any](t, d))

	// run --pull (default: missing, because the name names a registry)
	// pulls by itself, in yet another namespace.
	refB := regs.tls.Host + "/skills/reg-b:v1"
	trustHost2(t, "other")
	r = sbHost2(t, "other", append(append([]string{"run", "--json"}, tlsFlags()...), "--image", refB, "-c", "import regb_only; result = 1", "reg-b")...)
	require.Equal(t, 0, r.code, r.stderr)
	requireClean(t, decodeRun(t, r.stdout))
	assert.Contains(t, r.stderr, "pulled "+refB)

	// --pull never does not reach out.
	r = sbHost2(t, "third", append(append([]string{"run", "--json", "--pull", "never"}, tlsFlags()...), "--image", refB, "-c", "result = 1", "reg-b")...)
	assert.Equal(t, 4, r.code, "not found locally: %s", r.stderr)
}

// verdictOf decodes the verdict attestation an inspect document carries.
func verdictOf(t *testing.T, insp api.InspectResult) api.VerdictPredicate {
	t.Helper()
	var v api.VerdictPredicate
	require.NoError(t, json.Unmarshal(insp.Verdict, &v), "verdict: %s", insp.Verdict)
	return v
}

// checkAttestations reads ref with skopeo only: an index holding the
// image manifest and an attestation manifest pointing back at it, whose
// in-toto statements are the SPDX SBOM (with purls) and the verdict.
func checkAttestations(t *testing.T, ref string, purls []string) {
	t.Helper()
	var index struct {
		MediaType string `json:"mediaType"`
		Manifests []struct {
			Digest      string            `json:"digest"`
			Annotations map[string]string `json:"annotations"`
			Platform    struct{ OS string }
		} `json:"manifests"`
	}
	raw := skopeoInspect(t, ref, true)
	require.NoError(t, json.Unmarshal(raw, &index), string(raw))
	assert.Equal(t, "application/vnd.oci.image.index.v1+json", index.MediaType)
	require.Len(t, index.Manifests, 2)
	img, att := index.Manifests[0], index.Manifests[1]
	assert.Equal(t, "linux", img.Platform.OS)
	assert.Equal(t, "attestation-manifest", att.Annotations["vnd.docker.reference.type"])
	assert.Equal(t, img.Digest, att.Annotations["vnd.docker.reference.digest"])
	assert.Equal(t, "unknown", att.Platform.OS)

	// Copy the attestation manifest out as an OCI layout and read its
	// statements from the blobs skopeo wrote.
	repo := ref[:strings.LastIndex(ref, ":")]
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, err := regtest.Skopeo(ctx, cleanEnv(), "copy", "--src-cert-dir", filepath.Join(env.dir, "skopeo-certs"),
		"--src-authfile", filepath.Join(env.dir, ".docker", "config.json"), "docker://"+repo+"@"+att.Digest, "oci:"+dir+":att")
	require.NoError(t, err)
	var mf struct {
		Layers []struct {
			MediaType   string            `json:"mediaType"`
			Digest      string            `json:"digest"`
			Annotations map[string]string `json:"annotations"`
		} `json:"layers"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "blobs", "sha256", strings.TrimPrefix(att.Digest, "sha256:")))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &mf))
	types := map[string]json.RawMessage{}
	for _, l := range mf.Layers {
		assert.Equal(t, "application/vnd.in-toto+json", l.MediaType)
		b, err := os.ReadFile(filepath.Join(dir, "blobs", "sha256", strings.TrimPrefix(l.Digest, "sha256:")))
		require.NoError(t, err)
		var st struct {
			Type          string `json:"_type"`
			PredicateType string `json:"predicateType"`
			Subject       []struct {
				Digest map[string]string `json:"digest"`
			} `json:"subject"`
			Predicate json.RawMessage `json:"predicate"`
		}
		require.NoError(t, json.Unmarshal(b, &st))
		assert.Equal(t, "https://in-toto.io/Statement/v1", st.Type)
		assert.Equal(t, l.Annotations["in-toto.io/predicate-type"], st.PredicateType)
		require.Len(t, st.Subject, 1)
		assert.Equal(t, strings.TrimPrefix(img.Digest, "sha256:"), st.Subject[0].Digest["sha256"], "the statement is about the image manifest")
		types[st.PredicateType] = st.Predicate
	}
	require.Contains(t, types, "https://spdx.dev/Document")
	var sbom struct {
		SPDXVersion string `json:"spdxVersion"`
		Packages    []struct {
			Name         string `json:"name"`
			ExternalRefs []struct {
				Locator string `json:"referenceLocator"`
			} `json:"externalRefs"`
			Checksums []struct{ Algorithm, ChecksumValue string } `json:"checksums"`
		} `json:"packages"`
	}
	require.NoError(t, json.Unmarshal(types["https://spdx.dev/Document"], &sbom))
	assert.Equal(t, "SPDX-2.3", sbom.SPDXVersion)
	var got []string
	for _, p := range sbom.Packages {
		for _, r := range p.ExternalRefs {
			got = append(got, r.Locator)
			require.Len(t, p.Checksums, 1, p.Name)
			assert.Len(t, p.Checksums[0].ChecksumValue, 64, "the wheel's sha256")
		}
	}
	for _, p := range purls {
		assert.Contains(t, got, p)
	}
	require.Contains(t, types, "https://github.com/skillbuild/skillbuild/attestation/scan-verdict/v1")
	var verdict api.VerdictPredicate
	require.NoError(t, json.Unmarshal(types["https://github.com/skillbuild/skillbuild/attestation/scan-verdict/v1"], &verdict))
	assert.Equal(t, "passed", verdict.Result)
	require.NotNil(t, verdict.DB, "a passing verdict names its database")
	assert.Len(t, verdict.DB.SHA256, 64)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestRegistryImagesAreVerifiedHere: an image from a registry runs only
// once this host has verified it, whatever it says of itself: a lock its
// layers hold, on a base this host trusts, that passes this host's scan
// under this host's policy. A verdict the builder reached with its own
// allow-list, or a build with the scan off, count for nothing; without
// the base it is refused unless --allow-unscanned, which the result
// records.
func TestRegistryImagesAreVerifiedHere(t *testing.T) {
	registries(t)
	srv, _ := index(t, pyindex.Wheel{Name: "verified-dep", Version: "1.0"})
	const allowPip = "PYSEC-2023-228@pip:2099-01-01:the builder's own reason"
	build := func(id string, flags []string, reqs ...string) string {
		ref := regs.tls.Host + "/skills/" + id + ":v1"
		args := append(append([]string{"install", "--json", "--progress", "plain", "--base", env.base, "--index-url", srv.URL(), "--push", ref}, flags...), tlsFlags()...)
		r := sb(t, append(append(args, id), reqs...)...)
		require.Equal(t, 0, r.code, r.stderr)
		return ref
	}
	run := func(ns, ref string, extra ...string) (runDoc, result) {
		t.Helper()
		args := append(append(append([]string{"run", "--json"}, tlsFlags()...), extra...), "--image", ref, "-c", "result = 1", "verified")
		r := sbHost2(t, ns, args...)
		return decodeRun(t, r.stdout), r
	}

	clean := build("verified-clean", nil, "verified-dep")
	allowed := build("verified-allowed", []string{"--allow", allowPip}, "pip==23.0.1")
	noScan := build("verified-noscan", []string{"--no-scan"}, "pip==23.0.1")

	// A host without the base: nothing to verify the layers against.
	d, r := run("verify-nobase", clean)
	assert.Equal(t, 1, r.code, r.stderr)
	require.NotNil(t, d.Error)
	assert.Contains(t, d.Error.Message, "not those of any base image of this host")
	assert.Contains(t, d.Error.Message, "--allow-unscanned")
	d, r = run("verify-nobase", clean, "--allow-unscanned")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, d.Unscanned, "was not verified")
	assert.Contains(t, r.stderr, "WARNING")

	trustHost2(t, "verify")
	d, r = run("verify", clean)
	require.Equal(t, 0, r.code, r.stderr)
	requireClean(t, d)
	require.NotNil(t, d.Admission)
	assert.Equal(t, "a registry", d.Admission.Origin)
	assert.Equal(t, "passed", d.Admission.Scan, "this host scanned the lock")
	assert.Equal(t, "localhost/skillbuild/python:3.11-bookworm", d.Admission.Base)

	// The same image with a lock that names fewer distributions than its
	// layers hold is refused, whatever its labels say.
	forged := forgeEmptyLock(t, "verify", clean)
	d, r = run("verify", forged)
	assert.Equal(t, 1, r.code, r.stderr)
	require.NotNil(t, d.Error)
	assert.Contains(t, d.Error.Message, "holds no distribution of its lock")

	for _, ref := range []string{allowed, noScan} {
		d, r = run("verify", ref)
		assert.Equal(t, 3, r.code, "%s: refused for pip 23.0.1 by this host's scan: %s", ref, r.stderr)
		require.NotNil(t, d.Error, ref)
		assert.Contains(t, d.Error.Message, "PYSEC-2023-228", ref)
		d, r = run("verify", ref, "--allow-unscanned")
		assert.Equal(t, 3, r.code, "--allow-unscanned does not accept a known vulnerability: %s", r.stderr)
	}
	// This host's own allow-list admits it.
	d, r = run("verify", allowed, "--allow", allowPip)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, "passed-with-allowed", d.Admission.Scan)

	// The API admits through the same function: the vulnerable image is
	// refused, and so is the base unless the operator allows bases.
	r = sb(t, append(append([]string{"pull", "--json"}, tlsFlags()...), noScan)...)
	require.Equal(t, 0, r.code, r.stderr)
	s := startServe(t, "--allow-base-images=false")
	status, code, body := s.call(t, http.MethodPost, "/v1/run", map[string]any{"skill_id": "verified", "image": noScan, "code": "result = 1"})
	assert.Equal(t, 422, status, "%s", body)
	assert.Equal(t, "3", code)
	assert.Contains(t, string(body), "PYSEC-2023-228")
	status, code, body = s.call(t, http.MethodPost, "/v1/run", map[string]any{"skill_id": "verified", "image": env.base, "code": "result = 1"})
	assert.Equal(t, 400, status, "%s", body)
	assert.Equal(t, "2", code)
	assert.Contains(t, string(body), "--allow-base-images")
	s.stop(t)
}

// forgeEmptyLock makes, in namespace ns of the second containerd, a copy of
// the image ref names whose lock file is empty (its distribution layers
// unchanged), and returns its name.
func forgeEmptyLock(t *testing.T, ns, ref string) string {
	t.Helper()
	ctx := context.Background()
	c, err := ctd.New(regs.host2.Socket, ctd.WithDefaultNamespace(ns), ctd.WithTimeout(10*time.Second))
	require.NoError(t, err)
	defer c.Close()
	cs := c.ContentStore()
	rec, err := c.ImageService().Get(ctx, fullName(t, ref))
	require.NoError(t, err)
	mdesc, err := images.Manifest(ctx, cs, rec.Target, platforms.Default())
	require.NoError(t, err)
	var cfg ocispec.Image
	b, err := content.ReadBlob(ctx, cs, mdesc.Config)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &cfg))
	put := func(b []byte, mt string) ocispec.Descriptor {
		d := ocispec.Descriptor{MediaType: mt, Digest: digest.FromBytes(b), Size: int64(len(b))}
		require.NoError(t, content.WriteBlob(ctx, cs, d.Digest.String(), bytes.NewReader(b), d, content.WithLabels(map[string]string{"containerd.io/gc.root": "forged"})))
		return d
	}
	var lockTar bytes.Buffer
	tw := tar.NewWriter(&lockTar)
	require.NoError(t, tw.WriteHeader(&tar.Header{Name: "opt/skill/requirements.lock", Typeflag: tar.TypeReg, Mode: 0o644, Size: 0}))
	require.NoError(t, tw.Close())
	layer := put(lockTar.Bytes(), ocispec.MediaTypeImageLayer)
	mdesc.Layers[len(mdesc.Layers)-1] = layer
	cfg.RootFS.DiffIDs[len(cfg.RootFS.DiffIDs)-1] = layer.Digest
	cb, err := json.Marshal(cfg)
	require.NoError(t, err)
	mdesc.Config = put(cb, ocispec.MediaTypeImageConfig)
	mb, err := json.Marshal(mdesc)
	require.NoError(t, err)
	target := put(mb, ocispec.MediaTypeImageManifest)
	name := "localhost/forged/" + strings.ReplaceAll(ns, "/", "-") + ":empty-lock"
	_, err = c.ImageService().Create(ctx, images.Image{Name: name, Target: target, Labels: map[string]string{"org.skillbuild.origin": "registry"}})
	require.NoError(t, err)
	return name
}

// TestRegistryErrors: wrong or missing credentials name the registry and
// the config file; an unreachable registry is exit 75; a reference
// without a tag is exit 2; an unknown CA says how to trust it.
func TestRegistryErrors(t *testing.T) {
	registries(t)
	emptySkill(t, "reg-errors")
	ref := regs.tls.Host + "/skills/errors:v1"

	wrong := t.TempDir()
	require.NoError(t, regtest.WriteDockerConfig(wrong, map[string][2]string{regs.tls.Host: {regUser, "wrong password"}}))
	r := sb(t, append(append([]string{"push", "--docker-config", wrong}, tlsFlags()...), "reg-errors", ref)...)
	assert.NotEqual(t, 0, r.code)
	assert.Contains(t, r.stderr, regs.tls.Host)
	assert.Contains(t, r.stderr, filepath.Join(wrong, "config.json"))
	assert.Contains(t, r.stderr, "docker login "+regs.tls.Host)
	assert.Contains(t, r.stderr, "refused the credentials")

	none := t.TempDir()
	r = sb(t, append(append([]string{"push", "--docker-config", none}, tlsFlags()...), "reg-errors", ref)...)
	assert.NotEqual(t, 0, r.code)
	assert.Contains(t, r.stderr, "docker login "+regs.tls.Host)
	tag, err := regs.tls.TagDigest("skills/errors", "v1")
	require.NoError(t, err)
	assert.Empty(t, tag, "nothing was tagged")

	r = sb(t, "push", "--registry-ca", regs.ca.CertFile, "reg-errors", "127.0.0.1:1/skills/errors:v1")
	assert.Equal(t, 75, r.code, "unreachable is temporary: %s", r.stderr)
	assert.Contains(t, r.stderr, "unreachable")

	r = sb(t, append([]string{"push"}, append(tlsFlags(), "reg-errors", regs.tls.Host+"/skills/errors")...)...)
	assert.Equal(t, 2, r.code, "a reference without a tag is bad input: %s", r.stderr)
	assert.Contains(t, r.stderr, "no tag or digest")

	r = sb(t, "push", "reg-errors", ref)
	assert.NotEqual(t, 0, r.code, "the test CA is not a system CA")
	assert.Contains(t, r.stderr, "--registry-ca")

	r = sb(t, "push", "reg-errors")
	assert.Equal(t, 2, r.code, "no REF and a name without a registry: %s", r.stderr)
}

// TestRegistryInsecure: a plain-HTTP registry is used only when named with
// --insecure-registry.
func TestRegistryInsecure(t *testing.T) {
	registries(t)
	emptySkill(t, "reg-insecure")
	ref := regs.plain.Host + "/skills/insecure:v1"

	r := sb(t, "push", "reg-insecure", ref)
	assert.NotEqual(t, 0, r.code, "plain HTTP without --insecure-registry is refused")
	assert.Contains(t, r.stderr, "--insecure-registry "+regs.plain.Host)
	tag, err := regs.plain.TagDigest("skills/insecure", "v1")
	require.NoError(t, err)
	assert.Empty(t, tag)

	r = sb(t, "push", "--json", "--insecure-registry", regs.plain.Host, "reg-insecure", ref)
	require.Equal(t, 0, r.code, r.stderr)
	p := decodeJSON[api.PushResult](t, r)
	tag, err = regs.plain.TagDigest("skills/insecure", "v1")
	require.NoError(t, err)
	assert.Equal(t, p.Digest.String(), tag)
}

// stallingProxy forwards to the plain registry but holds every blob
// upload until the client goes away, and says when the first one arrived.
func stallingProxy(t *testing.T) (host string, uploading <-chan struct{}) {
	t.Helper()
	target, err := url.Parse(regs.plain.URL())
	require.NoError(t, err)
	rp := httputil.NewSingleHostReverseProxy(target)
	ch := make(chan struct{})
	var once sync.Once
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/blobs/uploads/") && (r.Method == http.MethodPut || r.Method == http.MethodPatch) {
			once.Do(func() { close(ch) })
			<-r.Context().Done()
			return
		}
		rp.ServeHTTP(w, r)
	})}
	l, err := newLocalListener()
	require.NoError(t, err)
	go srv.Serve(l) //nolint:errcheck
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String(), ch
}

// TestRegistryInterruptedPushKeepsTag kills a push in the middle of its
// uploads: the registry's tag still points at the previous image, and a
// new push then completes.
func TestRegistryInterruptedPushKeepsTag(t *testing.T) {
	registries(t)
	srv, _ := index(t, payloadWheel("interrupt-one", 64<<10), payloadWheel("interrupt-two", 64<<10))
	_, r := install(t, srv, "reg-interrupt", nil, "interrupt-one")
	require.Equal(t, 0, r.code, r.stderr)
	r = sb(t, "push", "--json", "--insecure-registry", regs.plain.Host, "reg-interrupt", regs.plain.Host+"/skills/interrupt:stable")
	require.Equal(t, 0, r.code, r.stderr)
	first := decodeJSON[api.PushResult](t, r)

	_, r = install(t, srv, "reg-interrupt", []string{"--version", "2"}, "interrupt-one", "interrupt-two")
	require.Equal(t, 0, r.code, r.stderr)
	proxy, uploading := stallingProxy(t)
	cmd := sbCmd("push", "--version", "2", "--insecure-registry", proxy, "reg-interrupt", proxy+"/skills/interrupt:stable")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	select {
	case <-uploading:
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill() //nolint:errcheck
		t.Fatalf("the push never started uploading: %s", stderr.String())
	}
	require.NoError(t, cmd.Process.Kill())
	cmd.Wait() //nolint:errcheck

	tag, err := regs.plain.TagDigest("skills/interrupt", "stable")
	require.NoError(t, err)
	assert.Equal(t, first.Digest.String(), tag, "the interrupted push left the tag where it was")

	r = sb(t, "push", "--json", "--version", "2", "--insecure-registry", regs.plain.Host, "reg-interrupt", regs.plain.Host+"/skills/interrupt:stable")
	require.Equal(t, 0, r.code, r.stderr)
	second := decodeJSON[api.PushResult](t, r)
	assert.NotEqual(t, first.Digest, second.Digest)
	tag, err = regs.plain.TagDigest("skills/interrupt", "stable")
	require.NoError(t, err)
	assert.Equal(t, second.Digest.String(), tag)
}

func newLocalListener() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }
