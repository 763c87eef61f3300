package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skillbuild/skillbuild/internal/pyindex"
	sbllb "github.com/skillbuild/skillbuild/llb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// installFile runs `skillbuild install --json -f DIR/skill.yaml` with a
// skill.yaml of id, version, requirements and resolver.
func installFile(t *testing.T, dir string, srv *pyindex.Server, id, version, resolver string, reqs []string, extra ...string) (installJSON, result) {
	t.Helper()
	var y strings.Builder
	fmt.Fprintf(&y, "id: %s\nversion: %s\nresolver: %s\nrequirements:\n", id, version, resolver)
	for _, r := range reqs {
		fmt.Fprintf(&y, "  - %q\n", r)
	}
	file := filepath.Join(dir, "skill.yaml")
	require.NoError(t, os.WriteFile(file, []byte(y.String()), 0o644))
	args := append([]string{"install", "--json", "--progress", "plain", "--base", env.base, "--index-url", srv.URL(), "-f", file}, extra...)
	r := sb(t, args...)
	var out installJSON
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &out), "stdout: %s", r.stdout)
	return out, r
}

func ranResolveStep(steps []string) bool {
	for _, s := range steps {
		if strings.HasPrefix(s, sbllb.StepResolve) {
			return true
		}
	}
	return false
}

