package runtime

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	runc "github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/runtime-spec/specs-go"
	"github.com/skillbuild/skillbuild/config"
	"github.com/skillbuild/skillbuild/runtime/pid1"
)

// The runtimes a run's code can run under (Limits.Runtime, skill.yaml's
// run.runtime).
const (
	// RuntimeRunc runs the code in a container on the host's kernel
	// (runc): the default.
	RuntimeRunc = config.RuntimeRunc
	// RuntimeGVisor runs it under gVisor: runsc as the binary of
	// containerd's runc shim, so the code's system calls reach gVisor's
	// user-space kernel (the sentry), not the host's. The spec is the same
	// hardened one; what runsc needs differently is in gvisorSpecOpts and
	// runscFlags.
	RuntimeGVisor = config.RuntimeGVisor
)

// DefaultRunsc is where Debian's package runsc installs the binary.
const DefaultRunsc = "/usr/bin/runsc"

// runcShim is the containerd shim of both runtimes: runc's, whose
// BinaryName option names runsc for gVisor runs.
const runcShim = "io.containerd.runc.v2"

// runscRoot is runsc's state directory (the shim's Root option): beside
// runc's default /run/containerd/runc, on a tmpfs like it.
const runscRoot = "/run/containerd/runsc"

// runscFlags are the global flags every runsc call of a run gets (through
// the wrapper, see runscWrapper), each because a run needs it:
//
//   - --network=none: the sandbox gets a network stack of gVisor's own
//     with loopback only, nothing of any host namespace (runsc refuses to
//     run in the host's network namespace, and a run has no network
//     anyway). Loopback is up in it: no loopbackUp from the host.
//   - --host-uds=open: the report socket is a host unix socket
//     bind-mounted from the state directory, which runsc refuses to
//     connect to by default.
//   - --oci-seccomp: the spec's seccomp profile (containerd's default,
//     native system call ABI only) is applied by the sentry to the code's
//     system calls; without the flag runsc ignores it. (The sentry itself
//     always runs under gVisor's own seccomp filter on the host.)
var runscFlags = []string{"--network=none", "--host-uds=open", "--oci-seccomp"}

// WithRunsc sets the runsc binary of gVisor runs (RuntimeGVisor). Default:
// DefaultRunsc.
func WithRunsc(path string) Opt {
	return func(o *options) error {
		if !filepath.IsAbs(path) {
			return fmt.Errorf("runsc %q must be an absolute path: %w", path, errdefs.ErrInvalidArgument)
		}
		o.runsc = filepath.Clean(path)
		return nil
	}
}

// checkRuntime checks that the Runner can start containers of runtime
// name (already one of config.Runtimes): runc always; gVisor only with a
// runsc binary, and with cgroups (runsc has no rootless mode here). A
// runtime this host lacks is the request's to change (or the operator's
// to install), not a failure to retry: ErrInvalidArgument, exit code 2.
func (r *Runner) checkRuntime(name string) error {
	if name != RuntimeGVisor {
		return nil
	}
	if r.opts.limitMode != cgroupLimits {
		return fmt.Errorf("runtime %s needs cgroups for the run's limits, which this rootless setup cannot delegate: use runtime %s: %w", RuntimeGVisor, RuntimeRunc, errdefs.ErrInvalidArgument)
	}
	st, err := os.Stat(r.opts.runsc)
	if err != nil || !st.Mode().IsRegular() || st.Mode()&0o111 == 0 {
		return fmt.Errorf("runtime %s needs gVisor's runsc, and there is no program at %s: install it (apt-get install runsc), or run with runtime %s: %w", RuntimeGVisor, r.opts.runsc, RuntimeRunc, errdefs.ErrInvalidArgument)
	}
	return nil
}

// runtimeOf is the containerd runtime (shim and its options) a container
// of the named runtime is created with.
func (r *Runner) runtimeOf(name string) (string, any, error) {
	if name != RuntimeGVisor {
		return r.opts.runtime, nil, nil
	}
	wrapper, err := r.runscWrapper()
	if err != nil {
		return "", nil, err
	}
	return runcShim, &runc.Options{BinaryName: wrapper, Root: runscRoot}, nil
}

