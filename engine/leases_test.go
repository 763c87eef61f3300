package engine

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/errdefs"
	"github.com/moby/buildkit/util/leaseutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeLeases records what reaches containerd's lease service.
type fakeLeases struct {
	leases.Manager
	created []leases.Lease
	filters [][]string
	deleted []string
	// existing is what List answers.
	existing []leases.Lease
}

func (f *fakeLeases) Create(_ context.Context, opts ...leases.Opt) (leases.Lease, error) {
	var l leases.Lease
	for _, o := range opts {
		if err := o(&l); err != nil {
			return leases.Lease{}, err
		}
	}
	f.created = append(f.created, l)
	return l, nil
}

func (f *fakeLeases) List(_ context.Context, filters ...string) ([]leases.Lease, error) {
	f.filters = append(f.filters, filters)
	return f.existing, nil
}

func (f *fakeLeases) Delete(_ context.Context, l leases.Lease, _ ...leases.DeleteOpt) error {
	f.deleted = append(f.deleted, l.ID)
	return nil
}

func TestOwnedLeasesLabelAfterBuildKitsOptions(t *testing.T) {
	t.Parallel()
	f := &fakeLeases{}
	m := newOwnedLeases(f, "/var/lib/skillbuild")
	// BuildKit's view leases replace the whole label map in their option.
	_, err := m.Create(context.Background(), leases.WithRandomID(), func(l *leases.Lease) error {
		l.Labels = map[string]string{"containerd.io/gc.flat": "now"}
		return nil
	}, leaseutil.MakeTemporary)
	require.NoError(t, err)
	require.Len(t, f.created, 1)
	lbl := f.created[0].Labels
	assert.Equal(t, rootID("/var/lib/skillbuild"), lbl[leaseOwnerLabel])
	assert.Equal(t, "/var/lib/skillbuild", lbl[leaseRootLabel])
	assert.Equal(t, "now", lbl["containerd.io/gc.flat"])
	assert.NotEmpty(t, lbl[temporaryLeaseLabel])
}

func TestOwnedLeasesListOnlyTheirRoot(t *testing.T) {
	t.Parallel()
	f := &fakeLeases{}
	m := newOwnedLeases(f, "/r")
	own := `labels."org.skillbuild.root-id"==` + rootID("/r")
	_, err := m.List(context.Background(), `labels."buildkit/lease.temporary"`)
	require.NoError(t, err)
	_, err = m.List(context.Background())
	require.NoError(t, err)
	_, err = m.List(context.Background(), "id==a", "id==b")
	require.NoError(t, err)
	assert.Equal(t, [][]string{
		{`labels."buildkit/lease.temporary",` + own},
		{own},
		{"id==a," + own, "id==b," + own},
	}, f.filters)
	assert.NotEqual(t, rootID("/r"), rootID("/r2"))
}

func TestLockIfStoppedOnlyTakesAFreeRoot(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	live, dead := t.TempDir(), t.TempDir()
	for _, r := range []string{live, dead} {
		require.NoError(t, os.WriteFile(filepath.Join(r, "lock"), nil, 0o600))
	}
	lk, err := acquireLock(ctx, filepath.Join(live, "lock"), time.Second, nil)
	require.NoError(t, err)
	defer lk.release()

	_, running := lockIfStopped(live)
	assert.True(t, running, "its engine holds the lock")
	assert.True(t, rootRunning(live))

	release, running := lockIfStopped(dead)
	require.False(t, running)
	_, err = acquireLock(ctx, filepath.Join(dead, "lock"), 0, nil)
	assert.Error(t, err, "held while the dead root is swept")
	release()
	lk2, err := acquireLock(ctx, filepath.Join(dead, "lock"), time.Second, nil)
	require.NoError(t, err, "and let go after")
	lk2.release()
	assert.False(t, rootRunning(dead))

	release, running = lockIfStopped(filepath.Join(dead, "removed"))
	assert.False(t, running, "a root that is gone")
	release()
}

