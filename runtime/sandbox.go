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
	"sync"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/opencontainers/runtime-spec/specs-go"
	"github.com/skillbuild/skillbuild/runtime/pid1"
)

// Prepared is a checked request with its image resolved and unpacked: the
// first stage of a run (Runner.Prepare). It holds nothing that needs
// cleaning up.
type Prepared struct {
	req    Request
	limits Limits
	inputs []byte // the inputs line the runner reads
	image  client.Image
	config ocispec.ImageConfig
	// warm, when positive, creates a sandbox whose runner waits up to that
	// long for its job (a Pool's warm container; see Sandbox.hand).
	warm time.Duration
	// labels are added to the container's and its view's.
	labels map[string]string
}

// Limits are the request's limits with defaults filled in.
func (p *Prepared) Limits() Limits { return p.limits }

// Prepare checks req (limits, inputs, image name), finds its image in
// containerd and unpacks it for the runner's snapshotter if needed. An
// image that does not exist is ErrImageNotFound; a bad request is
// errdefs.ErrInvalidArgument.
func (r *Runner) Prepare(ctx context.Context, req Request) (*Prepared, error) {
	ctx = r.namespaced(ctx)
	limits, err := withDefaults(req.Limits)
	if err != nil {
		return nil, err
	}
	inputs, err := normalizeInputs(req.Inputs)
	if err != nil {
		return nil, err
	}
	if r.opts.requireCgroups && r.opts.limitMode != cgroupLimits {
		return nil, ErrLimitsNotEnforceable
	}
	if err := checkPreload(req.Preload); err != nil {
		return nil, err
	}
	if req.Image == "" {
		return nil, fmt.Errorf("no image given: %w", errdefs.ErrInvalidArgument)
	}
	img, err := r.client.GetImage(ctx, req.Image)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return nil, fmt.Errorf("image %s: %w", req.Image, ErrImageNotFound)
		}
		return nil, fmt.Errorf("image %s: %w", req.Image, err)
	}
	if ok, err := img.IsUnpacked(ctx, r.opts.snapshotter); err != nil {
		return nil, fmt.Errorf("image %s: %w", req.Image, err)
	} else if !ok {
		if err := img.Unpack(ctx, r.opts.snapshotter); err != nil {
			return nil, fmt.Errorf("unpack image %s: %w", req.Image, err)
		}
	}
	ispec, err := img.Spec(ctx)
	if err != nil {
		return nil, fmt.Errorf("image %s config: %w", req.Image, err)
	}
	return &Prepared{req: req, limits: limits, inputs: inputs, image: img, config: ispec.Config}, nil
}

// Sandbox is one run's container with its task created but not started
// (Runner.Create), then started, waited for and collected. Close removes
// everything it holds, whatever stage it reached; it must always be
// called. A Sandbox is used by one goroutine.
type Sandbox struct {
	r         *Runner
	ctx       context.Context // the namespaced context of Create, for cleanup
	id        string
	limits    Limits
	image     string
	report    *reportReader
	stdout    *cappedBuffer
	stderr    *cappedBuffer
	container client.Container
	uid       *uidLease  // the run's own uid, if any
	user      specs.User // the process's user, from the spec
	task      client.Task
	exitC     <-chan client.ExitStatus
	start     time.Time
	warm      time.Duration // see Prepared.warm
	job       *os.File      // a warm sandbox's job pipe to the init
	cleanups  []func(context.Context) error
	once      sync.Once
	closeErr  error
}

// ID is the ID of the sandbox's container, snapshot and state directory.
func (s *Sandbox) ID() string { return s.id }

// cleanupContext is a context for cleanup that outlives a cancellation of
// the run's own.
func (s *Sandbox) cleanupContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(s.ctx), cleanupTimeout)
}

