package runtime

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/cio"
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

	mu       sync.Mutex
	sets     map[poolKey]*warmSet
	warm     int   // containers ready or starting, every set
	memory   int64 // their memory limits, summed
	closed   bool
	inflight sync.WaitGroup // runs
	bg       sync.WaitGroup // starts and destroys in the background
	stop     chan struct{}
	stats    PoolStats
}

// poolKey is what a warm container was made for: the image and everything
// of the spec that cannot change after the container started.
type poolKey struct {
	image  string
	limits Limits // Timeout and OutputLimitBytes are zero: they are per run
	user   string
}

// keyOf is the key of runs of image with limits (with defaults filled)
// as user.
func keyOf(image string, limits Limits, user string) poolKey {
	limits.Timeout, limits.OutputLimitBytes = 0, 0
	return poolKey{image: image, limits: limits, user: user}
}

// warmSet is the warm containers of one key.
type warmSet struct {
	key      poolKey
	digest   digest.Digest // of the image they were made from
	ready    []*warmContainer
	starting int
	lastUsed time.Time
}

// warmContainer is a started container whose runner waits for its job.
type warmContainer struct {
	id        string
	dir, box  string
	container client.Container
	task      client.Task
	exitC     <-chan client.ExitStatus
	stdin     *os.File // write end of the runner's stdin
	stdinR    *os.File // its read end, which cio copies from
	stdout    *lateWriter
	stderr    *lateWriter
	report    *reportReader
	deadline  time.Time // LabelDeadline as set on the container
	created   time.Time
	memory    int64
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
	p := &Pool{r: r, opts: o, sets: map[poolKey]*warmSet{}, stop: make(chan struct{})}
	p.owner = strings.TrimPrefix(newID(), idPrefix)
	lock, err := os.OpenFile(p.ownerFile(p.owner), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("pool owner file: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("lock pool owner file: %w", err)
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
// process is gone, with their snapshots and state directories. It returns
// how many containers it removed.
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
		if err := removeContainer(ctx, c); err != nil {
			errs = append(errs, fmt.Errorf("remove container %s of a dead pool: %w", c.ID(), err))
			continue
		}
		removed++
		os.RemoveAll(filepath.Join(p.r.opts.stateDir, c.ID()))
	}
	// Views whose container was never created.
	sn := p.r.client.SnapshotService(p.r.opts.snapshotter)
	var views []string
	err = sn.Walk(ctx, func(_ context.Context, info snapshots.Info) error {
		owner := info.Labels[LabelPool]
		if owner != "" && owner != p.owner && !p.ownerAlive(owner) {
			views = append(views, info.Name)
		}
		return nil
	}, fmt.Sprintf("labels.%q", LabelPool))
	if err != nil {
		errs = append(errs, fmt.Errorf("list pool snapshots: %w", err))
	}
	for _, v := range views {
		if err := sn.Remove(ctx, v); err != nil && !errdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove snapshot %s of a dead pool: %w", v, err))
		}
		os.RemoveAll(filepath.Join(p.r.opts.stateDir, v))
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
	f, err := os.Open(p.ownerFile(owner))
	if err != nil {
		return false
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return true
	}
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return false
}

// Run runs req like Runner.Run, in a warm container when one is ready.
func (p *Pool) Run(ctx context.Context, req Request) (Result, error) {
	ctx = p.r.namespaced(ctx)
	limits, err := req.Limits.withDefaults()
	if err != nil {
		return Result{}, err
	}
	inputs, err := normalizeInputs(req.Inputs)
	if err != nil {
		return Result{}, err
	}
	if req.Image == "" {
		return Result{}, fmt.Errorf("no image given: %w", errdefs.ErrInvalidArgument)
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return Result{}, fmt.Errorf("run pool is shut down: %w", errdefs.ErrUnavailable)
	}
	p.inflight.Add(1)
	p.mu.Unlock()
	defer p.inflight.Done()

	img, err := p.r.client.GetImage(ctx, req.Image)
	if err != nil {
		if errdefs.IsNotFound(err) {
			p.Drop(req.Image)
			return Result{}, fmt.Errorf("image %s: %w", req.Image, ErrImageNotFound)
		}
		return Result{}, fmt.Errorf("image %s: %w", req.Image, err)
	}
	key := keyOf(req.Image, limits, req.User)

	// A warm container that died while it waited (containerd restarted,
	// the kernel killed it) is discarded and the next one tried.
	for {
		w := p.take(key, img.Target().Digest)
		if w == nil {
			break
		}
		if w.alive() {
			p.count(func(s *PoolStats) { s.Hits++ })
			return p.runIn(ctx, w, req, limits, inputs)
		}
		p.destroy(w)
	}
	p.count(func(s *PoolStats) { s.Misses++ })
	w, err := p.start(ctx, img, key)
	if err != nil {
		return Result{}, err
	}
	return p.runIn(ctx, w, req, limits, inputs)
}

func (p *Pool) count(f func(*PoolStats)) {
	p.mu.Lock()
	f(&p.stats)
	p.mu.Unlock()
}

// take removes a ready container of key from its set, if any, and asks for
// replacements. A set made from another digest of the image is dropped.
func (p *Pool) take(key poolKey, dg digest.Digest) *warmContainer {
	p.mu.Lock()
	defer p.mu.Unlock()
	set := p.sets[key]
	if set != nil && set.digest != dg {
		p.dropLocked(set)
		set = nil
	}
	if set == nil {
		set = &warmSet{key: key, digest: dg}
		p.sets[key] = set
	}
	set.lastUsed = time.Now()
	var w *warmContainer
	if n := len(set.ready); n > 0 {
		w = set.ready[0]
		set.ready = set.ready[1:]
		p.warm--
		p.memory -= w.memory
	}
	p.refillLocked(set)
	return w
}

// refillLocked starts containers for set in the background until it has
// its share, within the pool's bounds.
func (p *Pool) refillLocked(set *warmSet) {
	for !p.closed && len(set.ready)+set.starting < p.opts.perKey && p.warm < p.opts.maxWarm &&
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
	ctx, cancel := context.WithTimeout(p.r.namespaced(context.Background()), stepTimeout)
	defer cancel()
	var w *warmContainer
	img, err := p.r.client.GetImage(ctx, set.key.image)
	if err == nil && img.Target().Digest != set.digest {
		err = fmt.Errorf("image %s changed", set.key.image)
	}
	if err == nil {
		w, err = p.start(ctx, img, set.key)
	}
	p.mu.Lock()
	set.starting--
	if err != nil || p.sets[set.key] != set || p.closed {
		p.warm--
		p.memory -= set.key.limits.MemoryBytes
		if err != nil {
			p.stats.StartFailures++
		}
		p.mu.Unlock()
		if w != nil {
			p.destroy(w)
		}
		return
	}
	set.ready = append(set.ready, w)
	p.mu.Unlock()
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
		p.bg.Add(1)
		go func() {
			defer p.bg.Done()
			p.destroy(w)
		}()
	}
	set.ready = nil
}

