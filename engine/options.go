package engine

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/containerd/errdefs"
	resolverconfig "github.com/moby/buildkit/util/resolver/config"
	"github.com/skillbuild/skillbuild/config"
)

type options struct {
	address      string
	namespace    string
	root         string
	snapshotter  string
	cgroupParent string
	lockTimeout  time.Duration
	onLockWait   func()
	// registries and dockerConfigDir: see WithRegistries and
	// WithDockerConfigDir.
	registries      map[string]resolverconfig.RegistryConfig
	dockerConfigDir string
}

func defaultOptions() options {
	return options{
		address:     config.DefaultAddress,
		namespace:   config.DefaultNamespace,
		root:        config.DefaultRoot,
		snapshotter: "overlayfs",
		lockTimeout: 10 * time.Minute,
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
