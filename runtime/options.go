package runtime

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	"github.com/skillbuild/skillbuild/config"
)

// Limits bound one run: the skill's run limits (config.RunLimits, one
// type for both). A zero field takes its default (DefaultLimits).
type Limits = config.RunLimits

// DefaultLimits are the limits of a run that sets none: --memory 256m
// --cpus 0.5 --pids 64 --timeout 30s --tmpfs-size 64m --output-limit 1m
// --runtime runc.
func DefaultLimits() Limits {
	return Limits{
		MemoryBytes:      256 << 20,
		CPUs:             0.5,
		Pids:             64,
		Timeout:          30 * time.Second,
		TmpfsBytes:       64 << 20,
		OutputLimitBytes: 1 << 20,
		Runtime:          RuntimeRunc,
	}
}

// withDefaults fills zero fields of l from DefaultLimits and rejects
// negative ones and an unknown runtime.
func withDefaults(l Limits) (Limits, error) {
	d := DefaultLimits()
	if l.Runtime == "" {
		l.Runtime = d.Runtime
	}
	if err := config.ValidateRuntime(l.Runtime); err != nil {
		return l, fmt.Errorf("%v: %w", err, errdefs.ErrInvalidArgument)
	}
	if l.MemoryBytes < 0 || l.CPUs < 0 || l.Pids < 0 || l.Timeout < 0 || l.TmpfsBytes < 0 || l.OutputLimitBytes < 0 {
		return l, fmt.Errorf("limits must not be negative (%+v): %w", l, errdefs.ErrInvalidArgument)
	}
	if l.MemoryBytes == 0 {
		l.MemoryBytes = d.MemoryBytes
	}
	if l.CPUs == 0 {
		l.CPUs = d.CPUs
	}
	if l.Pids == 0 {
		l.Pids = d.Pids
	}
	if l.Timeout == 0 {
		l.Timeout = d.Timeout
	}
	if l.TmpfsBytes == 0 {
		l.TmpfsBytes = d.TmpfsBytes
	}
	if l.OutputLimitBytes == 0 {
		l.OutputLimitBytes = d.OutputLimitBytes
	}
	if l.MemoryBytes < 8<<20 {
		return l, fmt.Errorf("memory limit %d bytes is below the 8 MiB a Python process needs: %w", l.MemoryBytes, errdefs.ErrInvalidArgument)
	}
	if l.TmpfsBytes < 1<<20 {
		// tmpfs reads size=0 as "no limit": never get near it.
		return l, fmt.Errorf("tmpfs size %d bytes is below 1 MiB: %w", l.TmpfsBytes, errdefs.ErrInvalidArgument)
	}
	if l.Pids < 2 {
		return l, fmt.Errorf("pids limit %d is below 2: %w", l.Pids, errdefs.ErrInvalidArgument)
	}
	return l, nil
}

type options struct {
	admit          func(ctx context.Context, rec images.Image) error
	stateDir       string
	snapshotter    string
	runtime        string
	runsc          string // the runsc binary of gVisor runs
	maxResultBytes int64
	sweepGrace     time.Duration
	sweepOnNew     bool
	viewSweepEvery time.Duration
	// containerSweepEvery: see WithContainerSweepEvery.
	containerSweepEvery time.Duration
	loopbackUp          bool
	sharedUID           bool
	runUIDs             uidRange // where a run's own uid comes from (WithRunUIDRange)
	limitMode           limitMode
	cgroupParent        string
	requireCgroups      bool
	trace               io.Writer
}

func defaultOptions() options {
	return options{
		stateDir:       "/var/lib/skillbuild/runs",
		snapshotter:    "overlayfs",
		runtime:        runcShim,
		runsc:          DefaultRunsc,
		maxResultBytes: 16 << 20,
		sweepGrace:     30 * time.Second,
		sweepOnNew:     true,
		loopbackUp:     true,
		runUIDs:        uidRange{base: RunUIDBase, count: RunUIDCount},
	}
}

// Opt configures a Runner.
type Opt func(*options) error

// WithStateDir sets the host directory that holds each run's sandbox files
// (runner, code, report socket, I/O FIFOs) while it runs. It is created with
// mode 0700. Default: /var/lib/skillbuild/runs.
func WithStateDir(dir string) Opt {
	return func(o *options) error {
		if dir == "" || !filepath.IsAbs(dir) {
			return fmt.Errorf("state directory %q must be an absolute path: %w", dir, errdefs.ErrInvalidArgument)
		}
		o.stateDir = filepath.Clean(dir)
		return nil
	}
}

// WithSnapshotter sets the containerd snapshotter of the read-only root
// filesystem views. Default: overlayfs.
func WithSnapshotter(name string) Opt {
	return func(o *options) error {
		if name == "" {
			return fmt.Errorf("snapshotter name is empty: %w", errdefs.ErrInvalidArgument)
		}
		o.snapshotter = name
		return nil
	}
}

