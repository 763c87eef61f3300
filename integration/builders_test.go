package integration

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images/archive"
	"github.com/distribution/reference"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/skillbuild/skillbuild/internal/mounts"
	"github.com/skillbuild/skillbuild/internal/pyindex"
	"github.com/skillbuild/skillbuild/scan"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// noContainerd is a containerd address nothing listens on: builds with
// the OCI worker must not need one.
const noContainerd = "/nonexistent/containerd.sock"

// baseArchiveOnce exports the suite's base image from its containerd as
// an OCI archive: the same image, so every builder starts from the same
// base layer.
var baseArchiveOnce = sync.OnceValues(func() (string, error) {
	c, err := client.New(env.socket, client.WithDefaultNamespace(namespace))
	if err != nil {
		return "", err
	}
	defer c.Close()
	named, err := reference.ParseNormalizedNamed(env.base)
	if err != nil {
		return "", err
	}
	p := filepath.Join(env.dir, "base.oci.tar")
	f, err := os.Create(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	return p, c.Export(context.Background(), f, archive.WithImage(c.ImageService(), reference.TagNameOnly(named).String()))
})

func baseArchive(t testing.TB) string {
	t.Helper()
	p, err := baseArchiveOnce()
	require.NoError(t, err, "export the base image")
	return p
}

// newRoot is a fresh skillbuild state root holding the suite's
// vulnerability database (another client of a shared builder).
func newRoot(t testing.TB) string {
	t.Helper()
	root, err := os.MkdirTemp(env.dir, "root-")
	require.NoError(t, err)
	rememberRoot(root)
	t.Cleanup(func() {
		mounts.UnmountUnder(root) //nolint:errcheck // never remove through a mount
		os.RemoveAll(root)
	})
	out, err := exec.Command("cp", "-a", scan.Dir(env.root), scan.Dir(root)).CombinedOutput()
	require.NoError(t, err, string(out))
	return root
}

// installOn runs `skillbuild install --json` with global flags first
// (e.g. --root, --builder; they override the suite's defaults).
func installOn(t *testing.T, global []string, srv *pyindex.Server, id string, extra []string, reqs ...string) (installJSON, result) {
	t.Helper()
	args := append(append([]string{}, global...), "install", "--json", "--progress", "plain", "--base", env.base, "--index-url", srv.URL())
	args = append(append(append(args, extra...), id), reqs...)
	r := sb(t, args...)
	return parseInstall(t, r), r
}

// ociImageLayers reads the layer digests of the only image in an OCI
// layout, given as a file reader by path.
func ociImageLayers(t *testing.T, read func(name string) ([]byte, error)) []string {
	t.Helper()
	b, err := read("index.json")
	require.NoError(t, err)
	var idx ocispec.Index
	require.NoError(t, json.Unmarshal(b, &idx))
	require.Len(t, idx.Manifests, 1, "index.json: %s", b)
	b, err = read("blobs/sha256/" + idx.Manifests[0].Digest.Encoded())
	require.NoError(t, err)
	var m ocispec.Manifest
	require.NoError(t, json.Unmarshal(b, &m))
	var out []string
	for _, l := range m.Layers {
		out = append(out, l.Digest.String())
	}
	return out
}

// archiveFiles reads the JSON and other small files of an OCI archive.
func archiveFiles(t *testing.T, file string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	f, err := os.Open(file)
	require.NoError(t, err)
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		require.NoError(t, err, "%s is not a tar archive", file)
		if strings.HasSuffix(h.Name, ".json") || h.Size < 1<<20 {
			b, err := io.ReadAll(tr)
			require.NoError(t, err)
			files[strings.TrimPrefix(h.Name, "./")] = b
		}
	}
}

func archiveLayers(t *testing.T, file string) []string {
	t.Helper()
	files := archiveFiles(t, file)
	return ociImageLayers(t, func(name string) ([]byte, error) {
		if b, ok := files[name]; ok {
			return b, nil
		}
		return nil, fmt.Errorf("%s not in %s", name, file)
	})
}

func layoutLayers(t *testing.T, dir string) []string {
	t.Helper()
	return ociImageLayers(t, func(name string) ([]byte, error) { return os.ReadFile(filepath.Join(dir, name)) })
}

