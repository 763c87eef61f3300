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
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/errdefs"
)

// staleDirAge is how old a state directory without a container must be
// before Sweep removes it (a run creates its directory just before its
// container).
const staleDirAge = 10 * time.Minute

// Sweep kills and removes what runs left behind when their skillbuild
// process died: containers (with their tasks and snapshots) and root
// filesystem views labelled LabelRun whose LabelDeadline plus the sweep
// grace has passed, and their state directories. It returns how many
// containers it removed. Runs still within their deadline are left alone.
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
	cs, err := r.client.Containers(ctx, fmt.Sprintf("labels.%q", LabelRun))
	if err != nil {
		return 0, fmt.Errorf("list run containers: %w", err)
	}
	for _, c := range cs {
		labels, err := c.Labels(ctx)
		if err != nil {
			if !errdefs.IsNotFound(err) {
				errs = append(errs, err)
			}
			continue
		}
		if !expired(labels) {
			live[c.ID()] = true
			continue
		}
		if err := removeContainer(ctx, c, r.opts.processKill()); err != nil {
			errs = append(errs, fmt.Errorf("remove orphaned run %s: %w", c.ID(), err))
			live[c.ID()] = true
			continue
		}
		removed++
		if err := os.RemoveAll(filepath.Join(r.opts.stateDir, c.ID())); err != nil {
			errs = append(errs, err)
		}
	}

	// Views whose container never got created (the process died in between).
	sn := r.client.SnapshotService(r.opts.snapshotter)
	var views []string
	err = sn.Walk(ctx, func(_ context.Context, info snapshots.Info) error {
		if info.Labels[LabelRun] != "" && !live[info.Name] && expired(info.Labels) {
			views = append(views, info.Name)
		}
		return nil
	}, fmt.Sprintf("labels.%q", LabelRun))
	if err != nil {
		errs = append(errs, fmt.Errorf("list run snapshots: %w", err))
	}
	for _, name := range views {
		if err := sn.Remove(ctx, name); err != nil && !errdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove orphaned snapshot %s: %w", name, err))
		}
	}

	// State directories of runs that are gone.
	entries, err := os.ReadDir(r.opts.stateDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), idPrefix) || live[e.Name()] {
			continue
		}
		info, err := e.Info()
		if err != nil || now.Sub(info.ModTime()) < staleDirAge {
			continue
		}
		if err := os.RemoveAll(filepath.Join(r.opts.stateDir, e.Name())); err != nil {
			errs = append(errs, err)
		}
	}
	sweepUIDLeases(r.opts.stateDir)
	return removed, errors.Join(errs...)
}

// removeContainer kills the container's task, if any (with kill), and deletes the
// task, the container and its snapshot.
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
	if err := c.Delete(ctx, client.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete container: %w", err)
	}
	return nil
}