// WithRuntime sets the containerd runtime (shim) of runc runs. Default:
// io.containerd.runc.v2. gVisor runs always use that shim, with runsc as
// its binary (see RuntimeGVisor).
func WithRuntime(name string) Opt {
	return func(o *options) error {
		if name == "" {
			return fmt.Errorf("runtime name is empty: %w", errdefs.ErrInvalidArgument)
		}
		o.runtime = name
		return nil
	}
}

// WithAdmission makes every run, and every warm container a pool starts,
// ask admit first, with the record of the image it is to run: an error
// refuses it before any container exists. The hook decides what may run
// (package skill's admission); the runtime only makes sure no path
// around it starts a container.
func WithAdmission(admit func(ctx context.Context, rec images.Image) error) Opt {
	return func(o *options) error {
		if admit == nil {
			return fmt.Errorf("admission hook is nil: %w", errdefs.ErrInvalidArgument)
		}
		o.admit = admit
		return nil
	}
}

// WithMaxResultBytes bounds the size of the JSON result a run may report.
// Default: 16 MiB.
func WithMaxResultBytes(n int64) Opt {
	return func(o *options) error {
		if n <= 0 {
			return fmt.Errorf("result size limit must be positive, got %d: %w", n, errdefs.ErrInvalidArgument)
		}
		o.maxResultBytes = n
		return nil
	}
}

// WithSweepGrace sets how long past its deadline a run's container must be
// before Sweep treats it as orphaned. Default: 30s.
func WithSweepGrace(d time.Duration) Opt {
	return durationOpt("sweep grace", d, func(o *options) { o.sweepGrace = d })
}

// WithViewSweepEvery makes Sweep walk containerd's snapshots for views no
// run holds (whose cost grows with every snapshot in the namespace) only
// when it found something of a dead run of this state directory, or when
// its last walk is older than d; other state directories' leftovers then
// wait up to d longer. Zero (the default) walks on every Sweep.
func WithViewSweepEvery(d time.Duration) Opt {
	return durationOpt("view sweep interval", d, func(o *options) { o.viewSweepEvery = d })
}

// WithContainerSweepEvery makes Sweep list containerd's run containers
// (whose cost grows with every run container of the namespace, each
// record with its spec, the live runs' included) only when its last list
// is older than d. In between it removes the runs of this state
// directory whose owner died, found from the state directory alone
// (their owner locks), at once as ever; a run of another state directory
// past its deadline, or one of this state directory whose state was
// removed from under it, then waits up to d longer. Zero (the default)
// lists on every Sweep.
func WithContainerSweepEvery(d time.Duration) Opt {
	return durationOpt("container sweep interval", d, func(o *options) { o.containerSweepEvery = d })
}

// durationOpt is an Opt that refuses a negative d (named what) and
// otherwise sets it.
func durationOpt(what string, d time.Duration, set func(*options)) Opt {
	return func(o *options) error {
		if d < 0 {
			return fmt.Errorf("%s must not be negative, got %s: %w", what, d, errdefs.ErrInvalidArgument)
		}
		set(o)
		return nil
	}
}

// WithLoopbackDown leaves the loopback device of a run's network namespace
// down (by default it is brought up, so code can use 127.0.0.1 inside its
// own sandbox). Either way the sandbox reaches nothing outside itself.
func WithLoopbackDown() Opt {
	return func(o *options) error {
		o.loopbackUp = false
		return nil
	}
}

// WithoutSweep makes New skip its sweep of orphaned runs; the caller runs
// Runner.Sweep itself (the CLI does, to warn rather than fail when an
// orphan cannot be removed).
func WithoutSweep() Opt {
	return func(o *options) error {
		o.sweepOnNew = false
		return nil
	}
}

// WithSharedUID makes runs that would get a uid of their own (see
// RunUIDBase) run as DefaultUID:DefaultGID instead, all of them sharing
// that uid's kernel quotas.
func WithSharedUID() Opt {
	return func(o *options) error {
		o.sharedUID = true
		return nil
	}
}

// WithTrace makes every run write how long each of its steps took to w,
// one line per step ("run <id> <step> <duration>", the duration in Go's
// notation), as the step ends: prepare (image record and config),
// files (sandbox files, owner lock, uid), create-container (lease, view,
// spec, container record), create-task (the shim and runc create: the
// namespaces, cgroups, mounts and seccomp), loopback, start, wait (the
// init and the code), oom-check, output-end (the output is complete)
// and close (task, record, view and files). Writes of concurrent runs may interleave, each line whole.
func WithTrace(w io.Writer) Opt {
	return func(o *options) error {
		o.trace = w
		return nil
	}
}
