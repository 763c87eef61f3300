package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

// Lease labels. Several state roots may build in one containerd namespace
// at once, each with its own engine. BuildKit's worker deletes every
// temporary lease it can list when it starts (they are leftovers of its
// own last run, as BuildKit sees it), so one engine starting would pull
// the leases from under another's running build. Every lease an engine
// creates carries its root's owner label, and the worker lists only its
// own; leftovers of other roots are cleared by sweepDeadRoot, and only
// when their root's lock says no process builds there.
const (
	// leaseOwnerLabel is a short id of the state root (filter-safe).
	leaseOwnerLabel = "org.skillbuild.root-id"
	// leaseRootLabel is the state root's path: its lock tells whether
	// the owner still runs.
	leaseRootLabel = "org.skillbuild.root"
	// temporaryLeaseLabel is BuildKit's label of the leases that only live
	// as long as the operation (mount, export, pull) that took them.
	temporaryLeaseLabel = "buildkit/lease.temporary"
)

// rootID is the owner id of a state root's leases.
func rootID(root string) string { return digest.FromString(root).Encoded()[:12] }

// ownedLeases is a lease manager that labels every lease it creates with
// its state root and lists only the leases of that root.
type ownedLeases struct {
	leases.Manager
	root string
}

func newOwnedLeases(m leases.Manager, root string) ownedLeases {
	return ownedLeases{Manager: m, root: root}
}

// Create labels the lease after every other option ran (BuildKit's own
// options may replace the label map).
func (m ownedLeases) Create(ctx context.Context, opts ...leases.Opt) (leases.Lease, error) {
	opts = append(opts, leases.WithLabel(leaseOwnerLabel, rootID(m.root)), leases.WithLabel(leaseRootLabel, m.root))
	return m.Manager.Create(ctx, opts...)
}

// List narrows every filter (containerd ORs the filters, and ANDs the
// comma-separated parts of one) to this root's leases.
func (m ownedLeases) List(ctx context.Context, filters ...string) ([]leases.Lease, error) {
	return m.Manager.List(ctx, ownedFilters(m.root, filters)...)
}

func ownedFilters(root string, filters []string) []string {
	own := fmt.Sprintf(`labels.%q==%s`, leaseOwnerLabel, rootID(root))
	if len(filters) == 0 {
		return []string{own}
	}
	out := make([]string, len(filters))
	for i, f := range filters {
		out[i] = f + "," + own
	}
	return out
}

// sweepLeases deletes the temporary leases of this root (a closed engine
// runs no operation that holds one) and clears what dead processes of
// other roots left (sweepDeadRoot): their temporary leases, and every
// lease of a root that no longer exists (sortLeases).
func (e *Engine) sweepLeases(ctx context.Context) error {
	ctx = namespaces.WithNamespace(ctx, e.opts.namespace)
	ls := e.ctd.LeasesService()
	// containerd ORs the filters: the temporary leases of every root (and
	// of none), and every lease of a root.
	found, err := ls.List(ctx, fmt.Sprintf("labels.%q", temporaryLeaseLabel), fmt.Sprintf("labels.%q", leaseOwnerLabel))
	if err != nil {
		return fmt.Errorf("list build leases: %w", err)
	}
	own, foreign := sortLeases(found, e.opts.root, rootGone)
	var errs []error
	for _, l := range own {
		errs = append(errs, ignoreNotFound(ls.Delete(ctx, l)))
	}
	for root, group := range foreign {
		errs = append(errs, e.sweepDeadRoot(ctx, root, group))
	}
	return errors.Join(errs...)
}

// sortLeases sorts the leases found by sweepLeases into the temporary
// leases of root, to delete, and per other root those to delete once that
// root's lock shows no process: its temporary leases, and when gone says
// the root no longer exists, all of them. A root's other leases hold its
// build cache (BuildKit's records in the root's metadata database) and
// stay while the root does; once the root is deleted, nothing will ever
// use or release them, and they would keep the cache's snapshots and
// content in containerd for ever. Temporary leases of no root (older
// versions) are grouped under "".
func sortLeases(found []leases.Lease, root string, gone func(string) bool) (own []leases.Lease, foreign map[string][]leases.Lease) {
	id := rootID(root)
	foreign = map[string][]leases.Lease{}
	goneRoots := map[string]bool{}
	for _, l := range found {
		temporary := l.Labels[temporaryLeaseLabel] != ""
		owner, r := l.Labels[leaseOwnerLabel], l.Labels[leaseRootLabel]
		switch {
		case owner == id:
			if temporary {
				own = append(own, l)
			}
			continue
		case temporary:
		case r == "":
			continue
		default:
			g, ok := goneRoots[r]
			if !ok {
				g = gone(r)
				goneRoots[r] = g
			}
			if !g {
				continue
			}
		}
		foreign[r] = append(foreign[r], l)
	}
	return own, foreign
}

// rootGone reports whether the state root at path no longer exists (an
// absolute path that is not there: anything else, e.g. a directory this
// process may not look into, is taken as existing).
func rootGone(path string) bool {
	if !filepath.IsAbs(path) {
		return false
	}
	_, err := os.Lstat(path)
	return errors.Is(err, os.ErrNotExist)
}

// rootRunning reports whether a process holds the lock of another state
// root (or whether that cannot be told: then it is taken as running).
func rootRunning(root string) bool {
	release, running := lockIfStopped(root)
	if !running {
		release()
	}
	return running
}

// lockIfStopped takes the lock of another state root if no process holds
// it, and returns its release; running is true (and nothing is held) when
// a process holds it or that cannot be told. A root that is gone has
// nobody running on it.
func lockIfStopped(root string) (release func(), running bool) {
	f, err := os.OpenFile(filepath.Join(root, "lock"), os.O_RDWR, 0)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return func() {}, false
	case err != nil:
		return nil, true // not ours to judge (permissions)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, true
	}
	return func() { f.Close() }, false // closing drops the lock
}

// knownRoots maps the owner ids of the leases in the namespace to their
// state roots: how a staging image's name (which carries the id) leads to
// the lock of the root that made it.
func (e *Engine) knownRoots(ctx context.Context) (map[string]string, error) {
	ctx = namespaces.WithNamespace(ctx, e.opts.namespace)
	ls, err := e.ctd.LeasesService().List(ctx, fmt.Sprintf("labels.%q", leaseOwnerLabel))
	if err != nil {
		return nil, fmt.Errorf("list build leases: %w", err)
	}
	roots := map[string]string{}
	for _, l := range ls {
		if r := l.Labels[leaseRootLabel]; r != "" {
			roots[l.Labels[leaseOwnerLabel]] = r
		}
	}
	return roots, nil
}
