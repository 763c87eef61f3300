package integration

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/skillbuild/skillbuild/internal/mounts"
	"github.com/skillbuild/skillbuild/internal/pyindex"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// rootLeases lists the leases of a state root (its owner label) with what
// each one holds, as "TYPE ID" strings.
func rootLeases(t *testing.T, root string) (ids map[string]bool, resources map[string]bool) {
	t.Helper()
	ctx := context.Background()
	ls := suiteClient(t).LeasesService()
	found, err := ls.List(ctx, fmt.Sprintf(`labels."org.skillbuild.root-id"==%s`, rootID(root)))
	require.NoError(t, err)
	ids, resources = map[string]bool{}, map[string]bool{}
	for _, l := range found {
		ids[l.ID] = true
		rs, err := ls.ListResources(ctx, leases.Lease{ID: l.ID})
		require.NoError(t, err)
		for _, r := range rs {
			resources[r.Type+" "+r.ID] = true
		}
	}
	return ids, resources
}

// storeContents is every snapshot (of the suite's snapshotter) and content
// blob in the suite's namespace, in rootLeases' "TYPE ID" form.
func storeContents(t *testing.T) map[string]bool {
	t.Helper()
	ctx := context.Background()
	c := suiteClient(t)
	out := map[string]bool{}
	require.NoError(t, c.SnapshotService("overlayfs").Walk(ctx, func(_ context.Context, info snapshots.Info) error {
		out["snapshots/overlayfs "+info.Name] = true
		return nil
	}))
	require.NoError(t, c.ContentStore().Walk(ctx, func(info content.Info) error {
		out["content "+info.Digest.String()] = true
		return nil
	}))
	return out
}

// A state root deleted after its builds were killed leaves nothing in
// containerd once another root's engine starts (here: its prune): not the
// temporary leases of the killed builds, nor the leases of the root's
// build cache, which nothing could ever use again, nor the snapshots and
// content only those held, nor the builds' step containers. Another
// root's build in progress meanwhile keeps every lease and finishes.
func TestPruneClearsADeletedRoot(t *testing.T) {
	const kills = 3
	srv, dir := index(t)
	for i := range kills {
		_, err := pyindex.BuildSdist(dir, pyindex.Sdist{Name: fmt.Sprintf("gone-root-%d", i), Version: "1.0",
			Prelude: fmt.Sprintf("import subprocess, sys\nif 'bdist_wheel' in sys.argv:\n    subprocess.run(['sleep', '%d'])\n", 330+i)})
		require.NoError(t, err)
	}
	_, err := pyindex.BuildSdist(dir, pyindex.Sdist{Name: "live-root", Version: "1.0",
		Prelude: "import subprocess, sys\nif 'bdist_wheel' in sys.argv:\n    subprocess.run(['sleep', '90'])\n"})
	require.NoError(t, err)
	before := storeContents(t)

	// Builds of the doomed root, each killed (SIGKILL) in a step that
	// runs package code, after the steps before it made cache records.
	gone := newRoot(t)
	for i := range kills {
		nap := strconv.Itoa(330 + i)
		cmd := sbCmdRoot(gone, "install", "--json", "--progress", "plain", "--allow-sdist", "--base", env.base, "--index-url", srv.URL(),
			fmt.Sprintf("gone-%d", i), fmt.Sprintf("gone-root-%d==1.0", i))
		stderr := &syncBuffer{}
		cmd.Stderr = stderr
		require.NoError(t, cmd.Start())
		t.Cleanup(func() { cmd.Process.Kill() }) //nolint:errcheck // no-op once it exited
		waitForProcess(t, stderr, "sleep", nap)
		require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
		_ = cmd.Wait()
		// The step runs on without its client; it is the test's to end.
		for _, pid := range processesWithArgs("sleep", nap) {
			n, err := strconv.Atoi(pid)
			require.NoError(t, err)
			syscall.Kill(n, syscall.SIGKILL) //nolint:errcheck // it may have exited
		}
	}
	leaseIDs, held := rootLeases(t, gone)
	t.Logf("%d killed builds left %d leases holding %d snapshots and blobs; %d step containers", kills, len(leaseIDs), len(held), len(rootContainers(t, gone)))
	require.NotEmpty(t, leaseIDs)
	// The user deletes the root (never through a mount).
	require.NoError(t, mounts.UnmountUnder(gone))
	require.NoError(t, os.RemoveAll(gone))

	// Another root builds, and is in a step that runs package code while
	// a third root's engine starts and prunes.
	live := newRoot(t)
	b := sbCmdRoot(live, "install", "--json", "--progress", "plain", "--allow-sdist", "--base", env.base, "--index-url", srv.URL(), "live-root", "live-root==1.0")
	stderrB, stdoutB := &syncBuffer{}, &syncBuffer{}
	b.Stderr, b.Stdout = stderrB, stdoutB
	require.NoError(t, b.Start())
	t.Cleanup(func() { b.Process.Kill() }) //nolint:errcheck // no-op once it exited
	waitForProcess(t, stderrB, "sleep", "90")
	liveIDs, _ := rootLeases(t, live)
	require.NotEmpty(t, liveIDs)

	r := sbRoot(t, newRoot(t), 5*time.Minute, "prune", "--json")
	require.Equal(t, 0, r.code, r.stderr)

	nowIDs, _ := rootLeases(t, live)
	for id := range liveIDs {
		assert.True(t, nowIDs[id], "the live root's lease %s was deleted", id)
	}
	left, _ := rootLeases(t, gone)
	assert.Empty(t, left, "leases of the deleted root are left")
	assert.Empty(t, rootContainers(t, gone), "step containers of the deleted root are left")
	_, liveHeld := rootLeases(t, live)
	now := storeContents(t)
	var kept []string
	for res := range held {
		if now[res] && !before[res] && !liveHeld[res] {
			kept = append(kept, res)
		}
	}
	assert.Empty(t, kept, "snapshots and content only the deleted root's leases held are left")

	require.NoError(t, b.Wait(), "the live build: %s", tailString(stderrB.String(), 3000))
	resB := parseInstall(t, result{stdout: stdoutB.String()})
	assert.True(t, resB.Success, resB.Error)
	assert.True(t, imageExists(t, "atom-skill:live-root-v1"))
}
