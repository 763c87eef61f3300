package runtime

import (
	"context"
	"fmt"
	"math"
	"path"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/runtime-spec/specs-go"
)

// How a limit of a run was enforced (the values of Result.LimitsEnforced).
const (
	// ByCgroup: the container's cgroup held the limit, for all its
	// processes together.
	ByCgroup = "cgroup"
	// ByRlimit: an rlimit held it, for each process on its own (memory:
	// RLIMIT_AS, set by the runner; cpus: RLIMIT_CPU, CPU seconds, cpus ×
	// timeout; pids: RLIMIT_NPROC, counted per user id of the sandbox).
	ByRlimit = "rlimit"
)

// Names of the limits in Result.LimitsEnforced.
const (
	LimitMemory = "memory"
	LimitCPUs   = "cpus"
	LimitPids   = "pids"
)

// ErrLimitsNotEnforceable says a run was refused because its memory, CPU
// and process limits could only be held by rlimits (WithRequireCgroups); it
// wraps errdefs.ErrFailedPrecondition.
var ErrLimitsNotEnforceable = fmt.Errorf("limits not enforceable by cgroups: %w", errdefs.ErrFailedPrecondition)

// limitMode is how a Runner enforces memory, CPU and process limits.
type limitMode int

const (
	// cgroupLimits: containerd's cgroup, where containerd puts it.
	cgroupLimits limitMode = iota
	// rlimitLimits: no cgroup at all (a rootless runc without
	// delegation), rlimits instead.
	rlimitLimits
)

// enforced is the LimitsEnforced of a run in mode m.
func (m limitMode) enforced() map[string]string {
	by := ByCgroup
	if m == rlimitLimits {
		by = ByRlimit
	}
	return map[string]string{LimitMemory: by, LimitCPUs: by, LimitPids: by}
}

// WithCgroupParent puts every run's cgroup below parent (relative to each
// hierarchy's root), as parent/NAMESPACE/ID: a subtree delegated to a
// rootless user. Default: containerd's /NAMESPACE/ID.
func WithCgroupParent(parent string) Opt {
	return func(o *options) error {
		if !path.IsAbs(parent) {
			return fmt.Errorf("cgroup parent %q must start with /: %w", parent, errdefs.ErrInvalidArgument)
		}
		o.cgroupParent = path.Clean(parent)
		return nil
	}
}

// WithRlimitLimits runs without any cgroup (a rootless runtime with no
// cgroup delegation cannot create one) and holds the memory, CPU and
// process limits with rlimits instead: RLIMIT_AS (set by the runner), RLIMIT_CPU (cpus ×
// timeout seconds) and RLIMIT_NPROC. These bound each process on its own,
// not the container as a whole; Result.LimitsEnforced says so, and the
// OOM killer never acts (an allocation past the limit fails: MemoryError).
func WithRlimitLimits() Opt {
	return func(o *options) error {
		o.limitMode = rlimitLimits
		return nil
	}
}

// WithRequireCgroups refuses runs (ErrLimitsNotEnforceable) whose limits
// would be held by rlimits rather than cgroups.
func WithRequireCgroups() Opt {
	return func(o *options) error {
		o.requireCgroups = true
		return nil
	}
}

// WithCgroupsPathUnder sets the container's cgroup to parent/NAMESPACE/ID.
func WithCgroupsPathUnder(parent string) oci.SpecOpts {
	return func(ctx context.Context, _ oci.Client, c *containers.Container, s *oci.Spec) error {
		ns, err := namespaces.NamespaceRequired(ctx)
		if err != nil {
			return err
		}
		if s.Linux == nil {
			s.Linux = &specs.Linux{}
		}
		s.Linux.CgroupsPath = path.Join(parent, ns, c.ID)
		return nil
	}
}

// WithRlimitsInsteadOfCgroups removes the container's cgroup and its
// resources and bounds each process with rlimits: RLIMIT_CPU at cpus ×
// timeout seconds (at least one) and RLIMIT_NPROC at the pids limit. The
// memory limit is the runner's to set (RLIMIT_AS, see runner.py): runc
// applies the spec's rlimits before it loads seccomp, and its own Go init
// fails under an address-space (or data) limit of tens of megabytes.
func WithRlimitsInsteadOfCgroups(l Limits) oci.SpecOpts {
	return func(ctx context.Context, client oci.Client, c *containers.Container, s *oci.Spec) error {
		if l.CPUs <= 0 || l.Pids <= 0 || l.Timeout <= 0 {
			return fmt.Errorf("rlimits need positive cpus, pids and timeout (%+v): %w", l, errdefs.ErrInvalidArgument)
		}
		if s.Linux != nil {
			s.Linux.Resources = nil
			s.Linux.CgroupsPath = ""
		}
		// SIGXCPU at the soft limit (reported as ErrorCPUTimeLimit),
		// SIGKILL a second later for code that catches it.
		secs := uint64(cpuSeconds(l))
		for _, r := range []specs.POSIXRlimit{
			{Type: "RLIMIT_CPU", Hard: secs + 1, Soft: secs},
			{Type: "RLIMIT_NPROC", Hard: uint64(l.Pids), Soft: uint64(l.Pids)},
		} {
			if err := oci.WithRlimit(&r)(ctx, client, c, s); err != nil {
				return err
			}
		}
		return nil
	}
}

// cpuSeconds is RLIMIT_CPU's soft limit for l: cpus × timeout, at least 1.
func cpuSeconds(l Limits) int64 {
	return int64(math.Max(1, math.Ceil(l.CPUs*l.Timeout.Seconds())))
}

// killInit is client.WithProcessKill for containers without a cgroup:
// runc 1.1 finds "all" the processes of a container through its cgroup,
// so SIGKILL goes to init alone, whose death ends its PID namespace and
// every process in it.
func killInit(ctx context.Context, p client.Process) error {
	if p.Pid() == 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := p.Wait(ctx)
	if err != nil {
		return err
	}
	if err := p.Kill(ctx, syscall.SIGKILL); err != nil && !errdefs.IsNotFound(err) {
		return err
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-s:
		return nil
	}
}

// processKill is how a Runner kills a task before deleting it.
func (o options) processKill() client.ProcessDeleteOpts {
	if o.limitMode == rlimitLimits {
		return killInit
	}
	return killAllProcesses
}

// killAllProcesses is client.WithProcessKill, except that a kill that
// fails because the task exited meanwhile is no failure: runsc then says
// its sandbox is not running, which the shim passes on as an unknown
// error (runc's is "not found").
func killAllProcesses(ctx context.Context, p client.Process) error {
	if p.Pid() == 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	exited, err := p.Wait(ctx)
	if err != nil {
		return err
	}
	if err := p.Kill(ctx, syscall.SIGKILL, client.WithKillAll); err != nil {
		if errdefs.IsFailedPrecondition(err) {
			return nil
		}
		select {
		case <-exited:
			return nil
		case <-time.After(killRaceWait):
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	select {
	case <-exited:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// killOpts are the options of a Runner's SIGKILL to a whole task.
func (o options) killOpts() []client.KillOpts {
	if o.limitMode == rlimitLimits {
		return nil // init's death ends the PID namespace (see killInit)
	}
	return []client.KillOpts{client.WithKillAll}
}
