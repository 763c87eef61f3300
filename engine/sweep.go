package engine

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	ctd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/skillbuild/skillbuild/internal/mounts"
)

// sweep removes what an interrupted build of this state root can leave
// behind: BuildKit step containers (recognised by their cgroup path under
// this root's build cgroup; BuildKit deletes them itself, but a process
// that exits while a cancelled step is still being torn down cannot),
// staging images of this root, BuildKit's temporary leases of this root
// (and of roots whose process died), and mounts under the engine's TMPDIR. It
// runs when the engine starts (after a crash) and when it closes. The
// state lock is held, so nothing else of this root is running.
func (e *Engine) sweep(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if e.ctd == nil {
		// The OCI worker's steps are runc children of this process.
		return mounts.UnmountUnder(e.tmpDir)
	}
	var errs []error
	if e.opts.cgroupParent != "" {
		errs = append(errs, e.sweepSteps(ctx, "/"+e.opts.cgroupParent+"/buildkit/"))
	}
	errs = append(errs, e.sweepStaging(ctx, e.opts.root), e.sweepLeases(ctx), mounts.UnmountUnder(e.tmpDir))
	return errors.Join(errs...)
}

// sweepStaging deletes the staging images of root.
func (e *Engine) sweepStaging(ctx context.Context, root string) error {
	imgs, err := e.ctd.ImageService().List(ctx)
	if err != nil {
		return err
	}
	var errs []error
	prefix := stagingName(root, "")
	for _, img := range imgs {
		if strings.HasPrefix(img.Name, prefix) {
			errs = append(errs, ignoreNotFound(e.ctd.ImageService().Delete(ctx, img.Name)))
		}
	}
	return errors.Join(errs...)
}

// sweepDeadRoot clears what a process that died building on another
// state root left behind, if no process holds that root's lock now: its
// step containers (and their processes: a step runs on after its client
// died), staging images, mounts under the root, build cgroup, and the
// leases in group (listed before the lock was found free, so the dead
// process's: its temporary leases, and every lease of a root that was
// deleted). The lock is held meanwhile, so no engine of that root starts
// in between. Without this, only the next engine on that root would clear
// them; now the next engine on any root of the namespace does. A dead
// root is recognised by its temporary leases, which a build holds while a
// step runs, or by its path being gone. Leases of no root (older versions)
// are only deleted. The last delete waits for containerd's garbage
// collector: what only the leases held (a deleted root's build cache:
// snapshots, content) is gone when the sweep returns.
func (e *Engine) sweepDeadRoot(ctx context.Context, root string, group []leases.Lease) error {
	var errs []error
	if root != "" {
		release, running := lockIfStopped(root)
		if running {
			return nil
		}
		defer release()
		if !e.opts.noCgroups {
			cg := buildCgroupOf(e.opts.cgroupBase, root)
			errs = append(errs, e.sweepSteps(ctx, "/"+cg.name+"/buildkit/"))
			defer cg.remove()
		}
		errs = append(errs, e.sweepStaging(ctx, root), unmountState(root))
	}
	ls := e.ctd.LeasesService()
	for i, l := range group {
		var opts []leases.DeleteOpt
		if i == len(group)-1 {
			opts = append(opts, leases.SynchronousDelete)
		}
		errs = append(errs, ignoreNotFound(ls.Delete(namespaces.WithNamespace(ctx, e.opts.namespace), l, opts...)))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("clean up after a dead build on %s: %w", root, err)
	}
	return nil
}

// unmountState detaches what BuildKit leaves mounted under the state root
// (shared cache mounts stay mounted while the engine runs, and a mount
// outlives the process that made it). Only call it while no solve runs:
// before the engine starts and after it stopped.
func unmountState(root string) error {
	return errors.Join(mounts.UnmountUnder(filepath.Join(root, "buildkit")), mounts.UnmountUnder(filepath.Join(root, "tmp")))
}

func (e *Engine) sweepSteps(ctx context.Context, cgroupPrefix string) error {
	cs, err := e.ctd.Containers(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, c := range cs {
		spec, err := c.Spec(ctx)
		if err != nil || spec.Linux == nil || !strings.HasPrefix(spec.Linux.CgroupsPath, cgroupPrefix) {
			continue
		}
		if task, err := c.Task(ctx, nil); err == nil {
			if st, err := task.Wait(ctx); err == nil {
				if err := task.Kill(ctx, syscall.SIGKILL, ctd.WithKillAll); err == nil || errdefs.IsNotFound(err) {
					select {
					case <-st:
					case <-ctx.Done():
					}
				}
			}
			_, err := task.Delete(ctx, ctd.WithProcessKill)
			errs = append(errs, ignoreNotFound(err))
		}
		errs = append(errs, ignoreNotFound(c.Delete(ctx)))
	}
	return errors.Join(errs...)
}

func ignoreNotFound(err error) error {
	if errdefs.IsNotFound(err) {
		return nil
	}
	return err
}
