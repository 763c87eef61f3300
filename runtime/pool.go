package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
)

// LabelPool marks a warm container of a Pool; its value is the pool's
// owner ID. A pool holds an exclusive lock on its owner file in the state
// directory while it lives; a container whose owner's lock is free belongs
// to a pool that died and is swept by the next NewPool.
const LabelPool = "org.skillbuild.pool"

// Pool runs skill code like Runner.Run, in containers it started ahead of
// time: per image (and limits), up to a few containers are created and
// started with the runner waiting for its job on stdin. A run takes one,
// writes the code and the inputs, and the container is destroyed after the
// run, never reused; a replacement starts in the background. The spec,
// limits, report and cleanup are Run's; the run's deadline counts from the
// moment the job is handed over. Pool is safe for concurrent use.
type Pool struct {
	r     *Runner
	opts  poolOptions
	owner string
	lock  *os.File

	mu         sync.Mutex
	sets       map[poolKey]*warmSet
	warm       int                    // containers ready or starting, every set
	memory     int64                  // their memory limits, summed
	destroying int                    // containers being removed in the background
	images     map[string]*ImageStats // per image: Hits, Misses, Waited
	closed     bool
	inflight   sync.WaitGroup // runs
	bg         sync.WaitGroup // starts and destroys in the background
	stop       chan struct{}
	stats      PoolStats
	sessions   map[*Session]struct{} // open sessions (session.go)
	// starts bounds the background starts that run at once (one slot
	// each): a start is mostly CPU (runc, the shim, the interpreter), and
	// more of them at once than cores only makes each one, and the runs
	// beside them, slower.
	starts chan struct{}
}

// poolKey is what a warm container was made for: the image and everything
// of the spec that cannot change after the container started.
type poolKey struct {
	image   string
	limits  Limits // Timeout and OutputLimitBytes are zero: they are per run
	user    string
	preload string // the modules, comma-separated
}

// keyOf is the key of the runs of req, whose limits (with defaults
// filled) are limits.
func keyOf(req Request, limits Limits) poolKey {
	limits.Timeout, limits.OutputLimitBytes = 0, 0
	return poolKey{image: req.Image, limits: limits, user: req.User, preload: strings.Join(req.Preload, ",")}
}

// request is a request for a warm container of k, without its job.
func (k poolKey) request() Request {
	req := Request{Image: k.image, Limits: k.limits, User: k.user}
	if k.preload != "" {
		req.Preload = strings.Split(k.preload, ",")
	}
	return req
}

// warmSet is the warm containers of one key.
type warmSet struct {
	key      poolKey
	digest   digest.Digest // of the image they were made from
	ready    []*warmContainer
	starting int
	// waiters are runs that found none ready while some were starting:
	// each started container goes to the first waiter, in order.
	waiters []chan *warmContainer
	// target is how many containers the set keeps ready or starting:
	// what its demand asks for (demand.depth), never fewer than the
	// pool's per-image count nor more than its maximum. A run raises it;
	// the janitor lowers it when the runs stop coming.
	target   int
	demand   demand
	lastUsed time.Time

	prepMu sync.Mutex
	prep   *Prepared // the image resolved once for every start
}

// warmContainer is a started sandbox whose runner waits for its job.
type warmContainer struct {
	sb      *Sandbox
	created time.Time
	memory  int64
}

// PoolStats counts what a pool did, for metrics.
type PoolStats struct {
	// Warm is the number of containers ready for a run; Starting, those
	// being created.
	Warm, Starting int
	// WarmByImage is Warm per image reference.
	WarmByImage map[string]int
	// Hits are runs that got a warm container; Misses, runs that had to
	// start one themselves.
	Hits, Misses int64
	// Discarded counts warm containers destroyed unused (idle, image
	// changed or removed, dead before their run, pool closed).
	Discarded int64
	// StartFailures counts background starts that failed.
	StartFailures int64
	// Waited counts runs that waited for a container being started
	// rather than start one of their own.
	Waited int64
	// Destroying is the number of used or discarded containers being
	// removed in the background.
	Destroying int
	// Images is the state and the counters of each image reference run
	// through the pool.
	Images map[string]ImageStats
}