// Create writes the sandbox files (runner, code, report FIFO), creates the
// container on a read-only view of the image with the hardened spec, and
// creates its task with the inputs on stdin, not started. Creating the
// container and the task are not interrupted half-way (a cancelled request
// can leave the daemon to finish it after our cleanup, leaking a view or
// cgroups): each runs to its end, bounded, and a cancellation of ctx is
// honoured between them. On error nothing is left behind.
func (r *Runner) Create(ctx context.Context, p *Prepared) (_ *Sandbox, retErr error) {
	ctx = r.namespaced(ctx)
	s := &Sandbox{r: r, ctx: ctx, id: newID(), limits: p.limits, image: p.req.Image, warm: p.warm}
	defer func() {
		if retErr != nil {
			retErr = errors.Join(retErr, s.Close(ctx))
		}
	}()
	dir := filepath.Join(r.opts.stateDir, s.id)

	// The sandbox files: runner and code read-only, the report FIFO.
	box := filepath.Join(dir, "box")
	s.cleanups = append(s.cleanups, func(context.Context) error { return os.RemoveAll(dir) })
	if err := prepareBox(dir, box, p.req.Code); err != nil {
		return nil, err
	}
	report, err := openReport(filepath.Join(box, reportName), r.opts.maxResultBytes)
	if err != nil {
		return nil, err
	}
	s.report = report
	s.cleanups = append(s.cleanups, func(context.Context) error { report.close(); return nil })

	// Until Start sets the real one, the deadline covers creating and
	// starting too.
	labels := map[string]string{LabelRun: "1", LabelDeadline: deadlineLabel(time.Now().Add(2*stepTimeout + p.limits.Timeout + p.warm))}
	maps.Copy(labels, p.labels)
	init, err := selfInit()
	if err != nil {
		return nil, err
	}
	resolvConf := filepath.Join(dir, "resolv.conf")
	if err := writeReadOnly(resolvConf, []byte(resolvConfText)); err != nil {
		return nil, fmt.Errorf("sandbox resolv.conf: %w", err)
	}
	if !r.opts.sharedUID {
		if s.uid, err = leaseUID(r.opts.stateDir, r.opts.runUIDs); err != nil {
			return nil, err
		}
		s.cleanups = append(s.cleanups, func(context.Context) error { s.uid.release(); return nil })
	}
	plan := specPlan{
		init:       init,
		resolvConf: resolvConf,
		userOut:    &s.user,
		limits:     p.limits,
		env:        p.config.Env,
		cwd:        p.config.WorkingDir,
		imageUser:  p.config.User,
		user:       p.req.User,
		sandboxDir: box,
		hostname:   "skill",
		warm:       p.warm,
		preload:    p.req.Preload,

		limitMode:    r.opts.limitMode,
		cgroupParent: r.opts.cgroupParent,
	}
	if s.uid != nil {
		plan.runUID = s.uid.uid
	}
	stepCtx, stepCancel := context.WithTimeout(context.WithoutCancel(ctx), stepTimeout)
	defer stepCancel()
	container, err := r.client.NewContainer(stepCtx, s.id,
		client.WithImage(p.image),
		client.WithSnapshotter(r.opts.snapshotter),
		client.WithNewSnapshotView(s.id, p.image, snapshots.WithLabels(labels)),
		client.WithRuntime(r.opts.runtime, nil),
		client.WithContainerLabels(labels),
		client.WithNewSpec(specOpts(plan)...),
	)
	if err != nil {
		// A cancelled NewContainer may still have created the container or
		// its view on the daemon's side: remove whatever exists.
		cctx, cancel := s.cleanupContext()
		defer cancel()
		if c, lerr := r.client.LoadContainer(cctx, s.id); lerr == nil {
			_ = removeContainer(cctx, c, r.opts.processKill())
		}
		if sn := r.client.SnapshotService(r.opts.snapshotter); sn != nil {
			_ = sn.Remove(cctx, s.id)
		}
		return nil, fmt.Errorf("create container: %w", err)
	}
	// removeContainer also kills and deletes a task the client lost track
	// of (a NewTask that failed half-way).
	s.container = container
	s.cleanups = append(s.cleanups, func(cctx context.Context) error { return removeContainer(cctx, container, r.opts.processKill()) })
	if err := cancelled(ctx); err != nil {
		return nil, err
	}

	s.stdout = newCappedBuffer(p.limits.OutputLimitBytes, p.req.Stdout)
	s.stderr = newCappedBuffer(p.limits.OutputLimitBytes, p.req.Stderr)
	ioDir := filepath.Join(dir, "io")
	var stdin io.Reader = bytes.NewReader(p.inputs)
	if p.warm > 0 {
		// The job comes later, through a pipe (Sandbox.hand).
		jr, jw, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		s.job, stdin = jw, jr
		s.cleanups = append(s.cleanups, func(context.Context) error { jw.Close(); jr.Close(); return nil })
	}
	task, err := container.NewTask(stepCtx, cio.NewCreator(cio.WithStreams(stdin, s.stdout, s.stderr), cio.WithFIFODir(ioDir)))
	if err != nil {
		if strings.Contains(err.Error(), "executable file not found") {
			return nil, fmt.Errorf("image %s has no python3 on PATH: %w", p.req.Image, errdefs.ErrFailedPrecondition)
		}
		return nil, fmt.Errorf("create task: %w", err)
	}
	s.task = task
	s.cleanups = append(s.cleanups, func(cctx context.Context) error {
		_, err := task.Delete(cctx, r.opts.processKill())
		if task.IO() != nil {
			task.IO().Close()
		}
		if err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("delete task: %w", err)
		}
		return nil
	})
	// Wait outlives ctx: after a cancellation the exit is still collected.
	s.exitC, err = task.Wait(context.WithoutCancel(ctx))
	if err != nil {
		return nil, fmt.Errorf("wait task: %w", err)
	}
	if r.opts.loopbackUp {
		if err := loopbackUp(int(task.Pid())); err != nil {
			return nil, fmt.Errorf("network namespace of run %s: %w", s.id, err)
		}
	}
	if err := cancelled(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// cancelled is the error of a run whose ctx is done, or nil.
func cancelled(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("run cancelled: %w", err)
	}
	return nil
}

