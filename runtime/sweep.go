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
	"github.com/containerd/containerd/v2/core/containers"
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
// state directories; the owner files of dead pools; and the shared views
// no run holds. It returns how
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
	// One list with the labels, not a lookup per container; with
	// WithContainerSweepEvery, only this state directory's dead runs
	// between two lists.
	var cs []containers.Container
	if r.sweepDue(containerSweepStamp, r.opts.containerSweepEvery, now) {
		var err error
		if cs, err = r.client.ContainerService().List(ctx, fmt.Sprintf("labels.%q", LabelRun)); err != nil {
			return 0, fmt.Errorf("list run containers: %w", err)
		}
	} else {
		cs = r.deadOwnRuns(live)
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
	sweepPoolOwners(r.opts.stateDir)

	// Shared views no run holds any more. Walking the snapshots costs
	// containerd a look at every snapshot of the namespace, so with
	// WithViewSweepEvery only after a dead run of this state directory
	// showed (it may have left a view no run holds) or when the last walk
	// is old. (Runs make no view of their own: their root is the shared
	// view, so no other snapshot of a run can be left.)
	if removed > 0 || deadDirs > 0 || r.sweepDue(viewSweepStamp, r.opts.viewSweepEvery, now) {
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

// viewSweepStamp and containerSweepStamp are the files in the state
// directory's images/ (beside the shared views' locks) whose modification
// times say when Sweep last walked the snapshots and listed the run
// containers.
const (
	viewSweepStamp      = "views-swept"
	containerSweepStamp = "containers-swept"
)

// sweepDue reports whether the sweep step of stamp, done at most every
// every (zero: always), is due, and if so marks it done as of now.
func (r *Runner) sweepDue(stamp string, every time.Duration, now time.Time) bool {
	if every == 0 {
		return true
	}
	stamp = filepath.Join(r.opts.stateDir, "images", stamp)
	if info, err := os.Stat(stamp); err == nil && now.Sub(info.ModTime()) < every {
		return false
	}
	if err := os.MkdirAll(filepath.Dir(stamp), 0o700); err == nil && os.WriteFile(stamp, nil, 0o600) == nil {
		os.Chtimes(stamp, now, now) //nolint:errcheck // the step is due again sooner at worst
	}
	return true
}

// deadOwnRuns are the runs of this state directory whose owner died (see
// holdOwner), as records with their IDs alone: what a sweep between two
// lists of the run containers removes, without asking containerd for
// every run container and its spec. The state directories of every
// other run are marked live, so that a long run's is not taken for a
// stale one.
func (r *Runner) deadOwnRuns(live map[string]bool) []containers.Container {
	entries, _ := os.ReadDir(r.opts.stateDir)
	var dead []containers.Container
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), idPrefix) {
			continue
		}
		if ownerGone(r.opts.stateDir, e.Name()) {
			dead = append(dead, containers.Container{ID: e.Name()})
		} else {
			live[e.Name()] = true
		}
	}
	return dead
}