// ImageStats is a pool's state and counters for one image reference, its
// sets of limits, users and preloads together.
type ImageStats struct {
	// Ready and Starting are its warm containers ready for a run and
	// being started.
	Ready, Starting int
	// Target is the depth its sets keep, ready or starting, for their
	// recent demand (0 once they went idle and were dropped).
	Target int
	// Hits, Misses and Waited count its runs as PoolStats does.
	Hits, Misses, Waited int64
}

type poolOptions struct {
	perKey      int
	maxWarm     int
	memBudget   int64
	idleTimeout time.Duration
	maxAge      time.Duration
}

// PoolOpt configures a Pool.
type PoolOpt func(*poolOptions) error

// WithWarmPerImage sets how many containers are kept warm per image (and
// set of limits). Default: 2.
func WithWarmPerImage(n int) PoolOpt {
	return func(o *poolOptions) error {
		if n < 1 {
			return fmt.Errorf("warm containers per image must be at least 1, got %d: %w", n, errdefs.ErrInvalidArgument)
		}
		o.perKey = n
		return nil
	}
}

// WithMaxWarm bounds the warm containers of the whole pool. Default: 8.
// Zero keeps none warm: every run starts its own container.
func WithMaxWarm(n int) PoolOpt {
	return func(o *poolOptions) error {
		if n < 0 {
			return fmt.Errorf("maximum of warm containers must not be negative, got %d: %w", n, errdefs.ErrInvalidArgument)
		}
		o.maxWarm = n
		return nil
	}
}

// WithMemoryBudget bounds the sum of the memory limits of the warm
// containers. Default: 0, no bound beyond WithMaxWarm.
func WithMemoryBudget(bytes int64) PoolOpt {
	return func(o *poolOptions) error {
		if bytes < 0 {
			return fmt.Errorf("memory budget must not be negative, got %d: %w", bytes, errdefs.ErrInvalidArgument)
		}
		o.memBudget = bytes
		return nil
	}
}

// WithIdleTimeout sets how long an image's warm containers wait for a run
// before they are destroyed. Default: 5m.
func WithIdleTimeout(d time.Duration) PoolOpt {
	return func(o *poolOptions) error {
		if d <= 0 {
			return fmt.Errorf("idle timeout must be positive, got %s: %w", d, errdefs.ErrInvalidArgument)
		}
		o.idleTimeout = d
		return nil
	}
}

// CheckPoolOpts reports the first invalid option, as NewPool would, for
// callers that check their input before they connect to anything.
func CheckPoolOpts(opts ...PoolOpt) error {
	var o poolOptions
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return err
		}
	}
	return nil
}

// maxAgeFactor: a warm container older than this many idle timeouts is
// replaced even when the image is busy, so its LabelDeadline stays near.
const maxAgeFactor = 3

// NewPool returns a pool running through r. It first removes the warm
// containers of pools whose process died (kill -9, a crash), whatever their
// deadline.
func NewPool(ctx context.Context, r *Runner, opts ...PoolOpt) (*Pool, error) {
	if r == nil {
		return nil, fmt.Errorf("runner is nil: %w", errdefs.ErrInvalidArgument)
	}
	o := poolOptions{perKey: 2, maxWarm: 8, idleTimeout: 5 * time.Minute}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	o.maxAge = maxAgeFactor * o.idleTimeout
	p := &Pool{r: r, opts: o, sets: map[poolKey]*warmSet{}, images: map[string]*ImageStats{}, stop: make(chan struct{}),
		starts: make(chan struct{}, max(2, goruntime.NumCPU()))}
	p.owner = strings.TrimPrefix(newID(), idPrefix)
	lock, err := lockedFile(p.ownerFile(p.owner))
	if err != nil {
		return nil, fmt.Errorf("pool owner file: %w", err)
	}
	p.lock = lock
	if _, err := p.SweepDead(ctx); err != nil {
		p.release()
		return nil, err
	}
	go p.janitor()
	return p, nil
}

func (p *Pool) ownerFile(owner string) string {
	return filepath.Join(p.r.opts.stateDir, "pool-"+owner+".lock")
}

func (p *Pool) release() {
	os.Remove(p.ownerFile(p.owner))
	p.lock.Close()
}

