package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/containerd/api/services/tasks/v1"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/opencontainers/go-digest"
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
	// chainID names the snapshot of the image's root filesystem: the
	// parent of the run's view.
	chainID digest.Digest
	// warm, when positive, creates a sandbox whose runner waits up to that
	// long for its job (a Pool's warm container; see Sandbox.hand).
	warm time.Duration
	// labels are added to the container's.
	labels map[string]string
}

// Limits are the request's limits with defaults filled in.
func (p *Prepared) Limits() Limits { return p.limits }

// Image is the record of the request's image, as Prepare read it.
func (p *Prepared) Image() images.Image { return p.image.Metadata() }

// Prepare checks req (limits, inputs, image name) and finds its image in
// containerd: one lookup of its record, its config and root filesystem
// kept per image digest after the first run. Create unpacks the image for
// the runner's snapshotter if it is not yet. An image that does not exist
// is ErrImageNotFound; a bad request is errdefs.ErrInvalidArgument.
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
	if err := r.checkRuntime(limits.Runtime); err != nil {
		return nil, err
	}
	if err := checkPreload(req.Preload); err != nil {
		return nil, err
	}
	if err := CheckFiles(req.Files); err != nil {
		return nil, err
	}
	if req.Image == "" {
		return nil, fmt.Errorf("no image given: %w", errdefs.ErrInvalidArgument)
	}
	done := r.step("-", "prepare")
	defer done()
	rec, err := r.client.ImageService().Get(ctx, req.Image)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return nil, fmt.Errorf("image %s: %w", req.Image, ErrImageNotFound)
		}
		return nil, fmt.Errorf("image %s: %w", req.Image, err)
	}
	if r.opts.admit != nil {
		if err := r.opts.admit(ctx, rec); err != nil {
			return nil, err
		}
	}
	img := client.NewImage(r.client, rec)
	info, err := r.images.get(ctx, img)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", req.Image, err)
	}
	return &Prepared{req: req, limits: limits, inputs: inputs, image: img, config: info.Config, chainID: info.ChainID}, nil
}

// Sandbox is one run's container with its task created but not started
// (Runner.Create), then started, waited for and collected. Close removes
// everything it holds, whatever stage it reached; it must always be
// called. A Sandbox is used by one goroutine.
type Sandbox struct {
	r      *Runner
	ctx    context.Context // the namespaced context of Create, for cleanup
	id     string
	limits Limits
	image  string
	report *reportReader
	stdout *cappedBuffer
	stderr *cappedBuffer
	uid    *uidLease  // the run's own uid, if any
	user   specs.User // the process's user, from the spec
	// cgroupsPath is the container's cgroup, from the spec ("": none).
	cgroupsPath string
	task        *runTask
	taskGone    bool // the task is deleted (Collect's fallback, or Close)
	// outputEnded: the task exited and its output is complete (Collect).
	outputEnded bool
	viewKey     string // the root filesystem's snapshot: a shared view
	exitC       <-chan client.ExitStatus
	start       time.Time
	deadline    time.Time     // the LabelDeadline of the container
	warm        time.Duration // see Prepared.warm
	job         *os.File      // a warm sandbox's job pipe to the init
	cleanups    []func(context.Context) error
	once        sync.Once
	closeErr    error
}

// ID is the ID of the sandbox's container, snapshot and state directory.
func (s *Sandbox) ID() string { return s.id }

