package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRegistryCacheOnFreshRunner exports the build cache to the registry
// (mode=max) from one host, then builds the same skill on another host
// with an empty --root and --cache-from, and measures it against a cold
// build. What it pins is partial: the export reaches the registry and a
// build importing it succeeds. Known gap: the fresh runner still runs the
// resolve and install steps (the layer-conflict check reads each layer's
// file list, an output outside the image and so outside the exported
// cache), so there is no speed-up yet.
func TestRegistryCacheOnFreshRunner(t *testing.T) {
	registries(t)
	srv, _ := index(t, payloadWheels("cached", 5, 128<<10)...)
	var reqs []string
	for i := 0; i < 5; i++ {
		reqs = append(reqs, fmt.Sprintf("cached-%d", i))
	}
	cacheRef := regs.tls.Host + "/cache/{id}:buildcache"
	flags := append([]string{"--json", "--progress", "plain", "--base", env.base, "--index-url", srv.URL()}, tlsFlags()...)

	r := sb(t, append(append(append([]string{"install"}, flags...), "--cache-to", cacheRef, "reg-cache"), reqs...)...)
	require.Equal(t, 0, r.code, r.stderr)
	exported := parseInstall(t, r)
	tag, err := regs.tls.TagDigest("cache/reg-cache", "buildcache")
	require.NoError(t, err)
	require.NotEmpty(t, tag, "the cache was exported")

	rootfs := os.Getenv("SKILLBUILD_TEST_ROOTFS")
	if rootfs == "" {
		rootfs = "/var/cache/skillbuild/rootfs-bookworm"
	}
	// A fresh runner: its own namespace and an empty root on the second
	// containerd, with only the base image and the database.
	fresh := func(name string) func(args ...string) result {
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

	warm := fresh("warm")
	start := time.Now()
	r = warm(append(append(append([]string{"install"}, flags...), "--cache-from", cacheRef, "reg-cache"), reqs...)...)
	warmTime := time.Since(start)
	require.Equal(t, 0, r.code, r.stderr)
	w := parseInstall(t, r)
	t.Logf("fresh runner with --cache-from: image %s (exporting host: %s), executed %v", w.ManifestDigest, exported.ManifestDigest, w.Steps)

	cold := fresh("cold")
	start = time.Now()
	r = cold(append(append(append([]string{"install"}, flags...), "reg-cache"), reqs...)...)
	coldTime := time.Since(start)
	require.Equal(t, 0, r.code, r.stderr)
	c := parseInstall(t, r)
	assert.Len(t, installSteps(c.Steps), 5, "a cold build installs every distribution")
	t.Logf("MEASURE fresh --root, 5 distributions: --cache-from %s, cold %s (ratio %.2f)", warmTime, coldTime, warmTime.Seconds()/coldTime.Seconds())
}