func TestBuildersProduceTheSameImage(t *testing.T) {
	srv, _ := index(t, pyindex.Wheel{Name: "same-a", Version: "1.0", Requires: []string{"same-b"}}, pyindex.Wheel{Name: "same-b", Version: "2.0"})

	// embedded: the containerd worker, into the suite's containerd.
	emb, r := install(t, srv, "same-image", nil, "same-a==1.0")
	require.Equal(t, 0, r.code, r.stderr)
	want := layers(t, emb.ImageTag)
	require.GreaterOrEqual(t, len(want), 4, "base, venv, two distributions, ...")

	// embedded-oci: no containerd reachable at all.
	archiveFile := filepath.Join(t.TempDir(), "same-image.tar")
	ociRoot := newRoot(t)
	oci, r := installOn(t, []string{"--root", ociRoot, "--address", noContainerd, "--builder", "embedded-oci", "--base-archive", baseArchive(t)},
		srv, "same-image", []string{"--output", "oci-archive=" + archiveFile}, "same-a==1.0")
	require.Equal(t, 0, r.code, r.stderr)
	assert.True(t, oci.Success)
	assert.Equal(t, want, archiveLayers(t, archiveFile), "embedded-oci layers")
	assertNoEngineLeftovers(t, ociRoot)

	// A buildkitd on a unix socket, into an OCI layout and loaded into
	// the suite's containerd under another repository.
	d := startBuildkitd(t, false)
	layout := filepath.Join(t.TempDir(), "layout")
	rem, r := installOn(t, append([]string{"--root", newRoot(t), "--base-archive", baseArchive(t)}, d.BuilderFlags()...),
		srv, "same-image", []string{"--repo", "remote-skill", "--output", "oci-layout=" + layout, "--load"}, "same-a==1.0")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, want, layoutLayers(t, layout), "remote builder layers")
	assert.Equal(t, want, layers(t, rem.ImageTag), "loaded image layers")
	assert.NotEmpty(t, rem.Digest)
	assert.Equal(t, "remote-skill:same-image-v1", rem.ImageTag)

	// The loaded image runs like the embedded one.
	out, err := runIn(t, rem.ImageTag, "/opt/skill/venv/bin/python", "-c", "import same_a, same_b; print('ok')")
	require.NoError(t, err)
	assert.Equal(t, "ok\n", out)
}

func TestBuilderEmbeddedOCIGateRefusesBeforeInstall(t *testing.T) {
	srv, _ := index(t)
	out := t.TempDir()
	res, r := installOn(t, []string{"--root", newRoot(t), "--address", noContainerd, "--builder", "embedded-oci", "--base-archive", baseArchive(t)},
		srv, "oci-vuln", []string{"--output", "oci-layout=" + out}, "pip==23.0.1")
	require.Equal(t, 3, r.code, r.stderr)
	assert.Equal(t, "refused", res.Scan)
	assert.Empty(t, installSteps(res.Steps), "nothing was installed")
	assert.NotEmpty(t, res.Vulnerabilities)
	_, err := os.Stat(filepath.Join(out, "index.json"))
	assert.True(t, os.IsNotExist(err), "no image was named in the layout")
}

func TestBuilderWithoutContainerdNeedsAnOutput(t *testing.T) {
	srv, _ := index(t)
	res, r := installOn(t, []string{"--root", newRoot(t), "--address", noContainerd, "--builder", "embedded-oci", "--base-archive", baseArchive(t)},
		srv, "no-output", nil, "pip")
	assert.Equal(t, 2, r.code, r.stderr)
	assert.Contains(t, res.Error, "--output oci-archive=FILE")
}

// TestBuilderWithoutContainerdPushIsBadInput: a push (or a load) that
// cannot work on this builder is refused before anything is built, as
// bad input (exit 2, which CI does not retry), naming what to add.
func TestBuilderWithoutContainerdPushIsBadInput(t *testing.T) {
	srv, _ := index(t)
	oci := []string{"--root", newRoot(t), "--address", noContainerd, "--builder", "embedded-oci", "--base-archive", baseArchive(t)}
	for _, tc := range []struct {
		name  string
		extra []string
		want  string
	}{
		{"push without --load", []string{"--push", "127.0.0.1:5999/x/{id}:v{version}"}, "add --load"},
		{"push with --load and no containerd", []string{"--push", "127.0.0.1:5999/x/{id}:v{version}", "--load"}, noContainerd},
		{"load and no containerd", []string{"--load"}, noContainerd},
		{"push reference that does not expand", []string{"--push", "127.0.0.1:5999/x/{nope}", "--load"}, "--push"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, r := installOn(t, oci, srv, "push-oci", append([]string{"--output", "oci-layout=" + t.TempDir()}, tc.extra...), "pip")
			assert.Equal(t, 2, r.code, r.stderr)
			assert.Contains(t, res.Error, tc.want)
			assert.Empty(t, res.Steps, "nothing was built")
		})
	}
}

