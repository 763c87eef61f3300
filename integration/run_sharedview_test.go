package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	sbruntime "github.com/skillbuild/skillbuild/runtime"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sharedViews lists the shared root filesystem views in containerd.
func sharedViews(t *testing.T, c *containerd.Client) []snapshots.Info {
	t.Helper()
	var out []snapshots.Info
	err := c.SnapshotService("overlayfs").Walk(context.Background(), func(_ context.Context, info snapshots.Info) error {
		out = append(out, info)
		return nil
	}, fmt.Sprintf("labels.%q", sbruntime.LabelSharedView))
	require.NoError(t, err)
	return out
}

// collectGarbage runs containerd's garbage collector to its end: deleting
// a lease synchronously does.
func collectGarbage(t *testing.T, c *containerd.Client) {
	t.Helper()
	ctx := context.Background()
	ls := c.LeasesService()
	l, err := ls.Create(ctx, leases.WithRandomID())
	require.NoError(t, err)
	require.NoError(t, ls.Delete(ctx, l, leases.SynchronousDelete))
}

// snapshotKey is the root filesystem snapshot of a run's container.
func snapshotKey(t *testing.T, c *containerd.Client, id string) string {
	t.Helper()
	ct, err := c.LoadContainer(context.Background(), id)
	require.NoError(t, err)
	info, err := ct.Info(context.Background())
	require.NoError(t, err)
	return info.SnapshotKey
}

// TestRunSharedViewLifetime: the runs of an image share one read-only
// view of its root filesystem. It survives containerd's garbage collector
// while any run holds it (even when no lease refers to it and a holder's
// container is not created yet), outlives the end of one of two runs, and
// is gone once the last run ends.
func TestRunSharedViewLifetime(t *testing.T) {
	ctx := context.Background()
	c := ctdClient(t)
	r := suiteRunner(t)
	require.Empty(t, sharedViews(t, c), "no view before the runs")

	p, err := r.Prepare(ctx, sbruntime.Request{Image: env.base, Code: []byte("result = 6 * 7")})
	require.NoError(t, err)
	first, err := r.Create(ctx, p)
	require.NoError(t, err)
	defer first.Close(ctx) //nolint:errcheck
	views := sharedViews(t, c)
	require.Len(t, views, 1)
	view := views[0].Name
	assert.Equal(t, view, snapshotKey(t, c, first.ID()), "the container runs on the shared view")
	assert.Equal(t, snapshots.KindView, views[0].Kind, "read-only")
	assert.Empty(t, views[0].Labels[sbruntime.LabelRun], "not a run's own: a run's sweep by deadline must not take it")
	// Between a run's lookup of the view and its container's creation
	// nothing else refers to it: only this label keeps the collector off.
	assert.NotEmpty(t, views[0].Labels["containerd.io/gc.root"], "a garbage collection root")

	collectGarbage(t, c)
	require.Len(t, sharedViews(t, c), 1, "the garbage collector leaves a view in use")

	second, err := r.Create(ctx, p)
	require.NoError(t, err)
	defer second.Close(ctx) //nolint:errcheck
	assert.Equal(t, view, snapshotKey(t, c, second.ID()), "the second run shares the view")
	require.Len(t, sharedViews(t, c), 1)

	// The first run ends; the second still holds the view.
	require.NoError(t, first.Start(ctx))
	exit, err := first.Wait(ctx)
	require.NoError(t, err)
	res, err := first.Collect(ctx, exit)
	require.NoError(t, err)
	assert.Equal(t, "42", string(res.Result))
	require.NoError(t, first.Close(ctx))
	collectGarbage(t, c)
	require.Len(t, sharedViews(t, c), 1, "the view stays for the second run")

	// The second run still starts on it and runs.
	require.NoError(t, second.Start(ctx))
	exit, err = second.Wait(ctx)
	require.NoError(t, err)
	res, err = second.Collect(ctx, exit)
	require.NoError(t, err)
	assert.Equal(t, "42", string(res.Result))
	require.NoError(t, second.Close(ctx))
	assert.Empty(t, sharedViews(t, c), "the last run removed the view")
	assertNoRunLeftovers(t)

	// A run after that makes it anew, and removes it again.
	res, err = r.Run(ctx, sbruntime.Request{Image: env.base, Code: []byte("print(1)")})
	require.NoError(t, err)
	assert.Equal(t, "1\n", res.Stdout)
	assert.Empty(t, sharedViews(t, c))
}

// TestRunSharedViewOfKilledRunSwept: a run killed with SIGKILL holds the
// shared view no longer (its lock died with it); the sweep of the next
// command removes the orphaned container and then the view, while a view
// a live run holds is left alone.
func TestRunSharedViewOfKilledRunSwept(t *testing.T) {
	c := ctdClient(t)
	killLive := startSleepingRun(t, "10m", "alive")
	startSleepingRun(t, "10m", "orphan")()
	views := sharedViews(t, c)
	require.Len(t, views, 1, "both runs on one view")
	for _, ct := range runContainers(t, c) {
		assert.True(t, strings.HasPrefix(snapshotKey(t, c, ct.ID()), "sbview-"))
	}

	r := sb(t, "ls")
	require.Equal(t, 0, r.code, r.stderr)
	require.Len(t, runContainers(t, c), 1, "the orphan is gone")
	require.Len(t, sharedViews(t, c), 1, "the live run still holds the view")

	killLive()
	r = sb(t, "ls")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Empty(t, runContainers(t, c))
	assert.Empty(t, sharedViews(t, c), "nobody holds the view: swept")
	assertNoRunLeftovers(t)
}

// TestRunSharedViewOfRemovedRootSwept: a run killed with SIGKILL in a
// --root that is then deleted leaves a view that no lock file speaks for
// (and that containerd's collector never takes: it is a gc.root). Another
// root's sweep leaves it while the orphaned container still uses it and
// removes it once that container is gone.
func TestRunSharedViewOfRemovedRootSwept(t *testing.T) {
	ctx := namespaces.WithNamespace(context.Background(), namespace)
	c := ctdClient(t)
	require.Empty(t, sharedViews(t, c))
	root := t.TempDir()
	startSleeping(t, sbCmdRoot(root, sleepingRunArgs("10m", "gone-root")...))()
	require.NoError(t, os.RemoveAll(root))
	require.Len(t, sharedViews(t, c), 1)

	r := sb(t, "ls")
	require.Equal(t, 0, r.code, r.stderr)
	cts := runContainers(t, c)
	require.Len(t, cts, 1, "the other root's run is within its deadline: left to its sweep by deadline")
	require.Len(t, sharedViews(t, c), 1, "its container still uses the view")

	// The orphan goes (as the sweep by deadline would take it), the view stays for the next sweep.
	ct := cts[0]
	if task, err := ct.Task(ctx, nil); err == nil {
		exit, err := task.Wait(ctx)
		require.NoError(t, err)
		require.NoError(t, task.Kill(ctx, syscall.SIGKILL))
		<-exit
		_, err = task.Delete(ctx)
		require.NoError(t, err)
	}
	require.NoError(t, ct.Delete(ctx))
	require.Len(t, sharedViews(t, c), 1)

	// A command's sweep walks the snapshots at most once a minute when it
	// finds nothing dead of its own; the runtime's sweep walks every time.
	_, err := sbruntime.New(ctx, c, sbruntime.WithStateDir(filepath.Join(env.root, "runs")))
	require.NoError(t, err)
	assert.Empty(t, sharedViews(t, c), "a view of a removed root that no container uses is swept")
	assertNoRunLeftovers(t)
}