// Start starts the sandbox's task: the code begins to run and its timeout
// to count.
func (s *Sandbox) Start(ctx context.Context) error {
	if err := cancelled(ctx); err != nil {
		return err
	}
	stepCtx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), stepTimeout)
	defer cancel()
	s.start = time.Now()
	if err := s.task.Start(stepCtx); err != nil {
		return fmt.Errorf("start task: %w", err)
	}
	// The init's deadline counts from its own start, a little after this:
	// the sweep grace covers the difference. A warm one's counts from its
	// job; until then its idle limit holds.
	until := time.Now().Add(s.limits.Timeout)
	if s.warm > 0 {
		until = time.Now().Add(s.warm)
	}
	if _, err := s.container.SetLabels(stepCtx, map[string]string{LabelDeadline: deadlineLabel(until)}); err != nil {
		return fmt.Errorf("label the run's deadline: %w", err)
	}
	return nil
}

// deadlineLabel is the value of LabelDeadline for t.
func deadlineLabel(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// Exit is how a started sandbox's task ended (Sandbox.Wait).
type Exit struct {
	Status   client.ExitStatus
	TimedOut bool
	// Duration is from Start to the exit.
	Duration time.Duration
}

// Wait waits for the task to exit. At the timeout every process of it is
// killed, by the init inside the container (which holds the deadline even
// when this process is gone) or from here, whichever comes first. When ctx
// is cancelled first, the processes are killed too and the error says the
// run was cancelled.
func (s *Sandbox) Wait(ctx context.Context) (Exit, error) {
	var exit Exit
	timer := time.NewTimer(s.limits.Timeout)
	defer timer.Stop()
	select {
	case exit.Status = <-s.exitC:
		exit.TimedOut = s.initKilled(exit.Status)
	case <-timer.C:
		exit.TimedOut = true
		st, err := s.killAndWait()
		if err != nil {
			return exit, err
		}
		exit.Status = st
	case <-ctx.Done():
		if _, err := s.killAndWait(); err != nil {
			return exit, errors.Join(ctx.Err(), err)
		}
		return exit, fmt.Errorf("run cancelled: %w", ctx.Err())
	}
	exit.Duration = time.Since(s.start)
	return exit, nil
}

// initKilled reports whether the init ended the run at its deadline: it
// exited with pid1.DeadlineStatus no earlier than the timeout after Start
// (its own clock starts a little later than ours).
func (s *Sandbox) initKilled(st client.ExitStatus) bool {
	if int(st.ExitCode()) != pid1.DeadlineStatus {
		return false
	}
	at := st.ExitTime()
	if at.IsZero() {
		at = time.Now()
	}
	return at.Sub(s.start) >= s.limits.Timeout
}

// killAndWait kills every process of the task and waits for its exit.
func (s *Sandbox) killAndWait() (client.ExitStatus, error) {
	cctx, cancel := s.cleanupContext()
	defer cancel()
	if err := s.task.Kill(cctx, syscall.SIGKILL, s.r.opts.killOpts()...); err != nil && !errdefs.IsNotFound(err) {
		return client.ExitStatus{}, fmt.Errorf("kill task: %w", err)
	}
	select {
	case st := <-s.exitC:
		return st, nil
	case <-cctx.Done():
		return client.ExitStatus{}, fmt.Errorf("task did not exit after SIGKILL: %w", cctx.Err())
	}
}

// Collect reads what the exited task left: the OOM-kill counter, its
// output (complete once the task is deleted: the shim closes the pipes
// when every process of the container is gone), and the runner's report,
// and interprets them into the Result.
func (s *Sandbox) Collect(ctx context.Context, exit Exit) (Result, error) {
	res := Result{TimedOut: exit.TimedOut, Duration: exit.Duration, UID: s.user.UID, GID: s.user.GID, LimitsEnforced: s.r.opts.limitMode.enforced()}
	cctx, cancel := s.cleanupContext()
	defer cancel()
	if s.r.opts.limitMode == cgroupLimits {
		// Without a cgroup there is no OOM killer of the run's own.
		var err error
		res.OOMKilled, err = oomKilled(cctx, s.task)
		if err != nil {
			return res, err
		}
	}
	if _, err := s.task.Delete(cctx); err != nil && !errdefs.IsNotFound(err) {
		return res, fmt.Errorf("delete task: %w", err)
	}
	rep, repErr := s.report.finish()
	if err := startFailure(s.image, int(exit.Status.ExitCode()), rep, s.stderr.Bytes()); err != nil {
		return res, err
	}

	res.ExitCode = int(exit.Status.ExitCode())
	res.Stdout = toValidUTF8(s.stdout.Bytes())
	res.Stderr = toValidUTF8(s.stderr.Bytes())
	res.Truncated = s.stdout.Truncated() || s.stderr.Truncated()
	res.Result, res.Error = interpret(res, s.limits, rep, repErr, s.r.opts.maxResultBytes)
	if s.r.opts.limitMode == rlimitLimits && rep == nil && res.ExitCode == 128+int(syscall.SIGXCPU) && !res.TimedOut {
		res.Error = &CodeError{Type: ErrorCPUTimeLimit, Message: fmt.Sprintf("the run used its %d CPU seconds (RLIMIT_CPU: %g cpus × %s timeout) and was killed", cpuSeconds(s.limits), s.limits.CPUs, s.limits.Timeout)}
	}
	return res, nil
}

// Close removes the task, the container, its snapshot and the state
// files, on a context that outlives a cancellation of ctx. It is safe to
// call more than once.
func (s *Sandbox) Close(ctx context.Context) error {
	s.once.Do(func() {
		for _, b := range []*cappedBuffer{s.stdout, s.stderr} {
			if b != nil {
				b.end() // the forwarders stop once their writers caught up
			}
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(s.r.namespaced(ctx)), cleanupTimeout)
		defer cancel()
		var errs []error
		for i := len(s.cleanups) - 1; i >= 0; i-- {
			if err := s.cleanups[i](cctx); err != nil {
				errs = append(errs, err)
			}
		}
		if err := errors.Join(errs...); err != nil {
			s.closeErr = fmt.Errorf("clean up run %s: %w", s.id, err)
		}
	})
	return s.closeErr
}

// Flush waits until the request's Stdout and Stderr writers have received
// all the output kept, or one of them failed, or ctx is done. Call it after
// Collect (the output is complete) and preferably after Close, so the
// teardown does not wait on the writers' readers.
func (s *Sandbox) Flush(ctx context.Context) {
	for _, b := range []*cappedBuffer{s.stdout, s.stderr} {
		if b != nil {
			_ = b.flush(ctx) // the writer's own error is its owner's to see
		}
	}
}

// startFailure is the error of a run whose init could not start the
// runner (the image has no python3 on PATH), or nil.
func startFailure(image string, exitCode int, rep *runnerReport, stderr []byte) error {
	if rep != nil || exitCode != pid1.StartFailedStatus {
		return nil
	}
	msg, ok := strings.CutPrefix(string(stderr), pid1.StartFailedPrefix)
	if !ok {
		return nil
	}
	return fmt.Errorf("image %s: %s: %w", image, strings.TrimSpace(msg), errdefs.ErrFailedPrecondition)
}
