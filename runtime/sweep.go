package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
)

// staleDirAge is how old a state directory without a container must be
// before Sweep removes it (a run creates its directory just before its
// container).
const staleDirAge = 10 * time.Minute

// Sweep kills and removes what runs left behind when their skillbuild
// process died: containers (with their tasks) labelled LabelRun whose
// owner process is gone (its lock in this state directory is free; see
// holdOwner), or, when that cannot be told (a run of another state
// directory), whose LabelDeadline plus the sweep grace has passed; their
// state directories; and the shared views no run holds. It returns how
// many containers it removed. Runs of live processes within their
// deadline are left alone.
func (r *Runner) Sweep(ctx context.Context) (int, error) {
	ctx = r.namespaced(ctx)
	now := time.Now()
	expired := func(labels map[string]string) bool {
		d, err := time.Parse(time.RFC3339Nano, labels[LabelDeadline])
		if err != nil {
			return true // a run label without a readable deadline: ours, broken
		}
		return now.After(d.Add(r.opts.sweepGrace))
	}

	var errs []error
	removed := 0
	live := map[string]bool{}
	orphaned := func(id string, labels map[string]string) bool {
		return expired(labels) || ownerGone(r.opts.stateDir, id)
	}
	// One list with the labels, not a lookup per container.
	cs, err := r.client.ContainerService().List(ctx, fmt.Sprintf("labels.%q", LabelRun))
	if err != nil {
		return 0, fmt.Errorf("list run containers: %w", err)
	}
	for _, rec := range cs {
		if !orphaned(rec.ID, rec.Labels) {
			live[rec.ID] = true
			continue
		}
		c, err := r.client.LoadContainer(ctx, rec.ID)
		if err == nil {
			err = removeContainer(ctx, c, r.opts.processKill())
		}
		if errdefs.IsNotFound(err) {
			continue // removed meanwhile, by its owner or another sweep
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("remove orphaned run %s: %w", rec.ID, err))
			live[rec.ID] = true
			continue
		}
		removed++
		if err := os.RemoveAll(filepath.Join(r.opts.stateDir, rec.ID)); err != nil {
			errs = append(errs, err)
		}
	}

	// State directories of runs that are gone.
	entries, err := os.ReadDir(r.opts.stateDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	deadDirs := 0
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), idPrefix) || live[e.Name()] {
			continue
		}
		info, err := e.Info()
		if err != nil || (now.Sub(info.ModTime()) < staleDirAge && !ownerGone(r.opts.stateDir, e.Name())) {
			continue
		}
		if err := os.RemoveAll(filepath.Join(r.opts.stateDir, e.Name())); err != nil {
			errs = append(errs, err)
		}
		deadDirs++
	}
	sweepUIDLeases(r.opts.stateDir)

	// Shared views no run holds any more. Walking the snapshots costs
	// containerd a look at every snapshot of the namespace, so with
	// WithViewSweepEvery only after a dead run of this state directory
	// showed (it may have left a view no run holds) or when the last walk
	// is old. (Runs make no view of their own: their root is the shared
	// view, so no other snapshot of a run can be left.)
	if removed > 0 || deadDirs > 0 || r.viewSweepDue(now) {
		if err := r.sweepSharedViews(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return removed, errors.Join(errs...)
}

// removeContainer kills the container's task, if any (with kill), and deletes the
// task, the container and its snapshot (not a shared view: see
// containerDeleteOpts).
func removeContainer(ctx context.Context, c client.Container, kill client.ProcessDeleteOpts) error {
	task, err := c.Task(ctx, nil)
	switch {
	case err == nil:
		if _, err := task.Delete(ctx, kill); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("delete task: %w", err)
		}
	case !errdefs.IsNotFound(err):
		return fmt.Errorf("load task: %w", err)
	}
	if err := c.Delete(ctx, containerDeleteOpts(ctx, c)...); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete container: %w", err)
	}
	return nil
}

// viewSweepStamp is the file in the state directory's images/ (beside
// the shared views' locks) whose modification time says when Sweep last
// walked the snapshots.
const viewSweepStamp = "views-swept"

// viewSweepDue reports whether the snapshot walk is due (see
// WithViewSweepEvery), and if so marks it done as of now.
func (r *Runner) viewSweepDue(now time.Time) bool {
	if r.opts.viewSweepEvery == 0 {
		return true
	}
	stamp := filepath.Join(r.opts.stateDir, "images", viewSweepStamp)
	if info, err := os.Stat(stamp); err == nil && now.Sub(info.ModTime()) < r.opts.viewSweepEvery {
		return false
	}
	if err := os.WriteFile(stamp, nil, 0o600); err == nil {
		os.Chtimes(stamp, now, now) //nolint:errcheck // the walk is due again sooner at worst
	}
	return true
}
