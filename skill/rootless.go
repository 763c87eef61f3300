package skill

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/opencontainers/go-digest"
	"github.com/skillbuild/skillbuild/engine"
	"github.com/skillbuild/skillbuild/rootless"
	"github.com/skillbuild/skillbuild/runtime"
)

// Rootless describes an ordinary user's rootless instance, which the
// service then uses: where its sockets live and how limits are held.
type Rootless struct {
	// UID is the user's uid on the host; User its name, for hints.
	UID  int
	User string
	// Paths are the instance's files and directories.
	Paths rootless.Paths
	// Limits says whether a cgroup subtree is delegated to the user.
	Limits rootless.LimitMode
}

// engineRootlessOpts place the build's limits: rootless, in the user's
// delegated cgroup (a cgroup v1 subtree; on cgroup v2 the user unit's
// cgroup or root's subtree, with the daemon, whose shims start the steps,
// inside), or as rlimits when there is none. BuildKit's socket
// directories go under the runtime directory: a home directory's data path
// can be too long for a unix socket.
func (s *Service) engineRootlessOpts() []engine.Opt {
	m := s.opts.rootless
	if m == nil {
		return nil
	}
	tmp := filepath.Join(m.Paths.Run, "t-"+digest.FromString(s.opts.root).Encoded()[:8])
	opts := []engine.Opt{engine.WithTempDir(tmp)}
	if m.Limits.Cgroups {
		return append(opts, engine.WithCgroupBase(m.Limits.Parent))
	}
	return append(opts, engine.WithRlimitLimits())
}

// runtimeModeOpts place a run's limits likewise. Rootless runs take their
// own uid from the user's subordinate ids that the user namespace maps
// (rootless.RunUIDRange; root's range, runtime.RunUIDBase and up, lies
// outside it), and share one only when the namespace maps too few.
// requireLimits refuses a run whose limits rlimits would hold.
func (s *Service) runtimeModeOpts(requireLimits bool) []runtime.Opt {
	m := s.opts.rootless
	if m == nil {
		return nil
	}
	var opts []runtime.Opt
	if base, n, err := rootless.RunUIDRange(); err == nil && n > 0 {
		opts = append(opts, runtime.WithRunUIDRange(base, n))
	} else {
		opts = append(opts, runtime.WithSharedUID())
	}
	if m.Limits.Cgroups {
		return append(opts, runtime.WithCgroupParent(m.Limits.Parent))
	}
	opts = append(opts, runtime.WithRlimitLimits())
	if requireLimits {
		opts = append(opts, runtime.WithRequireCgroups())
	}
	return opts
}

// limitsRefused explains a run refused for want of cgroup limits and says
// how to get them.
func (s *Service) limitsRefused(err error) error {
	user, limits := "", rootless.LimitMode{}
	if m := s.opts.rootless; m != nil {
		user, limits = m.User, m.Limits
	}
	return fmt.Errorf("run refused: its memory, CPU and process limits cannot be held by cgroups for %s: %s. "+
		"To enforce them, %s; "+
		"or pass --require-limits=false to accept per-process rlimits (RLIMIT_AS, RLIMIT_CPU, RLIMIT_NPROC; reported in limits_enforced): %w",
		user, limits.Reason, rootless.LimitsFix(limits, user), err)
}

// limitsWarning says which build limits cgroups do not hold ("" when they
// hold all).
func limitsWarning(enforced map[string]string) string {
	var weak []string
	for _, l := range []string{"memory", "cpus", "pids"} {
		switch enforced[l] {
		case "cgroup", "":
		case "none":
			weak = append(weak, l+" not enforced")
		default:
			weak = append(weak, l+" by "+enforced[l]+" per process")
		}
	}
	if len(weak) == 0 {
		return ""
	}
	return "build limits without cgroups (rootless, no delegated cgroup): " + strings.Join(weak, ", ") +
		"; a delegated cgroup holds them all: as root `skillbuild rootless setup --user USER` (cgroup v1, or v2 without systemd), or the user's systemd unit (cgroup v2 with systemd; `skillbuild rootless setup` says how)"
}
