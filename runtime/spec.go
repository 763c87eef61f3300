package runtime

import (
	"context"
	"fmt"
	"path"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/contrib/seccomp"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/runtime-spec/specs-go"
	"github.com/skillbuild/skillbuild/runtime/pid1"
)

// Paths inside the sandbox.
const (
	// SandboxDir is where the runner, the code and the report FIFO are
	// mounted (read-only) inside the container. It lives on the /run tmpfs
	// of containerd's default mounts, so the read-only image needs no
	// mountpoint of its own.
	SandboxDir = "/run/skillbuild"
	runnerName = "runner.py"
	codeName   = "code.py"
	reportName = "report"
	// HomeDir is $HOME inside the sandbox: the only writable directory.
	HomeDir = "/tmp"
)

// DefaultUID and DefaultGID are the user a run gets when the image names no
// USER, or names root and the caller did not insist on root.
const (
	DefaultUID = 65532
	DefaultGID = 65532
)

// nofileLimit is RLIMIT_NOFILE inside the sandbox.
const nofileLimit = 1024

// specPlan is everything the spec of one run depends on.
type specPlan struct {
	limits     Limits
	env        []string // the image's environment
	cwd        string   // the image's working directory
	imageUser  string   // the image's USER ("" when unset)
	user       string   // the caller's explicit user ("" to use the image's)
	sandboxDir string   // host directory mounted at SandboxDir
	inDir      string   // host directory mounted at InDir
	hostname   string
	init       initBinary  // PID 1, holding the deadline
	runUID     uint32      // the run's own uid (and gid) in place of DefaultUID; 0: none
	resolvConf string      // host file mounted over the image's resolv.conf; "": none
	resolvDest string      // where: the image's resolv.conf or its link's target; "": none
	userOut    *specs.User // if set, receives the process's user
	cgroupOut  *string     // if set, receives the container's cgroup path
	// warm, when positive, makes the init wait up to that long for its
	// job (and the job's timeout) on stdin: a warm container of a Pool.
	warm time.Duration
	// preload are modules the runner imports before it reads its job.
	preload []string
	// limitMode and cgroupParent say where the limits live (see
	// WithRlimitLimits, WithCgroupParent).
	limitMode    limitMode
	cgroupParent string
}

// specOpts is the hardened spec of a run, applied in order on containerd's
// default spec (namespaces pid, ipc, uts, mount and network; default
// mounts, masked and read-only paths; no devices).
func specOpts(p specPlan) []oci.SpecOpts {
	// The runner reports to the init's socket; the init alone holds the
	// report FIFO (see pid1.Args).
	argv := []string{"python3", "-B", path.Join(SandboxDir, runnerName), path.Join(SandboxDir, codeName), pid1.ReportSocket}
	if p.limitMode == rlimitLimits {
		// The runner sets RLIMIT_AS itself: runc applies rlimits before
		// it loads seccomp, and its Go init fails under one.
		argv = append(argv, rlimitASFlag+strconv.FormatInt(p.limits.MemoryBytes, 10))
	}
	argv = append(argv, p.preload...)
	opts := []oci.SpecOpts{
		// What runs: the runner under the image's python3, in the image's
		// environment and working directory; nothing of the host's
		// environment comes in.
		oci.WithProcessArgs(argv...),
		WithImageEnv(p.env),
		oci.WithEnv([]string{"HOME=" + HomeDir}),
		oci.WithProcessCwd(orDefault(p.cwd, "/")),
		oci.WithHostname(p.hostname),

		// Who: the image's USER, never root unless the caller says so; a
		// uid of the run's own in place of the shared default.
		WithRunUser(p.imageUser, p.user),
		withOwnUID(p.runUID, p.user),
		recordUser(p.userOut),

		// Filesystem: the image read-only, a capped tmpfs for /tmp and
		// /dev/shm (nothing executable on either), the sandbox files
		// read-only, no resolv.conf of the host that made the image.
		oci.WithRootFSReadonly(),
		WithTmpfs(HomeDir, p.limits.TmpfsBytes),
		oci.WithDevShmSize(p.limits.TmpfsBytes / 1024),
		WithSandboxMount(p.sandboxDir),
		withResolvConf(p.resolvConf, p.resolvDest),
		WithDataMounts(p.inDir, outTmpfsSize(p.limits)),

		// PID 1 is skillbuild's init, the runner its child: the deadline
		// holds inside the container even if the skillbuild process dies.
		withInit(p.init, p.limits.Timeout, p.warm),

		// Resources.
		WithMemory(p.limits.MemoryBytes),
		WithCPUQuota(p.limits.CPUs),
		oci.WithPidsLimit(p.limits.Pids),
		oci.WithRlimit(&specs.POSIXRlimit{Type: "RLIMIT_NOFILE", Hard: nofileLimit, Soft: nofileLimit}),
		oci.WithRlimit(&specs.POSIXRlimit{Type: "RLIMIT_FSIZE", Hard: fsizeLimit(p.limits), Soft: fsizeLimit(p.limits)}),
		oci.WithRlimit(&specs.POSIXRlimit{Type: "RLIMIT_CORE", Hard: 0, Soft: 0}),

		// Privileges: none. The seccomp profile is computed from the
		// capabilities, so it must come after them.
		oci.WithNoNewPrivileges,
		WithoutCapabilities(),
		seccomp.WithDefaultProfile(),
		WithNativeSeccompArch(),
		WithMaskedPaths("/proc/interrupts", "/proc/kcore"),

		// Network: a fresh namespace of its own (loopback only), never the
		// host's.
		WithPrivateNetwork(),
	}
	// What runsc needs differently (see gvisorSpecOpts).
	if p.limits.Runtime == RuntimeGVisor {
		opts = append(opts, gvisorSpecOpts(p.limits)...)
	}
	// Where the limits live: a delegated cgroup subtree, or (rootless
	// without delegation) no cgroup at all and rlimits in its place.
	switch {
	case p.limitMode == rlimitLimits:
		opts = append(opts, WithRlimitsInsteadOfCgroups(p.limits))
	case p.cgroupParent != "":
		opts = append(opts, WithCgroupsPathUnder(p.cgroupParent))
	}
	return append(opts, recordCgroupsPath(p.cgroupOut))
}