// TestResolverBothWaysSameImage: a skill built with pip's resolution and
// again with the builtin resolver is the same image (same digests, same
// lock document); only the second skips the resolve step. Adding a
// requirement extends the lock the same way with either, a conflict is
// refused with the same explanation, and in auto mode source
// distributions send the resolution to pip.
func TestResolverBothWaysSameImage(t *testing.T) {
	srv, _ := index(t,
		pyindex.Wheel{Name: "rb-a", Version: "1.0", Requires: []string{"rb-b>=1"}},
		pyindex.Wheel{Name: "rb-a", Version: "2.0", Requires: []string{"rb-b>=1", "rb-c; extra == 'more'"}, ProvidesExtra: []string{"more"}},
		pyindex.Wheel{Name: "rb-b", Version: "1.0"}, pyindex.Wheel{Name: "rb-b", Version: "1.1rc1"},
		pyindex.Wheel{Name: "rb-c", Version: "1.0"},
		pyindex.Wheel{Name: "rb-d", Version: "3.0", Requires: []string{"rb-b<2"}},
		pyindex.Wheel{Name: "rb-x", Version: "1.0", Requires: []string{"rb-b<1"}},
	)
	reqs := []string{"rb-a[more]>=1"}
	dir := t.TempDir()

	viaPip, r := installFile(t, dir, srv, "rb-skill", "1", "pip", reqs, "--refresh")
	require.Equal(t, 0, r.code, r.stderr)
	assert.True(t, ranResolveStep(viaPip.Steps), "pip resolved: %v", viaPip.Steps)
	builtin, r := installFile(t, dir, srv, "rb-skill", "1", "builtin", reqs, "--refresh")
	require.Equal(t, 0, r.code, r.stderr)
	assert.False(t, ranResolveStep(builtin.Steps), "no resolve step: %v", builtin.Steps)
	assert.Equal(t, "pip", viaPip.Resolver, "the document says which resolver made the lock")
	assert.Equal(t, "builtin", builtin.Resolver)
	assert.Equal(t, viaPip.ManifestDigest, builtin.ManifestDigest, "the same image")
	assert.Equal(t, viaPip.Digest, builtin.Digest, "the same image, SBOM and attestations")
	pipDoc, pipDigest := lockDocument(t, viaPip.ImageTag)
	builtinDoc, builtinDigest := lockDocument(t, builtin.ImageTag)
	assert.Equal(t, pipDigest, builtinDigest)
	assert.Equal(t, pipDoc, builtinDoc, "the same lock document, metadata included")

	// Adding a requirement: only it is resolved, by either.
	more := append(append([]string{}, reqs...), "rb-d")
	srv.ResetRequests()
	addBuiltin, r := installFile(t, dir, srv, "rb-skill", "2", "builtin", more)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, []string{"rb_d-3.0-py3-none-any.whl"}, srv.Downloads(),
		"the new wheel is downloaded once: its install step takes the resolver's copy")
	assert.Equal(t, "added", addBuiltin.Resolve, addBuiltin.ResolveFallback)
	assert.False(t, ranResolveStep(addBuiltin.Steps), "%v", addBuiltin.Steps)
	_, r = installFile(t, dir, srv, "rb-pip", "1", "pip", reqs)
	require.Equal(t, 0, r.code, r.stderr)
	addPip, r := installFile(t, dir, srv, "rb-pip", "2", "pip", more)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, "added", addPip.Resolve, addPip.ResolveFallback)
	addedBuiltinDoc, _ := lockDocument(t, addBuiltin.ImageTag)
	addedPipDoc, _ := lockDocument(t, addPip.ImageTag)
	assert.Equal(t, addedPipDoc.Lock(), addedBuiltinDoc.Lock())

	// A conflict: the same refusal, the same words.
	conflict := []string{"rb-a", "rb-x"}
	pipNo, r := installFile(t, dir, srv, "rb-conflict", "1", "pip", conflict)
	assert.Equal(t, 1, r.code, r.stderr)
	builtinNo, r := installFile(t, dir, srv, "rb-conflict", "1", "builtin", conflict)
	assert.Equal(t, 1, r.code, r.stderr)
	assert.NotEmpty(t, builtinNo.Error)
	assert.Equal(t, pipNo.Error, builtinNo.Error)
	assert.Equal(t, pipNo.Hint, builtinNo.Hint)
	assert.Contains(t, builtinNo.Error, "rb-b")

	// auto: what the builtin resolver does not do goes to pip.
	sdist, r := installFile(t, dir, srv, "rb-sdist", "1", "auto", reqs, "--allow-sdist")
	require.Equal(t, 0, r.code, r.stderr)
	assert.True(t, ranResolveStep(sdist.Steps), "pip resolved with source distributions allowed: %v", sdist.Steps)
	assert.Equal(t, "pip", sdist.Resolver)
	assert.NotEmpty(t, sdist.ResolverFallback, "why pip resolved")
	auto, r := installFile(t, dir, srv, "rb-auto", "1", "auto", reqs)
	require.Equal(t, 0, r.code, r.stderr)
	assert.False(t, ranResolveStep(auto.Steps), "%v", auto.Steps)
	assert.Equal(t, "builtin", auto.Resolver)
	assert.Empty(t, auto.ResolverFallback)

	// scan resolves without starting BuildKit once the base's python is
	// known: it answers while another process holds the root's lock.
	lf, err := os.OpenFile(filepath.Join(env.root, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	require.NoError(t, err)
	defer lf.Close()
	require.NoError(t, unix.Flock(int(lf.Fd()), unix.LOCK_EX|unix.LOCK_NB))
	r = sbRoot(t, env.root, 2*time.Minute, "scan", "--json", "--progress", "quiet", "--base", env.base, "--index-url", srv.URL(), "rb-a[more]>=1", "rb-d")
	require.NoError(t, unix.Flock(int(lf.Fd()), unix.LOCK_UN))
	require.Equal(t, 0, r.code, r.stderr)
	assert.NotContains(t, r.stderr, "waiting for another skillbuild process")
	var scanned struct {
		Packages []struct{ Name, Version string } `json:"packages"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &scanned), r.stdout)
	var got []string
	for _, p := range scanned.Packages {
		got = append(got, p.Name+"=="+p.Version)
	}
	assert.ElementsMatch(t, []string{"rb-a==2.0", "rb-b==1.0", "rb-c==1.0", "rb-d==3.0"}, got)
}
