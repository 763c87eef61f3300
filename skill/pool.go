package skill

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	"github.com/skillbuild/skillbuild/config"
	"github.com/skillbuild/skillbuild/labels"
	"github.com/skillbuild/skillbuild/runtime"
	"github.com/skillbuild/skillbuild/skill/api"
)

// WarmPool sizes the containers a server starts ahead of its runs.
type WarmPool struct {
	// MaxWarm bounds the warm containers of all images together (0: none).
	MaxWarm int
	// PerImage is how many are kept per image and limits.
	PerImage int
	// MemoryBudget bounds the sum of their memory limits (0: no bound).
	MemoryBudget int64
	// IdleTimeout destroys an image's warm containers after this long
	// without a run.
	IdleTimeout time.Duration
}

// Check refuses sizes the pool cannot take (negative counts, a zero idle
// timeout...).
func (p WarmPool) Check() error { return runtime.CheckPoolOpts(p.poolOpts()...) }

func (p WarmPool) poolOpts() []runtime.PoolOpt {
	opts := []runtime.PoolOpt{runtime.WithMaxWarm(p.MaxWarm), runtime.WithIdleTimeout(p.IdleTimeout), runtime.WithWarmPerImage(p.PerImage)}
	if p.MemoryBudget != 0 {
		opts = append(opts, runtime.WithMemoryBudget(p.MemoryBudget))
	}
	return opts
}

// StartPool connects to containerd and starts the warm pool of
// WithWarmPool: from then on runs take warm containers. Close removes them.
func (s *Service) StartPool(ctx context.Context) error {
	if s.opts.warm == nil {
		return fmt.Errorf("no warm pool configured: %w", errdefs.ErrFailedPrecondition)
	}
	client, err := s.containerd(ctx, sweepFirst)
	if err != nil {
		return err
	}
	// Rootless without delegated cgroups, runs are refused: a server does
	// not accept per-process rlimits for its callers.
	policy, err := s.serverPolicy()
	if err != nil {
		return err
	}
	admit := runtime.WithAdmission(s.admitter(client, admitOpts{policy: policy}))
	ropts := append([]runtime.Opt{runtime.WithStateDir(s.runsDir()), runtime.WithoutSweep(), admit}, s.runtimeModeOpts(true)...)
	runner, err := runtime.New(ctx, client, ropts...)
	if err != nil {
		return err
	}
	pool, err := runtime.NewPool(ctx, runner, s.opts.warm.poolOpts()...)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.runner, s.warm = runner, pool
	s.mu.Unlock()
	return nil
}

// serverPolicy is the policy a server admits images from elsewhere under:
// WithRunPolicy's, or the defaults.
func (s *Service) serverPolicy() (config.Policy, error) {
	if s.opts.runPolicy != nil {
		return *s.opts.runPolicy, nil
	}
	return config.LoadPolicy(config.Input{Set: map[string]bool{}})
}

// pool is the warm pool, or nil when runs start their own containers.
func (s *Service) pool() *runtime.Pool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.warm
}

// Health says whether containerd serves, and how the warm pool is.
func (s *Service) Health(ctx context.Context) (*api.Health, error) {
	client, err := s.containerd(ctx, sweepNone)
	if err != nil {
		return nil, err
	}
	ok, err := client.IsServing(ctx)
	if err != nil || !ok {
		return nil, fmt.Errorf("containerd at %s is not serving: %v: %w", s.opts.address, err, errdefs.ErrUnavailable)
	}
	st := s.PoolStats()
	return &api.Health{OK: true, Warm: st.Warm, Starting: st.Starting, Destroying: st.Destroying}, nil
}

// PoolStats counts what the warm pool did (zero without one).
func (s *Service) PoolStats() api.PoolStats {
	pool := s.pool()
	if pool == nil {
		return api.PoolStats{}
	}
	st := pool.Stats()
	images := make(map[string]api.PoolImageStats, len(st.Images))
	for ref, i := range st.Images {
		images[ref] = api.PoolImageStats{Ready: i.Ready, Starting: i.Starting, Target: i.Target, Hits: i.Hits, Misses: i.Misses, Waited: i.Waited}
	}
	return api.PoolStats{Warm: st.Warm, Starting: st.Starting, Destroying: st.Destroying, WarmByImage: st.WarmByImage,
		Hits: st.Hits, Misses: st.Misses, Discarded: st.Discarded, StartFailures: st.StartFailures, Waited: st.Waited, Images: images}
}

// preloadCache is the preload list of each image, by its target digest.
type preloadCache struct {
	mu   sync.Mutex
	mods map[digest.Digest][]string
}

// preloadOf is the preload list the image records (labels.Preload), read
// once per image digest. An image that cannot be read has none here: the
// run then reports why.
func (s *Service) preloadOf(ctx context.Context, ref string) []string {
	client, err := s.containerd(ctx, sweepNone)
	if err != nil {
		return nil
	}
	img, err := client.GetImage(ctx, ref)
	if err != nil {
		return nil
	}
	key := img.Target().Digest
	c := &s.preloads
	c.mu.Lock()
	mods, ok := c.mods[key]
	c.mu.Unlock()
	if ok {
		return mods
	}
	spec, err := img.Spec(ctx)
	if err != nil {
		return nil
	}
	if l := spec.Config.Labels[labels.Preload]; l != "" {
		mods = strings.Split(l, ",")
	}
	c.mu.Lock()
	if c.mods == nil {
		c.mods = map[digest.Digest][]string{}
	}
	c.mods[key] = mods
	c.mu.Unlock()
	return mods
}