// cleanupContext is a context for cleanup that outlives a cancellation of
// the run's own.
func (s *Sandbox) cleanupContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(s.ctx), cleanupTimeout)
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
	done := s.r.step(s.id, "start")
	if err := s.task.Start(stepCtx); err != nil {
		return fmt.Errorf("start task: %w", err)
	}
	done()
	// The init's deadline counts from its own start, a little after this:
	// the sweep grace covers the difference. A warm one's counts from its
	// job; until then its idle limit holds.
	until := time.Now().Add(s.limits.Timeout)
	if s.warm > 0 {
		until = time.Now().Add(s.warm)
	}
	if !until.After(s.deadline) {
		return nil // the label set at creation still covers the run
	}
	defer s.r.step(s.id, "label-deadline")()
	if err := s.setLabels(stepCtx, map[string]string{LabelDeadline: deadlineLabel(until)}); err != nil {
		return fmt.Errorf("label the run's deadline: %w", err)
	}
	s.deadline = until
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
	defer s.r.step(s.id, "wait")()
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
		// The task may have ended meanwhile (its init's deadline is the
		// same as ours): runsc then says its sandbox is not running,
		// which the shim does not tell from other failures.
		select {
		case st := <-s.exitC:
			return st, nil
		case <-time.After(killRaceWait):
		}
		return client.ExitStatus{}, fmt.Errorf("kill task: %w", err)
	}
	select {
	case st := <-s.exitC:
		return st, nil
	case <-cctx.Done():
		return client.ExitStatus{}, fmt.Errorf("task did not exit after SIGKILL: %w", cctx.Err())
	}
}

// killRaceWait is how long a failed kill of a task waits for the task's
// exit before it counts as a failure.
const killRaceWait = 2 * time.Second

// Collect reads what the exited task left: the OOM-kill counter, its
// output (complete once every process of the container is gone, see
// endOutput), and the runner's report, and interprets them into the
// Result. The task itself is deleted by Close.
func (s *Sandbox) Collect(ctx context.Context, exit Exit) (Result, error) {
	res := Result{TimedOut: exit.TimedOut, Duration: exit.Duration, UID: s.user.UID, GID: s.user.GID, LimitsEnforced: s.r.opts.limitMode.enforced()}
	cctx, cancel := s.cleanupContext()
	defer cancel()
	if s.r.opts.limitMode == cgroupLimits {
		// Without a cgroup there is no OOM killer of the run's own.
		var err error
		done := s.r.step(s.id, "oom-check")
		res.OOMKilled, err = oomKilled(cctx, s.task, s.cgroupsPath)
		done()
		if err != nil {
			return res, err
		}
	}
	done := s.r.step(s.id, "output-end")
	if err := s.endOutput(cctx); err != nil {
		return res, err
	}
	done()
	rep, repErr := s.report.finish()
	if err := startFailure(s.image, int(exit.Status.ExitCode()), rep, s.stderr.Bytes()); err != nil {
		return res, err
	}

	res.ExitCode = int(exit.Status.ExitCode())
	res.Stdout = toValidUTF8(s.stdout.Bytes())
	res.Stderr = toValidUTF8(s.stderr.Bytes())
	res.Truncated = s.stdout.Truncated() || s.stderr.Truncated()
	res.Result, res.Error = interpret(res, s.limits, rep, repErr, s.r.opts.maxResultBytes)
	if rep != nil {
		res.Files, res.FilesOmitted = checkOutFiles(rep.Files, rep.FilesOmitted)
	}
	if s.r.opts.limitMode == rlimitLimits && rep == nil && res.ExitCode == 128+int(syscall.SIGXCPU) && !res.TimedOut {
		res.Error = &CodeError{Type: ErrorCPUTimeLimit, Message: fmt.Sprintf("the run used its %d CPU seconds (RLIMIT_CPU: %g cpus × %s timeout) and was killed", cpuSeconds(s.limits), s.limits.CPUs, s.limits.Timeout)}
	}
	return res, nil
}

// outputEndTimeout bounds the wait for the end of an exited task's output
// before Collect deletes the task to end it.
const outputEndTimeout = 2 * time.Second