// SweepDead removes the warm (and running) containers of pools whose owner
// process is gone, with their state directories, and the shared views they
// were the last users of. It returns how many containers it removed.
func (p *Pool) SweepDead(ctx context.Context) (int, error) {
	ctx = p.r.namespaced(ctx)
	cs, err := p.r.client.Containers(ctx, fmt.Sprintf("labels.%q", LabelPool))
	if err != nil {
		return 0, fmt.Errorf("list pool containers: %w", err)
	}
	dead := map[string]bool{}
	var errs []error
	removed := 0
	for _, c := range cs {
		labels, err := c.Labels(ctx)
		if err != nil {
			continue
		}
		owner := labels[LabelPool]
		if owner == p.owner {
			continue
		}
		isDead, seen := dead[owner]
		if !seen {
			isDead = !p.ownerAlive(owner)
			dead[owner] = isDead
		}
		if !isDead {
			continue
		}
		if err := removeContainer(ctx, c, p.r.opts.processKill()); err != nil {
			errs = append(errs, fmt.Errorf("remove container %s of a dead pool: %w", c.ID(), err))
			continue
		}
		removed++
		os.RemoveAll(filepath.Join(p.r.opts.stateDir, c.ID()))
	}
	// The shared views the dead pools' containers were the last users of.
	if err := p.r.sweepSharedViews(ctx); err != nil {
		errs = append(errs, err)
	}
	// The owner files of dead pools whose containers are gone already (a
	// run's sweep removes a dead owner's containers too).
	files, _ := filepath.Glob(filepath.Join(p.r.opts.stateDir, "pool-*.lock"))
	for _, f := range files {
		owner := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), "pool-"), ".lock")
		if _, seen := dead[owner]; !seen && owner != p.owner {
			dead[owner] = !p.ownerAlive(owner)
		}
	}
	for owner, isDead := range dead {
		if isDead && len(errs) == 0 {
			os.Remove(p.ownerFile(owner))
		}
	}
	return removed, errors.Join(errs...)
}

// ownerAlive reports whether the pool owner's lock is held by a process.
func (p *Pool) ownerAlive(owner string) bool {
	if strings.ContainsAny(owner, "/.") {
		return false
	}
	if _, err := os.Stat(p.ownerFile(owner)); err != nil {
		return false
	}
	return !lockFree(p.ownerFile(owner))
}

// sweepPoolOwners removes the owner files of pools whose process died
// (their lock is free). Their warm containers are runs like any other,
// which Sweep removes by their own owner locks.
func sweepPoolOwners(stateDir string) {
	files, _ := filepath.Glob(filepath.Join(stateDir, "pool-*.lock"))
	for _, f := range files {
		if lockFree(f) {
			os.Remove(f)
		}
	}
}

// Run runs req like Runner.Run, in a warm container when one is ready.
func (p *Pool) Run(ctx context.Context, req Request) (Result, error) {
	ctx = p.r.namespaced(ctx)
	inputs, err := normalizeInputs(req.Inputs)
	if err != nil {
		return Result{}, err
	}
	if err := CheckFiles(req.Files); err != nil {
		return Result{}, err
	}
	limits, dg, done, err := p.begin(ctx, req)
	if err != nil {
		return Result{}, err
	}
	defer done()
	key := keyOf(req, limits)

	// A warm container that died while it waited (containerd restarted,
	// the kernel killed it) is discarded and the next one tried.
	for {
		w, wait := p.take(key, dg)
		if wait != nil {
			p.count(func(s *PoolStats) { s.Waited++ })
			p.countImage(req.Image, func(i *ImageStats) { i.Waited++ })
			if w, err = p.await(ctx, key, wait); err != nil {
				return Result{}, err
			}
		}
		if w == nil {
			break
		}
		if w.alive() {
			p.count(func(s *PoolStats) { s.Hits++ })
			p.countImage(req.Image, func(i *ImageStats) { i.Hits++ })
			return p.runIn(ctx, w, req, limits, inputs)
		}
		p.destroyLater(w)
	}
	// No warm container (yet): a run of its own, while the set fills.
	p.count(func(s *PoolStats) { s.Misses++ })
	p.countImage(req.Image, func(i *ImageStats) { i.Misses++ })
	return p.r.Run(ctx, req)
}