func TestBuilderUnreachableIsTemporary(t *testing.T) {
	srv, _ := index(t)
	for _, addr := range []string{"unix://" + filepath.Join(env.dir, "no-buildkitd.sock"), fmt.Sprintf("tcp://127.0.0.1:%d", freePort(t))} {
		res, r := installOn(t, []string{"--builder", addr}, srv, "unreachable", []string{"--load"}, "pip")
		assert.Equal(t, 75, r.code, r.stderr)
		assert.Contains(t, res.Error, addr, "the error names the builder")
	}
}

func TestBuilderRemoteMutualTLS(t *testing.T) {
	srv, _ := index(t, pyindex.Wheel{Name: "tls-pkg", Version: "1.0"})
	d := startBuildkitd(t, true)
	archiveFile := filepath.Join(t.TempDir(), "tls.tar")
	global := append([]string{"--root", newRoot(t), "--base-archive", baseArchive(t)}, d.BuilderFlags()...)
	res, r := installOn(t, global, srv, "tls-skill", []string{"--output", "oci-archive=" + archiveFile}, "tls-pkg==1.0")
	require.Equal(t, 0, r.code, r.stderr)
	assert.GreaterOrEqual(t, len(archiveLayers(t, archiveFile)), 3)
	assert.Equal(t, []string{"install tls-pkg==1.0"}, installSteps(res.Steps))

	// Without a client certificate, or trusting another CA, the builder
	// is not reachable: a temporary failure naming its address.
	for name, flags := range map[string][]string{
		"no client certificate": {"--builder", d.Addr, "--builder-ca", d.TLS.CA},
		"wrong CA":              {"--builder", d.Addr, "--builder-ca", d.TLS.OtherCA, "--builder-cert", d.TLS.ClientCert, "--builder-key", d.TLS.ClientKey},
	} {
		res, r := installOn(t, append([]string{"--base-archive", baseArchive(t)}, flags...), srv, "tls-skill", []string{"--output", "oci-archive=" + archiveFile + ".2"}, "tls-pkg==1.0")
		assert.Equal(t, 75, r.code, "%s: %s", name, r.stderr)
		assert.Contains(t, res.Error, d.Addr, name)
	}
}

func TestBuilderRemoteCacheIsSharedByClients(t *testing.T) {
	var wheels []pyindex.Wheel
	var nine []string
	for i := 0; i < 9; i++ {
		name := fmt.Sprintf("fleet-%d", i)
		wheels = append(wheels, pyindex.Wheel{Name: name, Version: "1.0"})
		nine = append(nine, name+"==1.0")
	}
	wheels = append(wheels, pyindex.Wheel{Name: "fleet-a", Version: "1.0"}, pyindex.Wheel{Name: "fleet-b", Version: "1.0"})
	srv, _ := index(t, wheels...)
	d := startBuildkitd(t, false)

	// Two clients, each with its own state root, build different skills.
	clientA := append([]string{"--root", newRoot(t), "--base-archive", baseArchive(t)}, d.BuilderFlags()...)
	clientB := append([]string{"--root", newRoot(t), "--base-archive", baseArchive(t)}, d.BuilderFlags()...)
	a, r := installOn(t, clientA, srv, "fleet-a", []string{"--output", "oci-layout=" + filepath.Join(t.TempDir(), "a")}, append(nine, "fleet-a==1.0")...)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Len(t, installSteps(a.Steps), 10)
	b, r := installOn(t, clientB, srv, "fleet-b", []string{"--output", "oci-layout=" + filepath.Join(t.TempDir(), "b")}, append(nine, "fleet-b==1.0")...)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, []string{"install fleet-b==1.0"}, installSteps(b.Steps), "the second client installs only what the first did not")
}

