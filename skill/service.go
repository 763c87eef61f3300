package skill

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"time"

	ctd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
	"github.com/skillbuild/skillbuild/config"
	"github.com/skillbuild/skillbuild/runtime"
	"github.com/skillbuild/skillbuild/signature"
	"github.com/skillbuild/skillbuild/skill/api"
	"github.com/skillbuild/skillbuild/store"
)

// snapshotter is the containerd snapshotter skillbuild unpacks images for.
const snapshotter = "overlayfs"

// Service runs skillbuild's operations. Create it with New and Close it
// when done. It is safe for concurrent use.
type Service struct {
	opts options

	mu     sync.Mutex
	client *ctd.Client
	// swept is closed once the sweep of the first connection ended.
	swept chan struct{}

	// runner and pool run code for a server (WithWarmPool); a command
	// makes a runner per run.
	runner *runtime.Runner
	warm   *runtime.Pool

	preloads preloadCache

	// The state root's build key (buildKey) and the admission decisions.
	keyOnce  sync.Once
	key      []byte
	keyErr   error
	admitted admission

	sessions sessionTable
}

type options struct {
	address, namespace, root string
	log                      io.Writer
	debug                    bool
	builder                  Builder
	registry                 Registry
	rootless                 *Rootless
	warm                     *WarmPool
	face                     api.Face
	ceilings                 *Ceilings
	runPolicy                *config.Policy
	trusted                  *signature.KeySet
	sessions                 *Sessions
}

// Opt configures a Service.
type Opt func(*options) error

// WithContainerd sets containerd's socket and the namespace skillbuild
// keeps its images, containers and snapshots in.
func WithContainerd(address, namespace string) Opt {
	return func(o *options) error {
		if address == "" || namespace == "" {
			return fmt.Errorf("containerd address and namespace must not be empty: %w", errdefs.ErrInvalidArgument)
		}
		o.address, o.namespace = address, namespace
		return nil
	}
}

// WithRoot sets skillbuild's state directory (build cache, runs, the
// vulnerability database).
func WithRoot(dir string) Opt {
	return func(o *options) error {
		if dir == "" {
			return fmt.Errorf("state root must not be empty: %w", errdefs.ErrInvalidArgument)
		}
		o.root = dir
		return nil
	}
}

// WithLog sends warnings and notes (a wait for the state lock, a skipped
// scan, a pull) to w. Default: discarded.
func WithLog(w io.Writer) Opt {
	return func(o *options) error {
		if w == nil {
			w = io.Discard
		}
		o.log = w
		return nil
	}
}

// WithDebug adds notes about why a build resolved or reused what it did,
// and a run's step timings, to the log.
func WithDebug(on bool) Opt {
	return func(o *options) error {
		o.debug = on
		return nil
	}
}

// WithBuilder sets where builds run. Default: the embedded builder.
func WithBuilder(b Builder) Opt {
	return func(o *options) error {
		if b.BaseArchive != "" && b.BaseLayout != "" {
			return fmt.Errorf("--base-archive and --base-layout both name a base; give one: %w", errdefs.ErrInvalidArgument)
		}
		o.builder = b
		return nil
	}
}

// WithRegistry sets how registries are reached (credentials, CAs, plain
// HTTP hosts).
func WithRegistry(r Registry) Opt {
	return func(o *options) error {
		o.registry = r
		return nil
	}
}

// WithRootless makes the service use an ordinary user's rootless
// containerd: limits in the user's delegated cgroups, or rlimits.
func WithRootless(r Rootless) Opt {
	return func(o *options) error {
		o.rootless = &r
		return nil
	}
}

// WithWarmPool makes runs take containers started ahead of time (a
// server's mode); without it every run starts its own.
func WithWarmPool(p WarmPool) Opt {
	return func(o *options) error {
		if err := p.Check(); err != nil {
			return err
		}
		o.warm = &p
		return nil
	}
}

// WithRunPolicy is the vulnerability policy runs of images from elsewhere
// are admitted under (a server's; the command line takes a run's from its
// flags and skill.yaml).
func WithRunPolicy(p config.Policy) Opt {
	return func(o *options) error {
		o.runPolicy = &p
		return nil
	}
}

