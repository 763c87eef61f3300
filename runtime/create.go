package runtime

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/errdefs"
)

// undo reverses what one step of Create did. It runs in Sandbox.Close, on
// a context that outlives a cancellation of the run's.
type undo func(context.Context) error

// createStep is one step of Create: it does one thing to the sandbox
// under creation and returns what undoes it (nil: nothing to undo). A step
// that fails after doing part of its work returns the undo of that part
// with its error, so a failure at step k undoes what steps 1..k did, in
// reverse, and nothing else.
type createStep func(ctx context.Context, c *creation) (undo, error)

// creation is what the steps of one Create share: the sandbox they build
// and what one step finds for the next.
type creation struct {
	r *Runner
	s *Sandbox
	p *Prepared
	// dir is the run's state directory; box, the sandbox directory in it
	// mounted at SandboxDir.
	dir, box string
	// stepCtx bounds creating the container and the task, which are not
	// interrupted half-way by a cancellation of the run's ctx.
	stepCtx    context.Context
	init       initBinary
	resolvConf string        // the host file mounted over resolv.conf
	mounts     []mount.Mount // the root filesystem: the shared view's
	resolvDest string        // where in the image resolv.conf is
	stdin      io.Reader     // the task's stdin
}

// Create writes the sandbox files (runner, code, report socket), creates the
// container on a read-only view of the image with the hardened spec, and
// creates its task with the inputs on stdin, not started. Creating the
// container and the task are not interrupted half-way (a cancelled request
// can leave the daemon to finish it after our cleanup, leaking a view or
// cgroups): each runs to its end, bounded, and a cancellation of ctx is
// honoured between them. On error nothing is left behind: each step
// returns its own undo, and a failure runs the undos of the steps done.
func (r *Runner) Create(ctx context.Context, p *Prepared) (_ *Sandbox, retErr error) {
	ctx = r.namespaced(ctx)
	s := &Sandbox{r: r, ctx: ctx, id: newID(), limits: p.limits, image: p.req.Image, warm: p.warm}
	defer func() {
		if retErr != nil {
			retErr = errors.Join(retErr, s.Close(ctx))
		}
	}()
	stepCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stepTimeout)
	defer cancel()
	dir := filepath.Join(r.opts.stateDir, s.id)
	c := &creation{r: r, s: s, p: p, dir: dir, box: filepath.Join(dir, "box"), stepCtx: stepCtx}
	// Each step with the trace step it counts in ("": none); consecutive
	// steps of one trace step are timed together.
	steps := []struct {
		trace string
		do    createStep
	}{
		{"files", makeBox},
		{"files", makeFiles},
		{"files", holdOwnerLock},
		{"files", openReportSocket},
		{"files", findSelfInit},
		{"files", writeResolvConf},
		{"files", leaseRunUID},
		{"create-container", holdRootFS},
		{"create-container", createContainer},
		{"", checkCancelled},
		{"", makeStdio},
		{"create-task", createTask},
		{"", waitTask},
		{"loopback", bringLoopbackUp},
		{"", checkCancelled},
	}
	var done func()
	for i, st := range steps {
		if i == 0 || st.trace != steps[i-1].trace {
			if done != nil {
				done()
				done = nil
			}
			if st.trace != "" {
				done = r.step(s.id, st.trace)
			}
		}
		u, err := st.do(ctx, c)
		if u != nil {
			s.cleanups = append(s.cleanups, u)
		}
		if err != nil {
			return nil, err
		}
	}
	if done != nil {
		done()
	}
	return s, nil
}

// makeBox creates the run's state directory and the sandbox files in it:
// runner and code, read-only.
func makeBox(_ context.Context, c *creation) (undo, error) {
	rm := func(context.Context) error { return os.RemoveAll(c.dir) }
	return rm, prepareBox(c.dir, c.box, c.p.req.Code)
}

// makeFiles makes the host side of InDir with the request's files (a
// warm sandbox's come with its job).
func makeFiles(_ context.Context, c *creation) (undo, error) {
	return nil, makeInDir(c.dir, c.p.req.Files)
}