// endOutput waits until the exited task's output is complete. The init is
// PID 1 of the container's PID namespace: when it has exited, every
// process of the container is gone and the shim, at the end of the pipes,
// closes the output. Deleting the task (a runc delete, tens of
// milliseconds) is left to Close, off the run's path, unless the output
// does not end in time: then the task is deleted here, which ends it.
func (s *Sandbox) endOutput(ctx context.Context) error {
	ended := make(chan struct{})
	go func() {
		if io := s.task.IO(); io != nil {
			io.Wait()
		}
		close(ended)
	}()
	select {
	case <-ended:
		s.outputEnded = true
		return nil
	case <-time.After(outputEndTimeout):
	}
	if err := s.deleteTask(ctx); err != nil {
		return err
	}
	select { // the copy of what the shim flushed at the delete
	case <-ended:
	case <-time.After(outputEndTimeout):
	}
	if io := s.task.IO(); io != nil {
		io.Close()
	}
	return nil
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
		defer s.r.step(s.id, "close")()
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

// withSnapshotKey makes the container's root filesystem the snapshot key,
// which the run created itself (client.WithSnapshot would look it up once
// more).
func withSnapshotKey(key string) client.NewContainerOpts {
	return func(_ context.Context, _ *client.Client, c *containers.Container) error {
		c.SnapshotKey = key
		return nil
	}
}

// deleteExited deletes the exited task once its output is all copied
// (the shim closes the pipes when the last process of the container is
// gone): what client.Task.Delete does, without asking the task's status
// first.
func (s *Sandbox) deleteExited(ctx context.Context) error {
	if io := s.task.IO(); io != nil {
		io.Cancel()
		io.Wait()
	}
	if err := s.deleteTask(ctx); err != nil {
		return err
	}
	if io := s.task.IO(); io != nil {
		io.Close()
	}
	return nil
}

// deleteTask deletes the exited task through the task service, without
// the status call client.Task.Delete makes first.
func (s *Sandbox) deleteTask(ctx context.Context) error {
	_, err := s.r.client.TaskService().Delete(ctx, &tasks.DeleteTaskRequest{ContainerID: s.id})
	if err = errgrpc.ToNative(err); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete task: %w", err)
	}
	s.taskGone = true
	return nil
}

// setLabels sets labels on the sandbox's container record (what
// client.Container.SetLabels does, without loading the container first).
func (s *Sandbox) setLabels(ctx context.Context, labels map[string]string) error {
	paths := make([]string, 0, len(labels))
	for k := range labels {
		paths = append(paths, "labels."+k)
	}
	_, err := s.r.client.ContainerService().Update(ctx, containers.Container{ID: s.id, Labels: labels}, paths...)
	return err
}

// removeContainer kills and deletes the sandbox's task, if any, and
// deletes its container record: the path of a run that did not end
// normally (see removeContainer).
func (s *Sandbox) removeContainer(ctx context.Context) error {
	c, err := s.r.client.LoadContainer(ctx, s.id)
	if err == nil {
		err = removeContainer(ctx, c, s.r.opts.processKill())
	}
	if err != nil && !errdefs.IsNotFound(err) {
		return err
	}
	return nil
}

// deleteTaskKilled kills and deletes the sandbox's task through a
// client.Task loaded for it: the path of a run whose task did not exit by
// itself (client.WithProcessKill and its kin need a client.Process).
func (s *Sandbox) deleteTaskKilled(ctx context.Context) error {
	c, err := s.r.client.LoadContainer(ctx, s.id)
	if err == nil {
		var t client.Task
		if t, err = c.Task(ctx, nil); err == nil {
			_, err = t.Delete(ctx, s.r.opts.processKill())
		}
	}
	if err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete task: %w", err)
	}
	return nil
}

// removeRecordAndView removes the container record of a sandbox whose
// task is deleted; its view is shared and released after it (see
// sharedViewUse.release).
func (s *Sandbox) removeRecordAndView(ctx context.Context) error {
	err := s.r.client.ContainerService().Delete(ctx, s.id)
	if err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete container: %w", err)
	}
	return nil
}
