package runtime

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
)

// LabelSharedView marks the read-only view of an image's root filesystem
// that the runs of one state directory share (its value is "1"). It is
// not a run's: Sweep removes it only when no run uses it.
const LabelSharedView = "org.skillbuild.run.shared-view"

// LabelSharedViewLock names the lock file of a shared view (see
// sharedView), so that a sweep from any state directory can tell a view
// whose state directory is gone.
const LabelSharedViewLock = "org.skillbuild.run.shared-view.lock"

// gcRootLabel keeps a snapshot from containerd's garbage collector: a
// shared view lives exactly as long as its users say (see sharedView),
// not as long as some container or lease happens to refer to it.
const gcRootLabel = "containerd.io/gc.root"

// sharedViewPrefix starts the name of every shared view.
const sharedViewPrefix = "sbview-"

// Every run of an image needs the same thing of its root filesystem: the
// image's layers, read-only (the run's writable places are tmpfs mounts of
// its own). So the runs of one state directory share one view per image
// root filesystem (chain ID) instead of each making and removing its own:
// a run saves a view's creation and removal (containerd metadata and
// snapshotter writes, each synced to disk, and the garbage collection of
// the removed view). The view is never written to: the container's root
// is mounted read-only, and a read-only overlay of the layers has no
// upper directory at all.
//
// Its lifetime is held with an flock on a file per view in the state
// directory (images/, beside the image info kept there): every run holds
// it shared from before it looks the view up until its container record
// is deleted; the run that ends last (it gets the lock exclusively)
// removes the view. The view carries containerd's gc.root label, so the
// garbage collector never takes it from under a run between its lookup
// and its container's creation. A process that dies drops its lock with
// it; Sweep removes a view nobody holds.

// sharedViewName is the name of the shared view of chainID for the state
// directory stateDir (runs of different state directories do not share:
// their locks are in different places).
func sharedViewName(stateDir string, chainID digest.Digest) string {
	h := sha256.Sum256([]byte(stateDir + "\n" + chainID.String()))
	return sharedViewPrefix + hex.EncodeToString(h[:16])
}

// viewLockPath is the lock file of the shared view name.
func viewLockPath(stateDir, name string) string {
	return filepath.Join(stateDir, "images", name+".lock")
}

// sharedViewUse is one run's hold on a shared view.
type sharedViewUse struct {
	name string
	lock *os.File
}

// acquireSharedView holds the shared view of p's image for a run (a
// shared flock) and returns its mounts, creating the view when it does
// not exist. The view carries the gc.root label from its creation on, so
// it needs no lease.
func (r *Runner) acquireSharedView(ctx context.Context, p *Prepared) (*sharedViewUse, []mount.Mount, error) {
	name := sharedViewName(r.opts.stateDir, p.chainID)
	lockPath := viewLockPath(r.opts.stateDir, name)
	if err := os.MkdirAll(filepath.Dir(lockPath), 0o700); err != nil {
		return nil, nil, fmt.Errorf("shared view lock: %w", err)
	}
	f, err := os.OpenFile(lockPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("shared view lock: %w", err)
	}
	// Waits only while the last user of the view removes it.
	if err := flockShared(ctx, f); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("shared view lock: %w", err)
	}
	use := &sharedViewUse{name: name, lock: f}
	sn := r.client.SnapshotService(r.opts.snapshotter)
	mounts, err := sn.Mounts(ctx, name)
	if errdefs.IsNotFound(err) {
		mounts, err = r.createSharedView(ctx, p, name, lockPath)
	}
	if err != nil {
		use.release(ctx, r)
		return nil, nil, err
	}
	return use, mounts, nil
}

// createSharedView creates the view name of p's image, on the image's
// mountpoints layer (see onRootParent); a view another run created
// meanwhile is used as it is.
func (r *Runner) createSharedView(ctx context.Context, p *Prepared, name, lockPath string) ([]mount.Mount, error) {
	sn := r.client.SnapshotService(r.opts.snapshotter)
	labels := snapshots.WithLabels(map[string]string{
		LabelSharedView:     "1",
		LabelSharedViewLock: lockPath,
		gcRootLabel:         time.Now().UTC().Format(time.RFC3339),
	})
	mounts, err := r.onRootParent(ctx, p, func(ctx context.Context, parent string) ([]mount.Mount, error) {
		return sn.View(ctx, name, parent, labels)
	})
	if errdefs.IsAlreadyExists(err) {
		mounts, err = sn.Mounts(ctx, name)
	}
	if err != nil {
		return nil, fmt.Errorf("root filesystem view of image %s: %w", p.req.Image, err)
	}
	return mounts, nil
}