// runscWrapper is the program the runc shim runs as its "runc" for gVisor
// runs: a shell script in the state directory that runs runsc with
// runscFlags (the shim's options name a binary, not its arguments). It
// is written once per Runner, and again only when its text changed.
func (r *Runner) runscWrapper() (string, error) {
	r.runscOnce.Do(func() {
		p := filepath.Join(r.opts.stateDir, "images", "runsc")
		text := []byte(fmt.Sprintf("#!/bin/sh\n# skillbuild's gVisor runtime (runtime/gvisor.go): runsc with the flags\n# every run needs. Written by skillbuild; changes are overwritten.\nexec %s %s \"$@\"\n",
			shellQuote(r.opts.runsc), strings.Join(runscFlags, " ")))
		if old, err := os.ReadFile(p); err == nil && bytes.Equal(old, text) {
			r.runscPath = p
			return
		}
		if err := writeFileAtomic(p, text); err != nil {
			r.runscErr = fmt.Errorf("write the gVisor runtime's wrapper: %w", err)
			return
		}
		if err := os.Chmod(p, 0o755); err != nil {
			r.runscErr = fmt.Errorf("write the gVisor runtime's wrapper: %w", err)
			return
		}
		r.runscPath = p
	})
	return r.runscPath, r.runscErr
}

// runscState is what runscWrapper found or wrote, once per Runner.
type runscState struct {
	runscOnce sync.Once
	runscPath string
	runscErr  error
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// ownRootLease bounds how long the lease that holds what a run's root
// filesystem is made of while it is made (a gVisor run's own snapshot, a
// mountpoints layer) keeps it when the process dies before a container
// or a snapshot on top holds it.
const ownRootLease = time.Hour

// holdOwnRoot prepares the root filesystem of a gVisor run: a snapshot of
// the image of this run alone, with an upper directory. runsc's gofer
// makes the mountpoints of the bind mounts (the sandbox files, the init)
// in the root filesystem on the host, which the runs' shared view cannot
// take (it has no upper directory); the spec still mounts the root
// read-only, so the code writes nothing to it. A lease keeps the snapshot
// from containerd's garbage collector until the container holds it; the
// container's removal removes the snapshot (containerDeleteOpts).
func holdOwnRoot(_ context.Context, c *creation) (undo, error) {
	r, s, p := c.r, c.s, c.p
	ls := r.client.LeasesService()
	l, err := ls.Create(c.stepCtx, leases.WithRandomID(), leases.WithExpiration(ownRootLease), leases.WithLabels(map[string]string{LabelRun: "1"}))
	if err != nil {
		return nil, fmt.Errorf("lease for the root filesystem of run %s: %w", s.id, err)
	}
	sn := r.client.SnapshotService(r.opts.snapshotter)
	drop := func(cctx context.Context) error {
		var errs []error
		if err := sn.Remove(cctx, s.id); err != nil && !errdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove the root filesystem of run %s: %w", s.id, err))
		}
		if err := ls.Delete(cctx, l); err != nil && !errdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete the lease of run %s: %w", s.id, err))
		}
		return errors.Join(errs...)
	}
	lctx := leases.WithLease(c.stepCtx, l.ID)
	labels := snapshots.WithLabels(map[string]string{LabelRun: "1"})
	mounts, err := r.onRootParent(lctx, p, func(ctx context.Context, parent string) ([]mount.Mount, error) {
		return sn.Prepare(ctx, s.id, parent, labels)
	})
	if err != nil {
		return drop, fmt.Errorf("root filesystem of image %s: %w", p.req.Image, err)
	}
	s.viewKey, c.mounts = s.id, mounts
	if c.resolvDest, err = imageFileTarget(c.stepCtx, mounts, resolvConfPath); err != nil {
		return drop, fmt.Errorf("image %s: %s: %w", p.req.Image, resolvConfPath, err)
	}
	return drop, nil
}