// rlimitASFlag passes the runner the RLIMIT_AS it sets on itself (a module
// name of the preload list never starts with a dash).
const rlimitASFlag = "--rlimit-as="

// fsizeLimit is RLIMIT_FSIZE: a little above the tmpfs size, so that a
// full /tmp reports ENOSPC rather than EFBIG.
func fsizeLimit(l Limits) uint64 { return uint64(l.TmpfsBytes) + 1<<20 }

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// WithImageEnv sets the process environment to the image's, keeping
// containerd's default PATH when the image has none. It replaces whatever
// environment the spec had.
func WithImageEnv(env []string) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if s.Process == nil {
			s.Process = &specs.Process{}
		}
		out := []string{}
		hasPath := false
		for _, e := range env {
			if strings.HasPrefix(e, "PATH=") {
				hasPath = true
			}
			out = append(out, e)
		}
		if !hasPath {
			out = append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, out...)
		}
		s.Process.Env = out
		return nil
	}
}

// WithRunUser sets the user of the process. An explicit user (uid[:gid] or
// a name from the image's /etc/passwd) is used as given, root included: the
// caller insisted. Otherwise the image's USER is used, except that an image
// without USER, or with a USER resolving to uid 0, runs as
// DefaultUID:DefaultGID. Supplementary groups are never added: the process
// has its primary group only.
func WithRunUser(imageUser, explicit string) oci.SpecOpts {
	return func(ctx context.Context, client oci.Client, c *containers.Container, s *oci.Spec) error {
		if s.Process == nil {
			s.Process = &specs.Process{}
		}
		user := explicit
		if user == "" {
			user = imageUser
		}
		if user == "" {
			s.Process.User = specs.User{UID: DefaultUID, GID: DefaultGID, AdditionalGids: []uint32{DefaultGID}}
			return nil
		}
		if err := oci.WithUser(user)(ctx, client, c, s); err != nil {
			return fmt.Errorf("user %q: %w", user, err)
		}
		if explicit == "" && s.Process.User.UID == 0 {
			s.Process.User = specs.User{UID: DefaultUID, GID: DefaultGID}
		}
		s.Process.User.AdditionalGids = []uint32{s.Process.User.GID}
		return nil
	}
}

// withOwnUID gives the process uid:uid (and only that group) in place of
// DefaultUID:DefaultGID, unless the caller named the user explicitly or
// uid is 0.
func withOwnUID(uid uint32, explicit string) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if uid == 0 || explicit != "" || s.Process == nil {
			return nil
		}
		if u := s.Process.User; u.UID == DefaultUID && u.GID == DefaultGID {
			s.Process.User = specs.User{UID: uid, GID: uid, AdditionalGids: []uint32{uid}}
		}
		return nil
	}
}

// recordUser copies the process's user, as the spec has it so far, to out
// (if not nil).
func recordUser(out *specs.User) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if out != nil && s.Process != nil {
			*out = s.Process.User
		}
		return nil
	}
}

// WithTmpfs mounts a tmpfs of size bytes at dest (nosuid, nodev, noexec,
// mode 1777), replacing any mount at dest.
func WithTmpfs(dest string, size int64) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if size <= 0 {
			return fmt.Errorf("tmpfs %s: size must be positive, got %d: %w", dest, size, errdefs.ErrInvalidArgument)
		}
		m := specs.Mount{
			Destination: dest,
			Type:        "tmpfs",
			Source:      "tmpfs",
			Options:     []string{"nosuid", "nodev", "noexec", "mode=1777", fmt.Sprintf("size=%d", size)},
		}
		replaceMount(s, m)
		return nil
	}
}