// holdOwnerLock locks the run's owner file for as long as the sandbox
// lives (see holdOwner).
func holdOwnerLock(_ context.Context, c *creation) (undo, error) {
	owner, err := holdOwner(c.dir)
	if err != nil {
		return nil, err
	}
	return func(context.Context) error { return owner.Close() }, nil
}

// openReportSocket listens on the run's report socket (see openReport).
func openReportSocket(_ context.Context, c *creation) (undo, error) {
	report, err := openReport(filepath.Join(c.box, reportName), reportLineLimit(c.r.opts.maxResultBytes))
	if err != nil {
		return nil, err
	}
	c.s.report = report
	return func(context.Context) error { report.close(); return nil }, nil
}

// findSelfInit finds the init binary the run's PID 1 is.
func findSelfInit(_ context.Context, c *creation) (undo, error) {
	var err error
	c.init, err = selfInit(c.r.opts.stateDir)
	return nil, err
}

// writeResolvConf writes the file that covers the image's resolv.conf
// (in the state directory, removed with it).
func writeResolvConf(_ context.Context, c *creation) (undo, error) {
	c.resolvConf = filepath.Join(c.dir, "resolv.conf")
	if err := writeReadOnly(c.resolvConf, []byte(resolvConfText)); err != nil {
		return nil, fmt.Errorf("sandbox resolv.conf: %w", err)
	}
	return nil, nil
}

// leaseRunUID leases the run a uid of its own, unless runs share one.
func leaseRunUID(_ context.Context, c *creation) (undo, error) {
	if c.r.opts.sharedUID {
		return nil, nil
	}
	uid, err := leaseUID(c.r.opts.stateDir, c.r.opts.runUIDs)
	if err != nil {
		return nil, err
	}
	c.s.uid = uid
	return func(context.Context) error { uid.release(); return nil }, nil
}

// holdRootFS holds the run's root filesystem: for runc, the view of the
// image the runs share; for gVisor, a snapshot of the run's own.
func holdRootFS(ctx context.Context, c *creation) (undo, error) {
	if c.p.limits.Runtime == RuntimeGVisor {
		return holdOwnRoot(ctx, c)
	}
	return holdSharedView(ctx, c)
}

// holdSharedView holds the root filesystem: the view of the image the
// runs share (see sharedview.go), until the container record is gone. It
// carries the garbage collector's root label from its creation on, so the
// run needs no lease of its own to keep it until the container holds it.
func holdSharedView(_ context.Context, c *creation) (undo, error) {
	shared, mounts, err := c.r.acquireSharedView(c.stepCtx, c.p)
	if err != nil {
		return nil, err
	}
	c.s.viewKey, c.mounts = shared.name, mounts
	release := func(cctx context.Context) error { return shared.release(cctx, c.r) }
	if c.resolvDest, err = imageFileTarget(c.stepCtx, mounts, resolvConfPath); err != nil {
		return release, fmt.Errorf("image %s: %s: %w", c.p.req.Image, resolvConfPath, err)
	}
	return release, nil
}

// createContainer creates the container record with the hardened spec.
// The record is created through the container service directly:
// client.NewContainer would take a lease (two more writes of containerd's
// metadata) and look up the namespace's default runtime, which the run
// names itself. Its undo removes the container, the task first if there
// is one; it is returned with a failed create too, which a cancellation
// may have left done on the daemon's side.
func createContainer(_ context.Context, c *creation) (undo, error) {
	r, s, p := c.r, c.s, c.p
	// The deadline covers creating and starting too: Start moves it only
	// when they took longer than startMargin, which saves a round-trip.
	s.deadline = time.Now().Add(startMargin + p.limits.Timeout + p.warm)
	labels := map[string]string{LabelRun: "1", LabelDeadline: deadlineLabel(s.deadline)}
	maps.Copy(labels, p.labels)
	plan := specPlan{
		init:       c.init,
		resolvConf: c.resolvConf,
		resolvDest: c.resolvDest,
		userOut:    &s.user,
		cgroupOut:  &s.cgroupsPath,
		limits:     p.limits,
		env:        p.config.Env,
		cwd:        p.config.WorkingDir,
		imageUser:  p.config.User,
		user:       p.req.User,
		sandboxDir: c.box,
		inDir:      filepath.Join(c.dir, inName),
		hostname:   "skill",
		warm:       p.warm,
		preload:    p.req.Preload,

		limitMode:    r.opts.limitMode,
		cgroupParent: r.opts.cgroupParent,
	}
	if s.uid != nil {
		plan.runUID = s.uid.uid
	}
	shim, shimOpts, err := r.runtimeOf(p.limits.Runtime)
	if err != nil {
		return nil, err
	}
	rec := containers.Container{ID: s.id}
	for _, o := range []client.NewContainerOpts{
		client.WithImageName(p.image.Name()),
		client.WithSnapshotter(r.opts.snapshotter),
		withSnapshotKey(s.viewKey),
		client.WithRuntime(shim, shimOpts),
		client.WithContainerLabels(labels),
		client.WithNewSpec(specOpts(plan)...),
	} {
		if err := o(c.stepCtx, r.client, &rec); err != nil {
			return nil, fmt.Errorf("create container: %w", err)
		}
	}
	remove := func(cctx context.Context) error {
		if s.taskGone {
			return s.removeRecordAndView(cctx)
		}
		return s.removeContainer(cctx)
	}
	if _, err := r.client.ContainerService().Create(c.stepCtx, rec); err != nil {
		return remove, fmt.Errorf("create container: %w", err)
	}
	return remove, nil
}