// begin checks what a run and a session ask of the pool alike (limits,
// image, preload list, runtime), resolves the image and counts the caller
// in flight until done: Close waits for it.
func (p *Pool) begin(ctx context.Context, req Request) (_ Limits, _ digest.Digest, done func(), _ error) {
	limits, err := withDefaults(req.Limits)
	if err != nil {
		return limits, "", nil, err
	}
	if req.Image == "" {
		return limits, "", nil, fmt.Errorf("no image given: %w", errdefs.ErrInvalidArgument)
	}
	if err := checkPreload(req.Preload); err != nil {
		return limits, "", nil, err
	}
	// A runtime this host lacks is refused here, as a run of its own is
	// (Prepare), not left to the starts of warm containers.
	if err := p.r.checkRuntime(limits.Runtime); err != nil {
		return limits, "", nil, err
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return limits, "", nil, fmt.Errorf("run pool is shut down: %w", errdefs.ErrUnavailable)
	}
	p.inflight.Add(1)
	p.mu.Unlock()
	img, err := p.r.client.GetImage(ctx, req.Image)
	if err != nil {
		p.inflight.Done()
		if errdefs.IsNotFound(err) {
			p.Drop(req.Image)
			return limits, "", nil, fmt.Errorf("image %s: %w", req.Image, ErrImageNotFound)
		}
		return limits, "", nil, fmt.Errorf("image %s: %w", req.Image, err)
	}
	return limits, img.Target().Digest, p.inflight.Done, nil
}

func (p *Pool) count(f func(*PoolStats)) {
	p.mu.Lock()
	f(&p.stats)
	p.mu.Unlock()
}

// countImage applies f to image's counters.
func (p *Pool) countImage(image string, f func(*ImageStats)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	i := p.images[image]
	if i == nil {
		i = &ImageStats{}
		p.images[image] = i
	}
	f(i)
}

// take removes a ready container of key from its set, if any, and asks for
// replacements: the run counts in the set's demand, which may deepen it.
// When none is ready but one is starting, it returns a channel instead
// that gets the next one started (or nil: run without). A set made from
// another digest of the image is dropped.
func (p *Pool) take(key poolKey, dg digest.Digest) (*warmContainer, chan *warmContainer) {
	p.mu.Lock()
	defer p.mu.Unlock()
	set := p.sets[key]
	if set != nil && set.digest != dg {
		p.dropLocked(set)
		set = nil
	}
	isNew := set == nil
	if isNew {
		set = &warmSet{key: key, digest: dg, target: min(p.opts.perKey, p.opts.maxWarm)}
		p.sets[key] = set
	}
	now := time.Now()
	set.lastUsed = now
	set.demand.arrive(now)
	// A run only deepens the set: a gap before it (the set was quiet)
	// is the janitor's to act on, so a burst after a pause finds the
	// depth the last one built.
	set.target = max(set.target, set.demand.depth(p.opts.perKey, p.opts.maxWarm))
	if n := len(set.ready); n > 0 {
		w := set.ready[0]
		set.ready = set.ready[1:]
		p.warm--
		p.memory -= w.memory
		p.refillLocked(set)
		return w, nil
	}
	// None ready: the depth was short of this run, whatever the rate
	// says (the runs before it may have waited, which slows the rate
	// down): one more, up to the pool's maximum.
	if !isNew {
		set.target = min(set.target+1, p.opts.maxWarm)
	}
	p.refillLocked(set)
	if set.starting == 0 {
		return nil, nil
	}
	wait := make(chan *warmContainer, 1)
	set.waiters = append(set.waiters, wait)
	return nil, wait
}

// await waits for the container a fill hands to wait. When ctx ends
// first the run gives up its place, or destroys what it got meanwhile.
func (p *Pool) await(ctx context.Context, key poolKey, wait chan *warmContainer) (*warmContainer, error) {
	select {
	case w := <-wait:
		return w, nil
	case <-ctx.Done():
	}
	p.mu.Lock()
	if set := p.sets[key]; set != nil {
		set.waiters = slices.DeleteFunc(set.waiters, func(c chan *warmContainer) bool { return c == wait })
	}
	p.mu.Unlock()
	select {
	case w := <-wait:
		if w != nil {
			p.destroyLater(w)
		}
	default:
	}
	return nil, cancelled(ctx)
}

