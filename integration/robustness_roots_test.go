package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/skillbuild/skillbuild/internal/pyindex"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// temporaryLeases are the IDs of BuildKit's temporary leases in the
// suite's namespace (what a build holds while it mounts and exports).
func temporaryLeases(t *testing.T) map[string]bool {
	t.Helper()
	ls, err := suiteClient(t).LeasesService().List(context.Background(), `labels."buildkit/lease.temporary"`)
	require.NoError(t, err)
	ids := map[string]bool{}
	for _, l := range ls {
		ids[l.ID] = true
	}
	return ids
}

// waitFor waits until s contains want, failing the test after limit.
func waitFor(t *testing.T, s *syncBuffer, want string, limit time.Duration) {
	t.Helper()
	eventually(t, limit, func() bool { return strings.Contains(s.String(), want) }, func() string {
		return fmt.Sprintf("no %q; output so far:\n%s", want, tailString(s.String(), 3000))
	})
}

// Two skillbuild processes with their own state roots on one containerd
// namespace build at once: starting one engine must not take anything
// (leases, staging images, step containers) from the other's build.
func TestInstallConcurrentRootsShareANamespace(t *testing.T) {
	srv, dir := index(t, pyindex.Wheel{Name: "roots-b", Version: "1.0"})
	// The first build sits in a step that runs package code (the
	// resolve, running an sdist's setup.py for its metadata; in a sleep
	// the test ends) until the second engine has started and built.
	nap := newStepNap(t, 600)
	_, err := pyindex.BuildSdist(dir, pyindex.Sdist{Name: "roots-a", Version: "1.0", Prelude: nap.prelude("True")})
	require.NoError(t, err)
	rootA, rootB := newRoot(t), newRoot(t)

	before := temporaryLeases(t)
	a := sbCmdRoot(rootA, "install", "--json", "--progress", "plain", "--allow-sdist", "--base", env.base, "--index-url", srv.URL(), "roots-a", "roots-a==1.0")
	stderrA, stdoutA := &syncBuffer{}, &syncBuffer{}
	a.Stderr, a.Stdout = stderrA, stdoutA
	require.NoError(t, a.Start())
	t.Cleanup(func() { a.Process.Kill() }) //nolint:errcheck // no-op once it exited
	waitFor(t, stderrA, "resolve requirements", 3*time.Minute)
	nap.waitRunning(t, stderrA)

	// What the first build holds now, while its step runs.
	held := map[string]bool{}
	for id := range temporaryLeases(t) {
		if !before[id] {
			held[id] = true
		}
	}
	t.Logf("the first build holds %d temporary leases in its step", len(held))

	// The second engine starts (its worker clears temporary leases it
	// owns) and builds, while the first is still in its step.
	stderrB := &syncBuffer{}
	b := sbCmdRoot(rootB, "install", "--json", "--progress", "plain", "--base", env.base, "--index-url", srv.URL(), "roots-b", "roots-b==1.0")
	b.Stderr = stderrB
	require.NoError(t, b.Start())
	waitFor(t, stderrB, "install roots-b", 3*time.Minute)
	now := temporaryLeases(t)
	for id := range held {
		assert.True(t, now[id], "the second engine's start deleted lease %s of the first build", id)
	}
	require.NoError(t, b.Wait(), "second build: %s", tailString(stderrB.String(), 3000))
	assert.NotEmpty(t, processesWithArgs(nap.argv()...), "the first build was in its step all along")

	nap.release(t)
	errA := a.Wait()
	resA := parseInstall(t, result{stdout: stdoutA.String()})
	require.NoError(t, errA, "first build: %s\n%s", resA.Error, tailString(stderrA.String(), 3000))
	assert.True(t, resA.Success)
	assert.True(t, imageExists(t, "atom-skill:roots-a-v1"))
	assert.True(t, imageExists(t, "atom-skill:roots-b-v1"))
	assertNoEngineLeftovers(t, rootA)
	assertNoEngineLeftovers(t, rootB)
	assertNoTemporaryLeasesOf(t, before)
}

// assertNoTemporaryLeasesOf checks that no temporary lease exists now
// that was not there before: every engine released what it took.
func assertNoTemporaryLeasesOf(t *testing.T, before map[string]bool) {
	t.Helper()
	for id := range temporaryLeases(t) {
		assert.True(t, before[id], "temporary lease %s left behind", id)
	}
}