// janitor evicts idle sets and old containers.
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
			var old []*warmContainer
			set.ready = slices.DeleteFunc(set.ready, func(w *warmContainer) bool {
				if now.Sub(w.created) > p.opts.maxAge {
					old = append(old, w)
					return true
				}
				return false
			})
			for _, w := range old {
				p.warm--
				p.memory -= w.memory
				p.stats.Discarded++
				p.bg.Add(1)
				go func() {
					defer p.bg.Done()
					p.destroy(w)
				}()
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
	s.WarmByImage = map[string]int{}
	for _, set := range p.sets {
		s.Warm += len(set.ready)
		s.Starting += set.starting
		s.WarmByImage[set.key.image] += len(set.ready)
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
	return err
}

// warmDeadlineSlack is how far past its maximum age a warm container's
// LabelDeadline lies: another process's Sweep leaves it alone while the
// pool lives, and removes it once the pool is long gone.
const warmDeadlineSlack = time.Minute

// start creates and starts a container for key whose runner waits for its
// job. On error nothing of it is left.
func (p *Pool) start(ctx context.Context, img client.Image, key poolKey) (w *warmContainer, retErr error) {
	r := p.r
	if ok, err := img.IsUnpacked(ctx, r.opts.snapshotter); err != nil {
		return nil, fmt.Errorf("image %s: %w", key.image, err)
	} else if !ok {
		if err := img.Unpack(ctx, r.opts.snapshotter); err != nil {
			return nil, fmt.Errorf("unpack image %s: %w", key.image, err)
		}
	}
	ispec, err := img.Spec(ctx)
	if err != nil {
		return nil, fmt.Errorf("image %s config: %w", key.image, err)
	}
	id := newID()
	w = &warmContainer{id: id, dir: filepath.Join(r.opts.stateDir, id), created: time.Now(), memory: key.limits.MemoryBytes}
	w.box = filepath.Join(w.dir, "box")
	defer func() {
		if retErr != nil {
			p.destroy(w)
			w = nil
		}
	}()
	if err := prepareBox(w.dir, w.box, nil); err != nil {
		return w, err
	}
	w.report, err = openReport(filepath.Join(w.box, reportName), r.opts.maxResultBytes)
	if err != nil {
		return w, err
	}
	w.deadline = w.created.Add(p.opts.maxAge + warmDeadlineSlack).UTC()
	labels := map[string]string{LabelRun: "1", LabelPool: p.owner, LabelDeadline: w.deadline.Format(time.RFC3339Nano)}
	plan := specPlan{
		limits:     key.limits,
		env:        ispec.Config.Env,
		cwd:        ispec.Config.WorkingDir,
		imageUser:  ispec.Config.User,
		user:       key.user,
		sandboxDir: w.box,
		hostname:   "skill",
	}
	// Each step runs to its end (see Runner.Run): a cancelled caller must
	// not leave the daemon half-way through creating something.
	stepCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stepTimeout)
	defer cancel()
	w.container, err = r.client.NewContainer(stepCtx, id,
		client.WithImage(img),
		client.WithSnapshotter(r.opts.snapshotter),
		client.WithNewSnapshotView(id, img, snapshots.WithLabels(labels)),
		client.WithRuntime(r.opts.runtime, nil),
		client.WithContainerLabels(labels),
		client.WithNewSpec(specOpts(plan)...),
	)
	if err != nil {
		return w, fmt.Errorf("create container: %w", err)
	}
	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		return w, err
	}
	w.stdin, w.stdinR = stdinW, stdinR
	w.stdout, w.stderr = &lateWriter{}, &lateWriter{}
	w.task, err = w.container.NewTask(stepCtx, cio.NewCreator(cio.WithStreams(stdinR, w.stdout, w.stderr), cio.WithFIFODir(filepath.Join(w.dir, "io"))))
	if err != nil {
		if strings.Contains(err.Error(), "executable file not found") {
			return w, fmt.Errorf("image %s has no python3 on PATH: %w", key.image, errdefs.ErrFailedPrecondition)
		}
		return w, fmt.Errorf("create task: %w", err)
	}
	// The exit is collected whoever waits: a context of the pool's own.
	w.exitC, err = w.task.Wait(p.r.namespaced(context.Background()))
	if err != nil {
		return w, fmt.Errorf("wait task: %w", err)
	}
	if r.opts.loopbackUp {
		if err := loopbackUp(int(w.task.Pid())); err != nil {
			return w, fmt.Errorf("network namespace of run %s: %w", id, err)
		}
	}
	if err := w.task.Start(stepCtx); err != nil {
		return w, fmt.Errorf("start task: %w", err)
	}
	return w, nil
}