// refillLocked starts containers for set in the background until it has
// its target, within the pool's bounds.
func (p *Pool) refillLocked(set *warmSet) {
	for !p.closed && len(set.ready)+set.starting < set.target && p.warm < p.opts.maxWarm &&
		(p.opts.memBudget == 0 || p.memory+set.key.limits.MemoryBytes <= p.opts.memBudget) {
		set.starting++
		p.warm++
		p.memory += set.key.limits.MemoryBytes
		p.bg.Add(1)
		go p.fill(set)
	}
}

// fill starts one container for set and adds it, unless the set was
// dropped meanwhile.
func (p *Pool) fill(set *warmSet) {
	defer p.bg.Done()
	// The start latency is measured from the moment it has its slot:
	// the depth needs the time a start takes, not its wait for a slot.
	p.starts <- struct{}{}
	ctx, cancel := context.WithTimeout(p.r.namespaced(context.Background()), stepTimeout)
	defer cancel()
	t0 := time.Now()
	w, err := p.start(ctx, set)
	took := time.Since(t0)
	<-p.starts
	p.mu.Lock()
	set.starting--
	if err == nil {
		set.demand.started(took)
	}
	if err != nil || p.sets[set.key] != set || p.closed {
		p.warm--
		p.memory -= set.key.limits.MemoryBytes
		if err != nil {
			p.stats.StartFailures++
			// A waiter no other start serves runs without: its own
			// start reports the trouble.
			if len(set.waiters) > set.starting {
				p.releaseWaiterLocked(set, nil)
			}
		}
		p.mu.Unlock()
		if w != nil {
			p.destroy(w)
		}
		return
	}
	if len(set.waiters) > 0 {
		p.warm--
		p.memory -= w.memory
		p.releaseWaiterLocked(set, w)
		p.refillLocked(set)
	} else {
		set.ready = append(set.ready, w)
	}
	p.mu.Unlock()
}

// releaseWaiterLocked hands w (nil: none) to set's first waiter.
func (p *Pool) releaseWaiterLocked(set *warmSet, w *warmContainer) {
	wait := set.waiters[0]
	set.waiters = set.waiters[1:]
	wait <- w
}

// Drop destroys the warm containers of image (every set of limits), for
// when it was removed or replaced.
func (p *Pool) Drop(image string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, set := range p.sets {
		if set.key.image == image {
			p.dropLocked(set)
		}
	}
}

// dropLocked removes set from the pool and destroys its ready containers
// in the background; its starting ones are destroyed when they are up.
func (p *Pool) dropLocked(set *warmSet) {
	if p.sets[set.key] == set {
		delete(p.sets, set.key)
	}
	for _, w := range set.ready {
		p.warm--
		p.memory -= w.memory
		p.stats.Discarded++
		p.destroyLaterLocked(w)
	}
	set.ready = nil
	for len(set.waiters) > 0 {
		p.releaseWaiterLocked(set, nil)
	}
}

// destroyLater destroys w in the background.
func (p *Pool) destroyLater(w *warmContainer) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.destroyLaterLocked(w)
}

func (p *Pool) destroyLaterLocked(w *warmContainer) {
	p.destroying++
	p.bg.Add(1)
	go func() {
		defer p.bg.Done()
		_ = p.destroy(w) // a failure leaves it to the sweeps
		p.mu.Lock()
		p.destroying--
		p.mu.Unlock()
	}()
}