// gvisorSpecOpts are the changes to a run's spec under gVisor, each
// because runsc needs it (see RuntimeGVisor):
//
//   - The pids limit: the cgroup's pids controller counts the host's
//     processes and threads of the sandbox (the sentry's threads, the
//     gofer, and under the ptrace platform a stub process with threads
//     for every process of the code), not the code's processes, so the
//     limit itself would stop the sandbox from starting. The code's
//     processes are bounded by RLIMIT_NPROC at the limit instead, which
//     the sentry enforces on its own tasks (a sandbox has its own user
//     accounting, and the init is another user, see below), and the
//     cgroup keeps a backstop for the host of gvisorHostPids(limit) host
//     tasks.
//   - The init's user: gVisor does not keep a namespace's init from the
//     signals of its namespace (the code could SIGSTOP it, and the run
//     would then outlive its deadline once the host is gone, or SIGKILL
//     it). The init starts as root with CAP_SETUID, CAP_SETGID and
//     CAP_SETPCAP (to start the runner as the run's user, pid1.UserArg,
//     with an empty bounding set) and CAP_KILL (to kill the code's
//     processes, another user's, at the end) only; the code, another
//     user, then cannot signal it. The
//     code's credentials and capabilities (none) are as under runc. A run
//     as root (the caller insisted) keeps the init as root too, and
//     signalable.
//   - clone3: containerd's profile answers it ENOSYS (so that glibc falls
//     back to clone), but this runsc applies a rule's errno as EPERM,
//     which glibc's pthread_create does not fall back from: no thread
//     could start. The rule lets clone3 through instead, and the sentry,
//     which does not implement it, answers ENOSYS itself.
func gvisorSpecOpts(l Limits) []oci.SpecOpts {
	return []oci.SpecOpts{
		oci.WithPidsLimit(gvisorHostPids(l.Pids)),
		oci.WithRlimit(&specs.POSIXRlimit{Type: "RLIMIT_NPROC", Hard: uint64(l.Pids), Soft: uint64(l.Pids)}),
		withInitAsRoot,
		withClone3ToSentry,
	}
}

// initCaps are the capabilities of a gVisor run's init, which starts as
// root: enough to start the runner as the run's user and to kill the
// code's processes (see gvisorSpecOpts).
var initCaps = []string{"CAP_KILL", "CAP_SETGID", "CAP_SETPCAP", "CAP_SETUID"}

// withInitAsRoot makes the init start as root with initCaps and start
// the runner as the process's user (see gvisorSpecOpts). It comes after
// the user, the capabilities and the init are in the spec.
func withInitAsRoot(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
	if s.Process == nil || s.Process.User.UID == 0 {
		return nil // root already: nothing to switch
	}
	sep := -1
	for i, a := range s.Process.Args {
		if a == pid1.Path {
			sep = slices.Index(s.Process.Args[i:], "--")
			if sep >= 0 {
				sep += i
			}
			break
		}
	}
	if sep < 0 {
		return fmt.Errorf("no init in the process's arguments: %w", errdefs.ErrInvalidArgument)
	}
	u := s.Process.User
	s.Process.Args = slices.Insert(s.Process.Args, sep, pid1.UserArg(u.UID, u.GID))
	s.Process.User = specs.User{UID: 0, GID: 0, AdditionalGids: []uint32{0}}
	s.Process.Capabilities = &specs.LinuxCapabilities{
		Bounding:    slices.Clone(initCaps),
		Effective:   slices.Clone(initCaps),
		Permitted:   slices.Clone(initCaps),
		Inheritable: []string{},
		Ambient:     []string{},
	}
	return nil
}

// withClone3ToSentry turns the seccomp profile's clone3 rule (ENOSYS)
// into an allow: see gvisorSpecOpts.
func withClone3ToSentry(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
	if s.Linux == nil || s.Linux.Seccomp == nil {
		return nil
	}
	for i, sc := range s.Linux.Seccomp.Syscalls {
		if slices.Equal(sc.Names, []string{"clone3"}) && sc.Action == specs.ActErrno {
			s.Linux.Seccomp.Syscalls[i] = specs.LinuxSyscall{Names: sc.Names, Action: specs.ActAllow}
		}
	}
	return nil
}

// gvisorHostPids is the cgroup pids limit of a gVisor sandbox whose code
// may have pids processes: the sentry's threads (tens), the gofer's, and
// per process of the code a stub process with some threads (ptrace
// platform). Past it the sentry cannot start the code's next process and
// the whole sandbox ends: the host's backstop, not the code's limit.
func gvisorHostPids(pids int64) int64 { return 1024 + 16*pids }