func TestStagingInUseOnlyWhileItsRootRuns(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	self, live, dead := t.TempDir(), t.TempDir(), t.TempDir()
	for _, r := range []string{live, dead} {
		require.NoError(t, os.WriteFile(filepath.Join(r, "lock"), nil, 0o600))
	}
	lk, err := acquireLock(ctx, filepath.Join(live, "lock"), time.Second, nil)
	require.NoError(t, err)
	defer lk.release()
	roots := map[string]string{rootID(live): live, rootID(dead): dead}
	staging := func(root string) string { return stagingName(root, "skill") }
	// The staging names carry the id the leases are labelled with.
	assert.Equal(t, stagingName(live, ""), "localhost/skillbuild-staging/"+rootID(live)+"-")

	assert.True(t, stagingInUse(staging(live), self, roots), "another root's build is running")
	assert.False(t, stagingInUse(staging(dead), self, roots), "its process died")
	assert.False(t, stagingInUse(staging(self), self, roots), "the caller's own")
	assert.False(t, stagingInUse(staging(t.TempDir()), self, roots), "a root no lease names")
	assert.False(t, stagingInUse("localhost/skillbuild-staging/old:deadbeef", self, roots), "not a root's name")
}

// TestStartupLeasesDeleteOnlyWhatExists shows deletes of leases the
// start-up listing lacks answered "not found" without reaching containerd,
// those of listed (and newly created) leases passed on, and every call
// passed on after done.
func TestStartupLeasesDeleteOnlyWhatExists(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := &fakeLeases{existing: []leases.Lease{{ID: "rec-view"}, {ID: "other-root"}}}
	s := newStartupLeases(ctx, newOwnedLeases(f, "/r"))
	assert.Equal(t, [][]string{nil}, f.filters, "one listing of every root's leases")

	err := s.Delete(ctx, leases.Lease{ID: "missing-view"})
	assert.True(t, errdefs.IsNotFound(err), "%v", err)
	require.NoError(t, s.Delete(ctx, leases.Lease{ID: "rec-view"}))
	_, err = s.Create(ctx, leases.WithID("new"))
	require.NoError(t, err)
	require.NoError(t, s.Delete(ctx, leases.Lease{ID: "new"}))
	assert.Equal(t, []string{"rec-view", "new"}, f.deleted)

	err = s.Delete(ctx, leases.Lease{ID: "rec-view"})
	assert.True(t, errdefs.IsNotFound(err), "deleted once: gone from the listing")
	s.done()
	require.NoError(t, s.Delete(ctx, leases.Lease{ID: "missing-view"}))
	assert.Equal(t, []string{"rec-view", "new", "missing-view"}, f.deleted, "after done containerd answers")
}

// TestSortLeases: the sweep deletes this root's temporary leases, and of
// another root its temporary leases (once its lock is free) and, when
// the root was deleted, every lease: the build cache's leases of a root
// that is gone would otherwise hold its snapshots and content for ever.
// A live root's cache leases, and this root's, are never swept.
func TestSortLeases(t *testing.T) {
	t.Parallel()
	lease := func(id, root string, temporary bool) leases.Lease {
		l := leases.Lease{ID: id, Labels: map[string]string{}}
		if root != "" {
			l.Labels[leaseOwnerLabel], l.Labels[leaseRootLabel] = rootID(root), root
		}
		if temporary {
			l.Labels[temporaryLeaseLabel] = "1"
		}
		return l
	}
	found := []leases.Lease{
		lease("self-temp", "/self", true), lease("self-cache", "/self", false),
		lease("live-temp", "/live", true), lease("live-cache", "/live", false),
		lease("gone-temp", "/gone", true), lease("gone-cache-1", "/gone", false), lease("gone-cache-2", "/gone", false),
		lease("old-temp", "", true),
	}
	asked := map[string]int{}
	own, foreign := sortLeases(found, "/self", func(root string) bool {
		asked[root]++
		return root == "/gone"
	})
	ids := func(ls []leases.Lease) []string {
		var out []string
		for _, l := range ls {
			out = append(out, l.ID)
		}
		return out
	}
	assert.Equal(t, []string{"self-temp"}, ids(own))
	assert.Len(t, foreign, 3)
	assert.Equal(t, []string{"live-temp"}, ids(foreign["/live"]), "a live root's cache stays")
	assert.Equal(t, []string{"gone-temp", "gone-cache-1", "gone-cache-2"}, ids(foreign["/gone"]))
	assert.Equal(t, []string{"old-temp"}, ids(foreign[""]))
	assert.Equal(t, map[string]int{"/live": 1, "/gone": 1}, asked, "each root is looked at once, this one never")
}

func TestRootGone(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	assert.False(t, rootGone(dir))
	assert.True(t, rootGone(filepath.Join(dir, "deleted")))
	assert.False(t, rootGone("relative/deleted"), "a relative path says nothing")
}