// janitor evicts idle sets and old containers, and brings each set's
// depth down to its demand: a set without runs since the last round gets
// a lower rate (demand.idle), and its ready containers beyond the new
// depth are destroyed.
func (p *Pool) janitor() {
	tick := time.NewTicker(max(p.opts.idleTimeout/4, 50*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-tick.C:
		}
		now := time.Now()
		p.mu.Lock()
		for _, set := range p.sets {
			if now.Sub(set.lastUsed) > p.opts.idleTimeout {
				p.dropLocked(set)
				continue
			}
			// A set in use keeps its depth; an idle one falls to
			// what its decayed rate asks for.
			idle := set.demand.idle(now)
			if idle {
				set.target = set.demand.depth(p.opts.perKey, p.opts.maxWarm)
			}
			var old []*warmContainer
			set.ready = slices.DeleteFunc(set.ready, func(w *warmContainer) bool {
				if now.Sub(w.created) > p.opts.maxAge {
					old = append(old, w)
					return true
				}
				return false
			})
			// The newest beyond the depth go (the oldest are served
			// first: the newest would be the last to be used).
			if extra := len(set.ready) + set.starting - set.target; idle && extra > 0 {
				n := len(set.ready) - min(extra, len(set.ready))
				old = append(old, set.ready[n:]...)
				set.ready = set.ready[:n]
			}
			for _, w := range old {
				p.warm--
				p.memory -= w.memory
				p.stats.Discarded++
				p.destroyLaterLocked(w)
			}
			if len(old) > 0 {
				p.refillLocked(set)
			}
		}
		p.mu.Unlock()
	}
}

// Stats returns the pool's counters and sizes.
func (p *Pool) Stats() PoolStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats
	s.Destroying = p.destroying
	s.WarmByImage = map[string]int{}
	s.Images = map[string]ImageStats{}
	for image, i := range p.images {
		s.Images[image] = *i
	}
	for _, set := range p.sets {
		s.Warm += len(set.ready)
		s.Starting += set.starting
		s.WarmByImage[set.key.image] += len(set.ready)
		i := s.Images[set.key.image]
		i.Ready += len(set.ready)
		i.Starting += set.starting
		i.Target += set.target
		s.Images[set.key.image] = i
	}
	return s
}

// Close stops refilling, waits for the runs in flight (they end by
// themselves at their deadline, or when their ctx is cancelled) and
// destroys every warm container. ctx bounds the wait for the runs.
func (p *Pool) Close(ctx context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	close(p.stop)
	for _, set := range p.sets {
		p.dropLocked(set)
	}
	p.mu.Unlock()
	sessErr := p.closeSessions(ctx)

	done := make(chan struct{})
	go func() {
		p.inflight.Wait()
		p.bg.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("runs still in flight at shutdown: %w", ctx.Err())
	}
	if err == nil {
		p.release()
	}
	return errors.Join(err, sessErr)
}

// warmSlack is how much longer than its maximum age a warm container
// waits for its job before its init ends it: the pool replaces it before.
// When the pool's process is gone (killed) its init ends it much sooner,
// when it sees the host's end of its report connection close
// (pid1.WarmArgs).
const warmSlack = time.Minute

// prepared is set's image resolved and unpacked, once for all its starts
// (a set is for one digest of its image).
func (p *Pool) prepared(ctx context.Context, set *warmSet) (*Prepared, error) {
	set.prepMu.Lock()
	defer set.prepMu.Unlock()
	if set.prep != nil {
		return set.prep, nil
	}
	prep, err := p.r.Prepare(ctx, set.key.request())
	if err != nil {
		return nil, err
	}
	if prep.image.Target().Digest != set.digest {
		return nil, fmt.Errorf("image %s changed: %w", set.key.image, errdefs.ErrAborted)
	}
	prep.warm = p.opts.maxAge + warmSlack
	prep.labels = map[string]string{LabelPool: p.owner}
	set.prep = prep
	return prep, nil
}

// start creates and starts a sandbox for set whose runner waits for its
// job. On error nothing of it is left.
func (p *Pool) start(ctx context.Context, set *warmSet) (*warmContainer, error) {
	prep, err := p.prepared(ctx, set)
	if err != nil {
		return nil, err
	}
	key := set.key
	sb, err := p.r.Create(ctx, prep)
	if err != nil {
		return nil, err
	}
	if err := sb.Start(ctx); err != nil {
		return nil, errors.Join(err, sb.Close(ctx))
	}
	// Ready once the runner has imported its modules and waits: a run
	// handed the container pays for neither the interpreter's start nor
	// the preloads.
	select {
	case <-sb.report.ready:
	case st := <-sb.exitC:
		err := fmt.Errorf("the runner of a warm container of %s exited with status %d before it was ready: %w", key.image, st.ExitCode(), errdefs.ErrFailedPrecondition)
		return nil, errors.Join(err, sb.Close(ctx))
	case <-ctx.Done():
		return nil, errors.Join(fmt.Errorf("warm container of %s not ready: %w", key.image, ctx.Err()), p.destroy(&warmContainer{sb: sb}))
	}
	return &warmContainer{sb: sb, created: time.Now(), memory: key.limits.MemoryBytes}, nil
}

