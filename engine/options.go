package engine

import (
	"fmt"
	ctd "github.com/containerd/containerd/v2/client"
	"path/filepath"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	resolverconfig "github.com/moby/buildkit/util/resolver/config"
	"github.com/skillbuild/skillbuild/config"
)

type options struct {
	client       *ctd.Client // given by WithContainerd; not closed by the engine
	address      string
	namespace    string
	root         string
	snapshotter  string
	cgroupParent string
	cgroupBase   string
	noCgroups    bool
	tmpDir       string
	lockTimeout  time.Duration
	onLockWait   func()
	// builder, tls and base are where builds run and where their base
	// image comes from (see remote.go, ociworker.go, basesource.go).
	builder string
	tls     builderTLS
	base    baseSource
	// registries and dockerConfigDir: see WithRegistries and
	// WithDockerConfigDir.
	registries      map[string]resolverconfig.RegistryConfig
	dockerConfigDir string
	// resolver is the resolver of a skill that does not choose one
	// (config.Skill.Resolver): see WithResolver.
	resolver string
}

func defaultOptions() options {
	return options{
		address:     config.DefaultAddress,
		namespace:   config.DefaultNamespace,
		root:        config.DefaultRoot,
		snapshotter: "overlayfs",
		builder:     BuilderEmbedded,
		lockTimeout: 10 * time.Minute,
		resolver:    config.ResolverAuto,
	}
}

// WithResolver sets how builds resolve requirements when the skill does
// not say (config.Skill.Resolver): config.ResolverAuto (the default: the
// builtin resolver, pip in the base image when it cannot),
// config.ResolverPip or config.ResolverBuiltin.
func WithResolver(mode string) Opt {
	return func(o *options) error {
		if err := config.ValidateResolver(mode); err != nil {
			return fmt.Errorf("%w: %w", err, errdefs.ErrInvalidArgument)
		}
		o.resolver = mode
		return nil
	}
}

// Opt configures an Engine.
type Opt func(*options) error

// WithAddress sets the containerd socket path.
func WithAddress(addr string) Opt {
	return func(o *options) error {
		if addr == "" {
			return fmt.Errorf("containerd address is empty: %w", errdefs.ErrInvalidArgument)
		}
		o.address = addr
		return nil
	}
}

// WithContainerd makes the engine use c (in the configured namespace)
// instead of dialling containerd itself; the engine does not close it.
func WithContainerd(c *ctd.Client) Opt {
	return func(o *options) error {
		if c == nil {
			return fmt.Errorf("containerd client is nil: %w", errdefs.ErrInvalidArgument)
		}
		o.client = c
		return nil
	}
}

// WithNamespace sets the containerd namespace images and snapshots live in.
func WithNamespace(ns string) Opt {
	return func(o *options) error {
		if ns == "" {
			return fmt.Errorf("containerd namespace is empty: %w", errdefs.ErrInvalidArgument)
		}
		o.namespace = ns
		return nil
	}
}

// WithRoot sets skillbuild's state directory (build cache, lock).
func WithRoot(root string) Opt {
	return func(o *options) error {
		if root == "" {
			return fmt.Errorf("state root is empty: %w", errdefs.ErrInvalidArgument)
		}
		abs, err := filepath.Abs(root)
		if err != nil {
			return fmt.Errorf("state root %q: %w", root, errdefs.ErrInvalidArgument)
		}
		o.root = abs
		return nil
	}
}

// WithSnapshotter sets the containerd snapshotter (default overlayfs).
func WithSnapshotter(name string) Opt {
	return func(o *options) error {
		if name == "" {
			return fmt.Errorf("snapshotter is empty: %w", errdefs.ErrInvalidArgument)
		}
		o.snapshotter = name
		return nil
	}
}

// WithCgroupParent puts every build step under this cgroup parent.
func WithCgroupParent(p string) Opt {
	return func(o *options) error { o.cgroupParent = p; return nil }
}

// WithCgroupBase creates the build's cgroup below base (relative to each
// hierarchy's root): a subtree delegated to a rootless user.
func WithCgroupBase(base string) Opt {
	return func(o *options) error {
		if !strings.HasPrefix(base, "/") {
			return fmt.Errorf("cgroup base %q must start with /: %w", base, errdefs.ErrInvalidArgument)
		}
		o.cgroupBase = base
		return nil
	}
}

// WithRlimitLimits builds without any cgroup, for a rootless containerd
// without cgroup delegation (where runc can create none): steps get
// BuildKit's rootless spec, memory and CPU limits become rlimits of each
// process, and the process limit is not enforced. Result.LimitsEnforced
// says so.
func WithRlimitLimits() Opt {
	return func(o *options) error {
		o.noCgroups = true
		return nil
	}
}

// WithTempDir sets where BuildKit makes its per-step temporary directories
// (the forwarded index socket among them), emptied at start and close.
// Unix socket paths are limited to 108 bytes, so it must be short; only
// one engine may use it at a time. Default: ROOT/tmp.
func WithTempDir(dir string) Opt {
	return func(o *options) error {
		if !filepath.IsAbs(dir) {
			return fmt.Errorf("temporary directory %q must be absolute: %w", dir, errdefs.ErrInvalidArgument)
		}
		o.tmpDir = dir
		return nil
	}
}

// bkSocketSuffix is what BuildKit appends to its temporary directory for
// a forwarded socket (.buildkit-ssh-sockNNNNNNNNNN/ssh_auth_sock).
const bkSocketSuffix = "/.buildkit-ssh-sock0123456789/ssh_auth_sock"

// maxSocketPath is the longest unix socket path Linux binds (108 bytes
// with the terminating NUL).
const maxSocketPath = 107

// checkSocketDir refuses a temporary directory whose forwarded sockets
// could not be bound (bind fails with a bare EINVAL mid-build otherwise).
func checkSocketDir(dir string) error {
	if n := len(dir) + len(bkSocketSuffix); n > maxSocketPath {
		return fmt.Errorf("build temporary directory %s is %d bytes too long for the unix sockets BuildKit makes in it: use a shorter --root (or, rootless, a shorter XDG_RUNTIME_DIR): %w", dir, n-maxSocketPath, errdefs.ErrInvalidArgument)
	}
	return nil
}

// WithLockWait bounds how long New waits for another skillbuild process
// using the same root, and calls onWait once if it has to wait.
func WithLockWait(timeout time.Duration, onWait func()) Opt {
	return func(o *options) error {
		if timeout < 0 {
			return fmt.Errorf("lock timeout %s is negative: %w", timeout, errdefs.ErrInvalidArgument)
		}
		o.lockTimeout = timeout
		o.onLockWait = onWait
		return nil
	}
}