// release ends the run's hold; the last user removes the view. Call it
// once the run's container record is deleted (or was never created).
func (u *sharedViewUse) release(ctx context.Context, r *Runner) error {
	if u == nil || u.lock == nil {
		return nil
	}
	defer func() { u.lock.Close(); u.lock = nil }()
	// Exclusive only when no other run holds the view (a failed attempt
	// may drop the shared lock: the file is closed right after anyway).
	if syscall.Flock(int(u.lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
		return nil
	}
	return r.removeSharedView(ctx, u.name)
}

// removeSharedView removes a shared view; the caller holds its lock
// exclusively.
func (r *Runner) removeSharedView(ctx context.Context, name string) error {
	err := r.client.SnapshotService(r.opts.snapshotter).Remove(ctx, name)
	if err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("remove the shared root filesystem view %s: %w", name, err)
	}
	return nil
}

// sweepSharedViews removes the shared views that no run holds (their last
// users died before they could remove them): this state directory's, and
// those of other state directories that another process can lock or that
// no longer exist (a removed --root), which the gc.root label would
// otherwise keep for ever.
func (r *Runner) sweepSharedViews(ctx context.Context) error {
	sn := r.client.SnapshotService(r.opts.snapshotter)
	locks := map[string]string{} // view name -> its lock file
	err := sn.Walk(ctx, func(_ context.Context, info snapshots.Info) error {
		if strings.HasPrefix(info.Name, sharedViewPrefix) {
			lock := info.Labels[LabelSharedViewLock]
			if lock == "" {
				lock = viewLockPath(r.opts.stateDir, info.Name)
			}
			locks[info.Name] = lock
		}
		return nil
	}, fmt.Sprintf("labels.%q", LabelSharedView))
	if err != nil {
		return fmt.Errorf("list shared views: %w", err)
	}
	var errs []error
	var inUse map[string]bool // snapshot keys of run containers, listed when needed
	for name, lock := range locks {
		f, err := os.OpenFile(lock, os.O_RDWR, 0)
		if err != nil {
			// The lock file is made before the view and never removed, so
			// a view whose state directory is gone has no process left to
			// remove it; it goes once no container uses it (the sweep takes
			// those runs by their deadline). Any other failure (another
			// user's directory) is not ours to judge.
			if !errors.Is(err, os.ErrNotExist) || !stateDirGone(lock) {
				continue
			}
			if inUse == nil {
				if inUse, err = r.runSnapshotKeys(ctx); err != nil {
					errs = append(errs, err)
					break
				}
			}
			if !inUse[name] {
				errs = append(errs, r.removeSharedView(ctx, name))
			}
			continue
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
			errs = append(errs, r.removeSharedView(ctx, name))
		}
		f.Close()
	}
	return errors.Join(errs...)
}

// runSnapshotKeys lists the root filesystem snapshots of run containers.
func (r *Runner) runSnapshotKeys(ctx context.Context) (map[string]bool, error) {
	cs, err := r.client.ContainerService().List(ctx, fmt.Sprintf("labels.%q", LabelRun))
	if err != nil {
		return nil, fmt.Errorf("list run containers: %w", err)
	}
	keys := make(map[string]bool, len(cs))
	for _, c := range cs {
		keys[c.SnapshotKey] = true
	}
	return keys, nil
}

// stateDirGone reports whether the state directory of the shared view
// lock file lock (STATE/images/NAME.lock) no longer exists.
func stateDirGone(lock string) bool {
	_, err := os.Stat(filepath.Dir(filepath.Dir(lock)))
	return errors.Is(err, os.ErrNotExist)
}

// flockShared takes a shared flock on f, waiting (in short steps, so that
// ctx can end the wait) while another process holds it exclusively.
func flockShared(ctx context.Context, f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// containerDeleteOpts are the options that delete a run's container: a
// view of its own goes with it, a shared one stays for its other users
// (its last user removes it).
func containerDeleteOpts(ctx context.Context, c client.Container) []client.DeleteOpts {
	info, err := c.Info(ctx, client.WithoutRefreshedMetadata)
	if err == nil && strings.HasPrefix(info.SnapshotKey, sharedViewPrefix) {
		return nil
	}
	return []client.DeleteOpts{client.WithSnapshotCleanup}
}