// alive reports whether w's runner still waits (it has not exited).
func (w *warmContainer) alive() bool {
	select {
	case <-w.sb.exitC:
		return false
	default:
		return true
	}
}

// runIn hands the job to w, waits for the end of the run within its
// deadline and collects the result. w is destroyed on every path; after a
// run that was collected, in the background (the result does not wait
// for the container's removal; Close waits for it).
func (p *Pool) runIn(ctx context.Context, w *warmContainer, req Request, limits Limits, inputs []byte) (res Result, retErr error) {
	sb := w.sb
	collected := false
	defer func() {
		if collected {
			p.destroyLater(w)
			return
		}
		if err := sb.Close(ctx); err != nil {
			retErr = errors.Join(retErr, err)
		}
	}()
	if err := sb.hand(ctx, req, limits, inputs); err != nil {
		return res, err
	}
	exit, err := sb.Wait(ctx)
	if err != nil {
		return res, err
	}
	if res, err = sb.Collect(ctx, exit); err != nil {
		return res, err
	}
	collected = true
	sb.Flush(ctx)
	return res, nil
}

// hand gives a warm sandbox its job: the code file, the output limit and
// writers, then the timeout line and the inputs line to its init, which
// holds the deadline from that moment.
func (s *Sandbox) hand(ctx context.Context, req Request, limits Limits, inputs []byte) error {
	// The runner reads its code only after the inputs line: the code file
	// is complete (renamed into place) before the line is written, and the
	// files before the code.
	if err := writeInFiles(filepath.Join(s.r.opts.stateDir, s.id, inName), req.Files); err != nil {
		return err
	}
	box := filepath.Join(s.r.opts.stateDir, s.id, "box")
	tmp := filepath.Join(box, ".code")
	if err := os.WriteFile(tmp, req.Code, 0o444); err != nil {
		return fmt.Errorf("write code: %w", err)
	}
	if err := os.Chmod(tmp, 0o444); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(box, codeName)); err != nil {
		return fmt.Errorf("write code: %w", err)
	}
	s.limits.Timeout, s.limits.OutputLimitBytes = limits.Timeout, limits.OutputLimitBytes
	s.stdout.bind(limits.OutputLimitBytes, req.Stdout)
	s.stderr.bind(limits.OutputLimitBytes, req.Stderr)
	// Another process's Sweep must not take the run for an orphan: move
	// the deadline label when the run may outlast the warm one.
	now := time.Now()
	if until := now.Add(limits.Timeout); until.After(s.start.Add(s.warm)) {
		if err := s.setLabels(ctx, map[string]string{LabelDeadline: deadlineLabel(until)}); err != nil {
			return fmt.Errorf("label the run's deadline: %w", err)
		}
	}
	s.start = time.Now()
	job := append([]byte(limits.Timeout.String()+"\n"), inputs...)
	if _, err := s.job.Write(job); err != nil {
		return fmt.Errorf("hand the job to run %s: %w", s.id, err)
	}
	return nil
}

// bind sets the buffer's limit and writer, before anything was written to
// it (a warm sandbox's, when its job comes).
func (b *cappedBuffer) bind(limit int64, tee io.Writer) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.limit = limit
	if tee != nil && b.tee == nil {
		b.tee = tee
		b.done = make(chan struct{})
		go b.forward()
	}
}

// destroy removes w's task, container, snapshot and state directory. A
// runner still waiting is killed with every process of its container, and
// its exit awaited, first: deleting a live task leaves the removal of its
// cgroups racing the processes' exit.
func (p *Pool) destroy(w *warmContainer) error {
	ctx, cancel := context.WithTimeout(p.r.namespaced(context.Background()), cleanupTimeout)
	defer cancel()
	if w.alive() {
		if err := w.sb.task.Kill(ctx, syscall.SIGKILL, p.r.opts.killOpts()...); err == nil {
			select {
			case <-w.sb.exitC:
			case <-ctx.Done():
			}
		}
	}
	return w.sb.Close(ctx)
}
