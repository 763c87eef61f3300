package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skillbuild/skillbuild/internal/regtest"
	sbllb "github.com/skillbuild/skillbuild/llb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// freshRunner is a CI runner that has never built anything: its own
// namespace on the second containerd and an empty --root, holding only
// the base image (imported from the same root filesystem, so the same
// digest) and the vulnerability database.
func freshRunner(t *testing.T, name string) func(args ...string) result {
	t.Helper()
	rootfs := os.Getenv("SKILLBUILD_TEST_ROOTFS")
	if rootfs == "" {
		rootfs = "/var/cache/skillbuild/rootfs-bookworm"
	}
	root := filepath.Join(env.dir, "runner-"+name)
	run := func(args ...string) result {
		return sbArgs(t, append([]string{"--address", regs.host2.Socket, "--namespace", "runner-" + name, "--root", root}, args...)...)
	}
	r := run("base", "import", "--json", "--rootfs", rootfs, "--name", env.base)
	require.Equal(t, 0, r.code, r.stderr)
	var imported []struct{ Digest string }
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &imported), r.stdout)
	require.Len(t, imported, 1)
	img, err := suiteClient(t).ImageService().Get(context.Background(), fullName(t, env.base))
	require.NoError(t, err)
	require.Equal(t, img.Target.Digest.String(), imported[0].Digest, "the same root filesystem gives the same base image")
	r = run("db", "import", filepath.Join("..", "scan", "testdata", "PyPI-pypa-20241010.zip"))
	require.Equal(t, 0, r.code, r.stderr)
	return run
}

// TestRegistryCacheOnFreshRunner exports the build cache of a
// 10-distribution skill to the registry (mode=max) from one host, then
// builds the same skill on fresh runners with an empty --root: with
// --cache-from, nothing runs (no resolve against the index, no install,
// no layer listing: each is answered from the registry), and the image
// is the one the exporting host built; without it, everything runs. The
// two fresh builds are timed side by side and reported (never asserted).
func TestRegistryCacheOnFreshRunner(t *testing.T) {
	registries(t)
	const n = 10
	srv, _ := index(t, payloadWheels("cached", n, 128<<10)...)
	var reqs []string
	for i := 0; i < n; i++ {
		reqs = append(reqs, fmt.Sprintf("cached-%d", i))
	}
	cacheRef := regs.tls.Host + "/cache/{id}:buildcache"
	flags := append([]string{"--json", "--progress", "plain", "--base", env.base, "--index-url", srv.URL()}, tlsFlags()...)
	build := func(run func(args ...string) result, extra ...string) (installJSON, time.Duration) {
		t.Helper()
		start := time.Now()
		r := run(append(append(append([]string{"install"}, flags...), extra...), append([]string{"reg-cache"}, reqs...)...)...)
		took := time.Since(start)
		require.Equal(t, 0, r.code, r.stderr)
		return parseInstall(t, r), took
	}

	exported, _ := build(func(args ...string) result { return sb(t, args...) }, "--cache-to", cacheRef)
	tag, err := regs.tls.TagDigest("cache/reg-cache", "buildcache")
	require.NoError(t, err)
	require.NotEmpty(t, tag, "the cache was exported")

	warm, cold := freshRunner(t, "warm"), freshRunner(t, "cold")
	w, warmTime := build(warm, "--cache-from", cacheRef)
	c, coldTime := build(cold)

	assert.Empty(t, w.Steps, "a fresh runner with --cache-from runs no step: every one is answered from the registry")
	assert.Len(t, installSteps(c.Steps), n, "a cold build installs every distribution")
	assert.Contains(t, strings.Join(c.Steps, "\n"), sbllb.StepInspect, "a cold build asks the base's python for the builtin resolver")
	assert.Equal(t, exported.ManifestDigest, w.ManifestDigest, "the registry cache gives the exporting host's image")
	assert.Equal(t, c.ManifestDigest, w.ManifestDigest, "a cold build gives the same image")
	// The three roots imported the database at different times: nothing
	// of the host (when it imported or checked its database) is in the
	// attestations, so the index the tag points at is the same too.
	assert.Equal(t, exported.Digest, w.Digest, "the same skill and database give the same index digest on every runner")
	assert.Equal(t, exported.Digest, c.Digest, "the same skill and database give the same index digest on every runner")
	assert.Equal(t, "passed", w.Scan, "the lock from the cache was scanned")
	load, _ := os.ReadFile("/proc/loadavg")
	t.Logf("MEASURE fresh --root, %d distributions: --cache-from %s, cold %s (ratio %.2f; load %s)", n, warmTime, coldTime, warmTime.Seconds()/coldTime.Seconds(), load)
}

// TestRegistryCacheErrors: the registry cache fails like a push does: an
// unreachable cache registry is exit 75, refused credentials name the
// registry and the config file, a cache reference without a tag is exit
// 2; nothing is tagged. An unreachable --cache-from is not fatal: the
// cache is only an accelerator, and the build runs without it.
func TestRegistryCacheErrors(t *testing.T) {
	registries(t)
	id := "reg-cache-errors"
	build := func(extra ...string) result {
		t.Helper()
		args := append([]string{"install", "--json", "--progress", "plain", "--base", env.base, "--find-links", t.TempDir()}, tlsFlags()...)
		return sb(t, append(append(args, extra...), id)...)
	}
	tagged := func() bool {
		_, err := suiteClient(t).ImageService().Get(context.Background(), fullName(t, "atom-skill:"+id+"-v1"))
		return err == nil
	}

	r := build("--cache-to", "127.0.0.1:1/cache/errors:buildcache")
	assert.Equal(t, 75, r.code, "an unreachable cache registry is temporary: %s", r.stdout)
	assert.Contains(t, r.stdout, "registry 127.0.0.1:1 is unreachable")
	assert.False(t, tagged(), "a failed build tags nothing")

	wrong := t.TempDir()
	require.NoError(t, regtest.WriteDockerConfig(wrong, map[string][2]string{regs.tls.Host: {regUser, "wrong password"}}))
	r = build("--docker-config", wrong, "--cache-to", regs.tls.Host+"/cache/errors:buildcache")
	assert.NotEqual(t, 0, r.code)
	assert.Contains(t, r.stdout, "registry "+regs.tls.Host+" refused the credentials")
	assert.Contains(t, r.stdout, filepath.Join(wrong, "config.json"))
	assert.Contains(t, r.stdout, "docker login "+regs.tls.Host)
	assert.False(t, tagged())

	r = build("--cache-to", regs.tls.Host+"/cache/errors")
	assert.Equal(t, 2, r.code, "a cache reference without a tag is bad input: %s", r.stdout)
	assert.Contains(t, r.stdout, "no tag or digest")

	r = build("--cache-from", "127.0.0.1:1/cache/errors:buildcache")
	assert.Equal(t, 0, r.code, "the build runs without the cache it cannot import: %s", r.stdout)
	assert.True(t, tagged())
}
