package runtime

import (
	"context"
	"fmt"
	"math"
	"path"

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
	// RLIMIT_AS, address space; cpus: RLIMIT_CPU, CPU seconds, cpus ×
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
var ErrLimitsNotEnforceable = fmt.Errorf("memory, CPU and process limits cannot be enforced by cgroups here: %w", errdefs.ErrFailedPrecondition)

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
// process limits with rlimits instead: RLIMIT_AS, RLIMIT_CPU (cpus ×
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
// resources and bounds each process with rlimits: RLIMIT_AS at the memory
// limit, RLIMIT_CPU at cpus × timeout seconds (at least one), RLIMIT_NPROC
// at the pids limit.
func WithRlimitsInsteadOfCgroups(l Limits) oci.SpecOpts {
	return func(ctx context.Context, client oci.Client, c *containers.Container, s *oci.Spec) error {
		if l.MemoryBytes <= 0 || l.CPUs <= 0 || l.Pids <= 0 || l.Timeout <= 0 {
			return fmt.Errorf("rlimits need positive memory, cpus, pids and timeout (%+v): %w", l, errdefs.ErrInvalidArgument)
		}
		if s.Linux != nil {
			s.Linux.Resources = nil
			s.Linux.CgroupsPath = ""
		}
		cpuSeconds := uint64(math.Max(1, math.Ceil(l.CPUs*l.Timeout.Seconds())))
		for _, r := range []specs.POSIXRlimit{
			{Type: "RLIMIT_AS", Hard: uint64(l.MemoryBytes), Soft: uint64(l.MemoryBytes)},
			{Type: "RLIMIT_CPU", Hard: cpuSeconds, Soft: cpuSeconds},
			{Type: "RLIMIT_NPROC", Hard: uint64(l.Pids), Soft: uint64(l.Pids)},
		} {
			if err := oci.WithRlimit(&r)(ctx, client, c, s); err != nil {
				return err
			}
		}
		return nil
	}
}