// replaceMount adds m to the spec's mounts, in place of any mount at its
// destination.
func replaceMount(s *oci.Spec, m specs.Mount) {
	s.Mounts = slices.DeleteFunc(s.Mounts, func(o specs.Mount) bool { return path.Clean(o.Destination) == path.Clean(m.Destination) })
	s.Mounts = append(s.Mounts, m)
}

// readOnlyBind is a read-only bind mount of the host path src at dest
// that executes nothing.
func readOnlyBind(src, dest string) specs.Mount {
	return specs.Mount{Destination: dest, Type: "bind", Source: src, Options: []string{"rbind", "ro", "nosuid", "nodev", "noexec"}}
}

// WithSandboxMount bind-mounts the host directory dir read-only (nosuid,
// nodev, noexec) at SandboxDir. The mount comes after /run's, so runc
// creates its mountpoint on that tmpfs rather than in the read-only image.
func WithSandboxMount(dir string) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if dir == "" {
			return fmt.Errorf("sandbox directory is empty: %w", errdefs.ErrInvalidArgument)
		}
		replaceMount(s, readOnlyBind(dir, SandboxDir))
		return nil
	}
}

// WithMemory limits memory to limit bytes, with memory+swap equal to it
// (no swap).
func WithMemory(limit int64) oci.SpecOpts {
	return func(ctx context.Context, client oci.Client, c *containers.Container, s *oci.Spec) error {
		if limit <= 0 {
			return fmt.Errorf("memory limit must be positive, got %d: %w", limit, errdefs.ErrInvalidArgument)
		}
		if err := oci.WithMemoryLimit(uint64(limit))(ctx, client, c, s); err != nil {
			return err
		}
		return oci.WithMemorySwap(limit)(ctx, client, c, s)
	}
}

// cfsPeriod is the CFS period, in microseconds, of the CPU quota.
const cfsPeriod = 100000

// WithCPUQuota limits the process to cpus CPUs through a CFS quota.
func WithCPUQuota(cpus float64) oci.SpecOpts {
	return func(ctx context.Context, client oci.Client, c *containers.Container, s *oci.Spec) error {
		if cpus <= 0 {
			return fmt.Errorf("cpus must be positive, got %g: %w", cpus, errdefs.ErrInvalidArgument)
		}
		quota := int64(cpus * cfsPeriod)
		if quota < 1000 {
			quota = 1000 // the kernel's minimum quota is 1ms
		}
		return oci.WithCPUCFS(quota, cfsPeriod)(ctx, client, c, s)
	}
}

// WithoutCapabilities drops every capability from every set (bounding,
// effective, permitted, inheritable, ambient).
func WithoutCapabilities() oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if s.Process == nil {
			s.Process = &specs.Process{}
		}
		s.Process.Capabilities = &specs.LinuxCapabilities{
			Bounding:    []string{},
			Effective:   []string{},
			Permitted:   []string{},
			Inheritable: []string{},
			Ambient:     []string{},
		}
		return nil
	}
}

// WithMaskedPaths adds paths to the spec's masked paths (containerd's
// defaults stay).
func WithMaskedPaths(paths ...string) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if s.Linux == nil {
			s.Linux = &specs.Linux{}
		}
		for _, p := range paths {
			if !slices.Contains(s.Linux.MaskedPaths, p) {
				s.Linux.MaskedPaths = append(s.Linux.MaskedPaths, p)
			}
		}
		return nil
	}
}

// WithPrivateNetwork gives the container a new, empty network namespace
// (only a loopback device): any path to an existing namespace, the host's
// included, is dropped.
func WithPrivateNetwork() oci.SpecOpts {
	return oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.NetworkNamespace})
}

// nativeSeccompArch is the seccomp architecture of the host's own system
// call ABI, by GOARCH.
var nativeSeccompArch = map[string]specs.Arch{
	"amd64":   specs.ArchX86_64,
	"arm64":   specs.ArchAARCH64,
	"ppc64le": specs.ArchPPC64LE,
	"s390x":   specs.ArchS390X,
	"riscv64": specs.ArchRISCV64,
}

// WithNativeSeccompArch limits the seccomp profile to the host's own
// system call ABI: containerd's default also lists the 32-bit ones
// (i386 and x32 next to x86_64), which no skill needs; a system call made
// through them is then refused as from an unknown architecture rather than
// checked against the allowlist. Each listed architecture is compiled into
// the filter at every container start (runc, libseccomp): with one
// instead of three, that costs about a third.
func WithNativeSeccompArch() oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		native, ok := nativeSeccompArch[goruntime.GOARCH]
		if !ok || s.Linux == nil || s.Linux.Seccomp == nil || !slices.Contains(s.Linux.Seccomp.Architectures, native) {
			return nil // nothing known to narrow
		}
		s.Linux.Seccomp.Architectures = []specs.Arch{native}
		return nil
	}
}