func TestBuilderRemoteDyingMidBuildLeavesNoTag(t *testing.T) {
	srv, dir := index(t)
	nap := newStepNap(t, 120)
	_, err := pyindex.BuildSdist(dir, pyindex.Sdist{Name: "slowremote", Version: "1.0", Prelude: nap.prelude("True")})
	require.NoError(t, err)
	d := startBuildkitd(t, false)
	out := t.TempDir()
	archiveFile, layout := filepath.Join(out, "dies.tar"), filepath.Join(out, "layout")
	args := append([]string{"--root", newRoot(t), "--base-archive", baseArchive(t)}, d.BuilderFlags()...)
	args = append(args, "install", "--json", "--progress", "plain", "--allow-sdist", "--base", env.base, "--index-url", srv.URL(),
		"--load", "--repo", "dies", "--output", "oci-archive="+archiveFile, "--output", "oci-layout="+layout, "dies-mid-build", "slowremote")
	cmd := sbCmd(args...)
	stderr, stdout := &syncBuffer{}, &syncBuffer{}
	cmd.Stderr, cmd.Stdout = stderr, stdout
	require.NoError(t, cmd.Start())
	// Wait until the sdist's code runs in a step on the builder, then kill
	// the builder.
	waitFor(t, stderr, "resolve requirements", 2*time.Minute)
	nap.waitRunning(t, stderr)
	d.Kill(syscall.SIGKILL)
	err = cmd.Wait()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee, stderr.String())
	assert.Equal(t, 75, ee.ExitCode(), "a builder that went away is a temporary failure: %s", stderr.String())
	res := parseInstall(t, result{stdout: stdout.String()})
	assert.Contains(t, res.Error, d.Addr, "the error names the builder")

	assert.False(t, imageExists(t, "dies:dies-mid-build-v1"), "no tag in containerd")
	entries, err := os.ReadDir(out)
	require.NoError(t, err)
	for _, e := range entries {
		assert.Equal(t, "layout", e.Name(), "no archive, no temporary file: %s", e.Name())
	}
	_, err = os.Stat(filepath.Join(layout, "index.json"))
	assert.True(t, os.IsNotExist(err), "no name in the layout")
}

// assertNoEngineLeftovers checks that an embedded engine on root left no
// mount under it and no build cgroup behind.
func assertNoEngineLeftovers(t *testing.T, root string) {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	require.NoError(t, err)
	assert.NotContains(t, string(b), root, "mounts left under the state root")
	name := "skillbuild-" + digest.FromString(root).Encoded()[:12]
	entries, _ := filepath.Glob("/sys/fs/cgroup/*/" + name)
	more, _ := filepath.Glob("/sys/fs/cgroup/" + name)
	assert.Empty(t, append(entries, more...), "build cgroups left behind")
}

func TestBuilderRemoteStepsKeepNetworkOffAndLimits(t *testing.T) {
	port, accepted := listener(t)
	srv, dir := index(t)
	_, err := pyindex.BuildSdist(dir, pyindex.Sdist{Name: "remote-phones-home", Version: "1.0", Prelude: pyindex.ConnectProbe("127.0.0.1", port, "/tmp/probe.txt")})
	require.NoError(t, err)
	_, err = pyindex.BuildSdist(dir, pyindex.Sdist{Name: "remote-balloon", Version: "1.0", Prelude: "big = b'x' * (600 << 20)\n"})
	require.NoError(t, err)
	d := startBuildkitd(t, false)
	global := append([]string{"--root", newRoot(t), "--base-archive", baseArchive(t)}, d.BuilderFlags()...)

	// Package code runs on the builder with no network: the resolve step
	// reached the index only through the session, and the listener on
	// the shared host saw nothing.
	out, r := installOn(t, global, srv, "remote-net", []string{"--allow-sdist", "--output", "oci-archive=" + filepath.Join(t.TempDir(), "net.tar")}, "remote-phones-home==1.0")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, out.Steps, "build wheel remote-phones-home==1.0 from source")
	assert.Zero(t, accepted(), "setup.py reached a listener on the host")

	// The per-step memory limit travels with the step.
	out, r = installOn(t, global, srv, "remote-balloon", []string{"--allow-sdist", "--build-memory", "128m", "--output", "oci-archive=" + filepath.Join(t.TempDir(), "b.tar")}, "remote-balloon==1.0")
	assert.Equal(t, 1, r.code, r.stderr)
	assert.Contains(t, out.Error, "128 MiB")
	assert.Contains(t, out.Error+out.Hint, "--build-memory")
}