// alive reports whether w's runner still waits (it has not exited).
func (w *warmContainer) alive() bool {
	select {
	case <-w.exitC:
		return false
	default:
		return true
	}
}

// runIn hands the job to w, waits for the end of the run within its
// deadline and collects the result; w is destroyed on every path.
func (p *Pool) runIn(ctx context.Context, w *warmContainer, req Request, limits Limits, inputs []byte) (res Result, retErr error) {
	defer func() {
		if err := p.destroy(w); err != nil {
			retErr = errors.Join(retErr, fmt.Errorf("clean up run %s: %w", w.id, err))
		}
	}()
	stdout := newCappedBuffer(limits.OutputLimitBytes, req.Stdout)
	stderr := newCappedBuffer(limits.OutputLimitBytes, req.Stderr)
	w.stdout.set(stdout)
	w.stderr.set(stderr)

	// The runner reads its code only after the inputs line: the code file
	// is complete (renamed into place) before the line is written.
	tmp := filepath.Join(w.box, ".code")
	if err := os.WriteFile(tmp, req.Code, 0o444); err != nil {
		return res, fmt.Errorf("write code: %w", err)
	}
	if err := os.Chmod(tmp, 0o444); err != nil {
		return res, err
	}
	if err := os.Rename(tmp, filepath.Join(w.box, codeName)); err != nil {
		return res, fmt.Errorf("write code: %w", err)
	}
	// Another process's Sweep must not take a run past the warm
	// container's deadline label for an orphan.
	if d := time.Now().Add(limits.Timeout); d.After(w.deadline) {
		labels := map[string]string{LabelDeadline: d.Add(warmDeadlineSlack).UTC().Format(time.RFC3339Nano)}
		if _, err := w.container.SetLabels(ctx, labels); err != nil {
			return res, fmt.Errorf("label run %s: %w", w.id, err)
		}
	}
	start := time.Now()
	timer := time.NewTimer(limits.Timeout)
	defer timer.Stop()
	if _, err := w.stdin.Write(inputs); err != nil {
		return res, fmt.Errorf("hand the job to run %s: %w", w.id, err)
	}

	var status client.ExitStatus
	select {
	case status = <-w.exitC:
	case <-timer.C:
		res.TimedOut = true
		var err error
		status, err = p.r.killAndWait(ctx, w.task, w.exitC)
		if err != nil {
			return res, err
		}
	case <-ctx.Done():
		if _, err := p.r.killAndWait(ctx, w.task, w.exitC); err != nil {
			return res, errors.Join(ctx.Err(), err)
		}
		return res, fmt.Errorf("run cancelled: %w", ctx.Err())
	}
	res.Duration = time.Since(start)
	if err := status.Error(); err != nil {
		return res, fmt.Errorf("wait for run %s: %w", w.id, err)
	}

	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	oom, err := oomKilled(cctx, w.task)
	if err != nil {
		return res, err
	}
	res.OOMKilled = oom
	if _, err := w.task.Delete(cctx); err != nil && !errdefs.IsNotFound(err) {
		return res, fmt.Errorf("delete task: %w", err)
	}
	rep, repErr := w.report.finish()
	res.ExitCode = int(status.ExitCode())
	res.Stdout = toValidUTF8(stdout.Bytes())
	res.Stderr = toValidUTF8(stderr.Bytes())
	res.Truncated = stdout.Truncated() || stderr.Truncated()
	res.Result, res.Error = interpret(res, limits, rep, repErr, p.r.opts.maxResultBytes)
	return res, nil
}

