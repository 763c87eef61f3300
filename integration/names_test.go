package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	ctd "github.com/containerd/containerd/v2/client"
	"github.com/skillbuild/skillbuild/internal/pyindex"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// ctrHost2 runs ctr against the second containerd in namespace ns.
func ctrHost2(t *testing.T, ns string, args ...string) {
	t.Helper()
	cmd := exec.Command("ctr", append([]string{"--address", regs.host2.Socket, "--namespace", ns}, args...)...)
	cmd.Env = append(cleanEnv(), "CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS=1")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "ctr %v: %s", args, out)
}

// TestNamesNeverMoveSilently: an archive whose image calls itself like
// the base does not take the base's name unless --replace, and even then
// install refuses to build on it: it was loaded, not imported as a base.
func TestNamesNeverMoveSilently(t *testing.T) {
	registries(t) // for the second containerd
	srv, _ := index(t, pyindex.Wheel{Name: "named-dep", Version: "1.0"})
	archive := filepath.Join(t.TempDir(), "skill.tar")
	_, r := install(t, srv, "named", []string{"--output", "oci-archive=" + archive}, "named-dep")
	require.Equal(t, 0, r.code, r.stderr)

	// An archive of that skill image, named like the base.
	evil := filepath.Join(t.TempDir(), "evil.tar")
	r = sbHost2(t, "names-src", "load", archive)
	require.Equal(t, 0, r.code, r.stderr)
	base := fullName(t, env.base)
	ctrHost2(t, "names-src", "images", "tag", "docker.io/library/atom-skill:named-v1", base)
	ctrHost2(t, "names-src", "images", "export", "--all-platforms", evil, base)

	runner := freshRunner(t, "names")
	baseDigest := func() string {
		t.Helper()
		c, err := ctd.New(regs.host2.Socket, ctd.WithDefaultNamespace("runner-names"), ctd.WithTimeout(10*time.Second))
		require.NoError(t, err)
		defer c.Close()
		img, err := c.ImageService().Get(context.Background(), base)
		require.NoError(t, err)
		return img.Target.Digest.String()
	}
	before := baseDigest()

	r = runner("load", "--json", evil)
	assert.NotEqual(t, 0, r.code, "the base's name is not taken: %s", r.stdout)
	assert.Contains(t, r.stderr, "base image imported as")
	assert.Contains(t, r.stderr, "--replace")
	assert.Equal(t, before, baseDigest(), "the base is untouched")

	r = runner("load", "--replace", evil)
	require.Equal(t, 0, r.code, r.stderr)
	assert.NotEqual(t, before, baseDigest(), "--replace moves the name")
	res, r := installOnRunner(t, runner, srv, "on-evil-base", "named-dep")
	assert.Equal(t, 2, r.code, r.stderr)
	assert.Contains(t, res.Error, "came from archive evil.tar")
	assert.Empty(t, res.Steps, "nothing was built on it")

	// Importing the base again restores it, as a base.
	rootfs := os.Getenv("SKILLBUILD_TEST_ROOTFS")
	if rootfs == "" {
		rootfs = "/var/cache/skillbuild/rootfs-bookworm"
	}
	r = runner("base", "import", "--rootfs", rootfs, "--name", env.base)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, before, baseDigest())
	_, r = installOnRunner(t, runner, srv, "on-real-base", "named-dep")
	assert.Equal(t, 0, r.code, r.stderr)
}

// installOnRunner installs a skill on a fresh runner with the suite's base
// and index.
func installOnRunner(t *testing.T, runner func(args ...string) result, srv *pyindex.Server, id string, reqs ...string) (installJSON, result) {
	t.Helper()
	r := runner(append([]string{"install", "--json", "--base", env.base, "--index-url", srv.URL(), id}, reqs...)...)
	return parseInstall(t, r), r
}