// New returns a service. It connects to nothing until an operation needs
// it, so bad input fails before containerd or BuildKit are touched.
func New(opts ...Opt) (*Service, error) {
	o := options{address: config.DefaultAddress, namespace: config.DefaultNamespace, root: config.DefaultRoot, log: io.Discard}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	return &Service{opts: o}, nil
}

// Close ends the sessions, waits for the sweep of dead runs to end,
// removes the warm containers of a pool (bounded by ctx) and closes the
// containerd connection.
func (s *Service) Close(ctx context.Context) error {
	err := s.closeSessions(ctx)
	s.mu.Lock()
	pool, client, swept := s.warm, s.client, s.swept
	s.warm, s.client = nil, nil
	s.mu.Unlock()
	if pool != nil {
		err = errors.Join(err, pool.Close(ctx))
	}
	if swept != nil {
		<-swept
	}
	if client != nil {
		client.Close()
	}
	return err
}

// sweepMode says whether the first connection's sweep of dead runs must
// end before the caller goes on.
type sweepMode int

const (
	sweepFirst sweepMode = iota // before the operation (it may touch what a dead run held)
	sweepAside                  // beside it (a run never touches another's leftovers)
	sweepNone                   // not now: the operation reads or writes images only
)

// containerd is the service's one client, dialled on first use; the first
// dial sweeps away what dead runs left behind (sweepRuns).
func (s *Service) containerd(ctx context.Context, mode sweepMode) (*ctd.Client, error) {
	s.mu.Lock()
	if s.client == nil {
		c, err := store.Dial(ctx, s.opts.address, s.opts.namespace)
		if err != nil {
			s.mu.Unlock()
			return nil, err
		}
		s.client = c
	}
	c, swept := s.client, s.swept
	if mode == sweepNone {
		s.mu.Unlock()
		return c, nil
	}
	if swept == nil {
		swept = make(chan struct{})
		s.swept = swept
		s.mu.Unlock()
		sweep := func() {
			defer close(swept)
			s.sweepRuns(ctx, c)
		}
		if mode == sweepAside {
			go sweep()
			return c, nil
		}
		sweep()
		return c, nil
	}
	s.mu.Unlock()
	if mode == sweepFirst {
		<-swept
	}
	return c, nil
}

// viewSweepEvery is how often the sweep of every command walks
// containerd's snapshots when no dead run of its root showed (a walk costs
// containerd a look at every snapshot of the namespace, and a command runs
// per tool call). The list of every run container (each with its spec,
// live runs' and serve's warm ones included) is taken as seldom: in
// between, the runs of the root whose process died are found from the
// root itself.
const viewSweepEvery = time.Minute

// sweepRuns removes the containers, views and state of runs whose
// skillbuild process died (at once for runs of this root; by their
// deadline, when their init killed their processes already, for others):
// the state directories of the root, a filtered list of containers when
// viewSweepEvery passed, and of snapshots when a dead run showed or
// viewSweepEvery passed. A failure is a warning: it must not stop an
// unrelated operation.
func (s *Service) sweepRuns(ctx context.Context, client *ctd.Client) {
	opts := append([]runtime.Opt{runtime.WithStateDir(s.runsDir()), runtime.WithoutSweep(),
		runtime.WithViewSweepEvery(viewSweepEvery), runtime.WithContainerSweepEvery(viewSweepEvery)}, s.runtimeModeOpts(false)...)
	r, err := runtime.New(ctx, client, opts...)
	if err == nil {
		_, err = r.Sweep(ctx)
	}
	if err != nil {
		fmt.Fprintln(s.opts.log, "skillbuild: warning: sweeping orphaned runs:", err)
	}
}

// runsDir is the state directory of runs under the root.
func (s *Service) runsDir() string { return filepath.Join(s.opts.root, "runs") }

// Address is the containerd socket the service talks to.
func (s *Service) Address() string { return s.opts.address }

// DaemonVersion asks containerd for its version.
func (s *Service) DaemonVersion(ctx context.Context) (version, revision string, err error) {
	c, err := store.Dial(ctx, s.opts.address, s.opts.namespace)
	if err != nil {
		return "", "", err
	}
	defer c.Close()
	v, err := c.Version(ctx)
	return v.Version, v.Revision, err
}