// destroy removes w's task, container, snapshot and state directory.
func (p *Pool) destroy(w *warmContainer) error {
	ctx, cancel := context.WithTimeout(p.r.namespaced(context.Background()), cleanupTimeout)
	defer cancel()
	var errs []error
	if w.task != nil {
		if _, err := w.task.Delete(ctx, client.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete task: %w", err))
		}
		if w.task.IO() != nil {
			w.task.IO().Close()
		}
	}
	if w.stdin != nil {
		w.stdin.Close()
		w.stdinR.Close()
	}
	if w.container != nil {
		if err := removeContainer(ctx, w.container); err != nil {
			errs = append(errs, err)
		}
	} else if w.id != "" {
		// A NewContainer that failed half-way may have left its view.
		if c, err := p.r.client.LoadContainer(ctx, w.id); err == nil {
			_ = removeContainer(ctx, c)
		}
		if sn := p.r.client.SnapshotService(p.r.opts.snapshotter); sn != nil {
			_ = sn.Remove(ctx, w.id)
		}
	}
	if w.report != nil {
		w.report.close()
	}
	if w.dir != "" {
		if err := os.RemoveAll(w.dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// lateWriter forwards to a writer set when a run takes the container;
// what comes before (nothing, normally: the runner prints nothing while it
// waits) is kept, up to a small limit, and forwarded first.
type lateWriter struct {
	mu  sync.Mutex
	w   io.Writer
	pre bytes.Buffer
}

const lateWriterPre = 64 << 10

func (l *lateWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.w != nil {
		return l.w.Write(b)
	}
	if room := lateWriterPre - l.pre.Len(); room > 0 {
		l.pre.Write(b[:min(len(b), room)])
	}
	return len(b), nil
}

func (l *lateWriter) set(w io.Writer) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.pre.Len() > 0 {
		w.Write(l.pre.Bytes())
		l.pre.Reset()
	}
	l.w = w
}