// checkCancelled stops Create between two steps when ctx is done.
func checkCancelled(ctx context.Context, _ *creation) (undo, error) {
	return nil, cancelled(ctx)
}

// makeStdio makes the output buffers and the task's stdin: the inputs, or
// for a warm sandbox a pipe its job comes through later (Sandbox.hand).
func makeStdio(_ context.Context, c *creation) (undo, error) {
	s, p := c.s, c.p
	s.stdout = newCappedBuffer(p.limits.OutputLimitBytes, p.req.Stdout)
	s.stderr = newCappedBuffer(p.limits.OutputLimitBytes, p.req.Stderr)
	c.stdin = bytes.NewReader(p.inputs)
	if p.warm <= 0 {
		return nil, nil
	}
	jr, jw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	s.job, c.stdin = jw, jr
	return func(context.Context) error { jw.Close(); jr.Close(); return nil }, nil
}

// createTask creates the container's task, not started, with its
// standard streams on FIFOs in the state directory.
func createTask(_ context.Context, c *creation) (undo, error) {
	s := c.s
	ioc := cio.NewCreator(cio.WithStreams(c.stdin, s.stdout, s.stderr), cio.WithFIFODir(filepath.Join(c.dir, "io")))
	task, err := newRunTask(c.stepCtx, c.r.client, s.id, c.mounts, ioc)
	if err != nil {
		if strings.Contains(err.Error(), "executable file not found") {
			return nil, fmt.Errorf("image %s has no python3 on PATH: %w", c.p.req.Image, errdefs.ErrFailedPrecondition)
		}
		return nil, fmt.Errorf("create task: %w", err)
	}
	s.task = task
	return func(cctx context.Context) error {
		if s.taskGone {
			return nil
		}
		if s.outputEnded {
			// Collect saw the task exit and its output end.
			return s.deleteExited(cctx)
		}
		err := s.deleteTaskKilled(cctx)
		task.IO().Close()
		return err
	}, nil
}

// waitTask starts waiting for the task's exit. The wait outlives ctx:
// after a cancellation the exit is still collected.
func waitTask(ctx context.Context, c *creation) (undo, error) {
	var err error
	if c.s.exitC, err = c.s.task.Wait(context.WithoutCancel(ctx)); err != nil {
		return nil, fmt.Errorf("wait task: %w", err)
	}
	return nil, nil
}

// bringLoopbackUp brings up the loopback device of the task's network
// namespace, unless WithLoopbackDown. A gVisor sandbox's loopback is
// gVisor's own, up from the start (see runscFlags).
func bringLoopbackUp(_ context.Context, c *creation) (undo, error) {
	if !c.r.opts.loopbackUp || c.p.limits.Runtime == RuntimeGVisor {
		return nil, nil
	}
	if err := loopbackUp(int(c.s.task.Pid())); err != nil {
		return nil, fmt.Errorf("network namespace of run %s: %w", c.s.id, err)
	}
	return nil, nil
}
