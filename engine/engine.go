package engine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	ctd "github.com/containerd/containerd/v2/client"
	"github.com/moby/buildkit/cache/remotecache"
	registrycache "github.com/moby/buildkit/cache/remotecache/registry"
	bkclient "github.com/moby/buildkit/client"
	"github.com/moby/buildkit/cmd/buildkitd/config"
	"github.com/moby/buildkit/control"
	"github.com/moby/buildkit/frontend"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/solver"
	"github.com/moby/buildkit/solver/bboltcachestorage"
	"github.com/moby/buildkit/util/db/boltutil"
	"github.com/moby/buildkit/util/disk"
	"github.com/moby/buildkit/util/resolver"
	"github.com/moby/buildkit/worker"
	"github.com/moby/buildkit/worker/base"
	"github.com/skillbuild/skillbuild/layers"
	"github.com/skillbuild/skillbuild/store"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
)

// Engine is BuildKit running inside the skillbuild process: a control
// server with one containerd worker, served over an in-memory connection
// and driven through the ordinary BuildKit client.
type Engine struct {
	opts   options
	lock   *stateLock
	ctrl   *control.Controller
	srv    *grpc.Server
	lis    *bufconn.Listener
	client *bkclient.Client
	ctd    *ctd.Client
	tmpDir string
	oldTmp string
	hadTmp bool
	closed bool
	cg     *buildCgroup
	worker *base.Worker
	remote bool // a buildkitd elsewhere: only clients here (remote.go)
	// fetch is the policy every llb.HTTP fetch goes through.
	fetch *fetchPolicy
	// gcPolicy is BuildKit's default cache policy for this disk, applied
	// by dailyGC.
	gcPolicy []bkclient.PruneInfo
}

// gcInterval is how often closing an engine applies the cache policy.
const gcInterval = 24 * time.Hour

// dailyGC applies the default cache policy when it last ran more than
// gcInterval ago (bounded to a minute), recording when in the state root.
// A root's first close only starts the clock: a root without the stamp is
// new, and its cache is all this process's builds (sizing every record
// then took 250-300 ms off the end of every first build).
func (e *Engine) dailyGC() error {
	stamp := filepath.Join(e.opts.root, "gc.stamp")
	st, err := os.Stat(stamp)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return writeGCStamp(stamp)
	case err == nil && time.Since(st.ModTime()) < gcInterval:
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ch := make(chan bkclient.UsageInfo)
	go func() {
		for range ch {
		}
	}()
	err = e.worker.Prune(ctx, ch, e.gcPolicy...)
	close(ch)
	err = errors.Join(err, layers.PruneLists(filepath.Join(e.opts.root, layers.ListDir), layers.ListMaxAge))
	if err != nil {
		return fmt.Errorf("build cache gc: %w", err)
	}
	return writeGCStamp(stamp)
}

// writeGCStamp records now as the time of the last cache gc.
func writeGCStamp(stamp string) error {
	return os.WriteFile(stamp, []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o600)
}

// New starts an embedded BuildKit engine against the containerd at the
// configured address. Only one engine may use a state root at a time: New
// waits for the root's lock (reporting the wait through the WithLockWait
// callback) up to the lock timeout.
func New(ctx context.Context, opts ...Opt) (_ *Engine, retErr error) {
	o := defaultOptions()
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if remoteBuilder(o.builder) {
		return newRemote(ctx, o)
	}
	stateDir := filepath.Join(o.root, "buildkit")
	if o.builder == BuilderEmbeddedOCI {
		// Its own cache database: records of one worker mean nothing to
		// the other.
		stateDir = filepath.Join(stateDir, "oci")
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("create state dir: %w", err)
	}
	lk, err := acquireLock(ctx, filepath.Join(o.root, "lock"), o.lockTimeout, o.onLockWait)
	if err != nil {
		return nil, err
	}
	defer func() {
		if retErr != nil {
			lk.release()
		}
	}()

	// The OCI worker needs no containerd; one is dialled only to load a
	// result into it.
	var c *ctd.Client
	switch {
	case o.builder == BuilderEmbedded && o.client != nil:
		c = o.client
	case o.builder == BuilderEmbedded:
		if c, err = store.Dial(ctx, o.address, o.namespace); err != nil {
			return nil, err
		}
		defer func() {
			if retErr != nil {
				c.Close()
			}
		}()
	}

	// BuildKit creates per-mount temporary directories (SSH sockets) in
	// $TMPDIR; keep them inside our state root instead of littering /tmp.
	tmpDir := o.tmpDir
	if tmpDir == "" {
		tmpDir = filepath.Join(o.root, "tmp")
	}
	if err := checkSocketDir(tmpDir); err != nil {
		return nil, err
	}
	if err := unmountState(o.root); err != nil {
		return nil, fmt.Errorf("unmount leftovers of an interrupted build under %s: %w", o.root, err)
	}
	if err := os.RemoveAll(tmpDir); err != nil {
		return nil, fmt.Errorf("clean tmp dir: %w", err)
	}
	if err := os.MkdirAll(tmpDir, 0o700); err != nil {
		return nil, fmt.Errorf("create tmp dir: %w", err)
	}
	oldTmp, hadTmp := os.LookupEnv("TMPDIR")
	os.Setenv("TMPDIR", tmpDir)

	e := &Engine{opts: o, lock: lk, ctd: c, tmpDir: tmpDir, oldTmp: oldTmp, hadTmp: hadTmp}
	if e.opts.cgroupParent == "" && !e.opts.noCgroups {
		cg, err := newBuildCgroup(o.cgroupBase, o.root)
		if err != nil {
			e.Close()
			return nil, err
		}
		e.cg = cg
		e.opts.cgroupParent = cg.name
	}
	if err := e.start(ctx, stateDir); err != nil {
		e.Close()
		return nil, err
	}
	if err := e.sweepIfInterrupted(ctx); err != nil {
		e.Close()
		return nil, err
	}
	return e, nil
}

// cleanMarker names the file a closing engine leaves in the state root
// once it has swept up after itself; the next engine removes it when it
// starts, so its absence means the last engine did not close cleanly.
const cleanMarker = "closed-clean"

// sweepIfInterrupted clears what a process killed mid-build leaves (step
// containers, staging images, mounts) before building again. After a
// clean close there is nothing to clear, and the sweep (a containerd
// round trip per container in the namespace) is skipped.
func (e *Engine) sweepIfInterrupted(ctx context.Context) error {
	if err := os.Remove(filepath.Join(e.opts.root, cleanMarker)); err == nil {
		return nil
	}
	if err := e.sweep(ctx); err != nil {
		return fmt.Errorf("clean up after an interrupted build: %w", err)
	}
	return nil
}

// historyEntries is how many of BuildKit's build history records the
// state root keeps: none. Recording one (an SLSA provenance of the result,
// the progress stream imported as a blob, database updates, leases) took
// 85-125 ms between the export's end and the solve's return on every
// build, for records nothing in skillbuild reads. Records an older version
// left are still removed by prune --all.
var historyEntries int64

// start brings BuildKit up in stages: the worker on the engine's
// containerd connection, the cache policy, the controller with its
// databases, and the in-memory gRPC connection the client uses.
func (e *Engine) start(ctx context.Context, stateDir string) error {
	newWorkerOpt := e.workerOpt
	if e.opts.builder == BuilderEmbeddedOCI {
		newWorkerOpt = e.ociWorkerOpt
	}
	wopt, startupDone, err := newWorkerOpt(ctx, stateDir)
	if err != nil {
		return fmt.Errorf("%s worker: %w", e.opts.builder, err)
	}
	e.gcPolicy = gcPolicy(stateDir)
	wopt.RegistryHosts = resolver.NewRegistryConfig(e.opts.registries)
	// What the worker and the controller load at start (cache records,
	// cached results) is answered from listings taken in newWorkerOpt;
	// everything after goes to containerd.
	w, err := base.NewWorker(ctx, wopt)
	if err != nil {
		startupDone()
		wopt.MetadataStore.Close()
		return fmt.Errorf("buildkit worker: %w", err)
	}
	e.worker = w
	if e.fetch, err = useFetchPolicy(w); err != nil {
		startupDone()
		return err
	}
	err = e.newController(ctx, stateDir)
	startupDone()
	if err != nil {
		return err
	}
	return e.serve(ctx)
}

// gcPolicy is BuildKit's default cache policy for the disk of stateDir.
// No background GC: BuildKit fires it a second after start and after
// solves, so in a CLI process it would compete with the build it serves
// (sizing every cache record) and race the database's close. The policy
// runs instead when the engine closes, at most once a day (see Close),
// and on demand with `skillbuild prune`.
func gcPolicy(stateDir string) []bkclient.PruneInfo {
	var policy []bkclient.PruneInfo
	dstat, _ := disk.GetDiskStat(stateDir)
	for _, rule := range config.DefaultGCPolicy(config.GCConfig{}, dstat) {
		policy = append(policy, bkclient.PruneInfo{
			Filter:        rule.Filters,
			All:           rule.All,
			KeepDuration:  rule.KeepDuration.Duration,
			ReservedSpace: rule.ReservedSpace.AsBytes(dstat),
			MaxUsedSpace:  rule.MaxUsedSpace.AsBytes(dstat),
			MinFreeSpace:  rule.MinFreeSpace.AsBytes(dstat),
		})
	}
	return policy
}

// newController opens the build cache and history databases and starts
// BuildKit's controller over the engine's one worker.
func (e *Engine) newController(ctx context.Context, stateDir string) error {
	w := e.worker
	// The registry cache reaches registries as the worker does.
	hosts := resolver.NewRegistryConfig(e.opts.registries)
	wc := &worker.Controller{}
	if err := wc.Add(w); err != nil {
		return err
	}
	sm, err := session.NewManager()
	if err != nil {
		wc.Close()
		return err
	}
	cacheStorage, err := bboltcachestorage.NewStore(filepath.Join(stateDir, "cache.db"))
	if err != nil {
		wc.Close()
		return fmt.Errorf("open build cache: %w", err)
	}
	historyDB, err := boltutil.SafeOpen(filepath.Join(stateDir, "history.db"), 0o600, &bolt.Options{
		FreelistType:   bolt.FreelistMapType,
		NoFreelistSync: true,
	})
	if err != nil {
		cacheStorage.Close()
		wc.Close()
		return fmt.Errorf("open build history: %w", err)
	}
	ctrl, err := control.NewController(control.Opt{
		SessionManager:   sm,
		WorkerController: wc,
		Frontends:        map[string]frontend.Frontend{},
		ResolveCacheExporterFuncs: map[string]remotecache.ResolveCacheExporterFunc{
			"registry": registrycache.ResolveCacheExporterFunc(sm, hosts),
		},
		ResolveCacheImporterFuncs: map[string]remotecache.ResolveCacheImporterFunc{
			"registry": registrycache.ResolveCacheImporterFunc(sm, w.ContentStore(), hosts),
		},
		CacheManager:   solver.NewCacheManager(ctx, "local", cacheStorage, worker.NewCacheResultStorage(wc)),
		HistoryDB:      historyDB,
		CacheStore:     cacheStorage,
		LeaseManager:   w.LeaseManager(),
		ContentStore:   w.ContentStore(),
		GarbageCollect: w.GarbageCollect,
		HistoryConfig:  &config.HistoryConfig{MaxAge: config.Duration{Duration: 24 * time.Hour}, MaxEntries: &historyEntries},
	})
	if err != nil {
		historyDB.Close()
		cacheStorage.Close()
		wc.Close()
		return fmt.Errorf("buildkit controller: %w", err)
	}
	e.ctrl = ctrl
	return nil
}

// serve serves the controller on an in-memory listener and connects the
// BuildKit client to it.
func (e *Engine) serve(ctx context.Context) error {
	e.lis = bufconn.Listen(1 << 20)
	e.srv = grpc.NewServer(grpc.MaxRecvMsgSize(64<<20), grpc.MaxSendMsgSize(64<<20))
	e.ctrl.Register(e.srv)
	go e.srv.Serve(e.lis) //nolint:errcheck // ends with Stop

	cl, err := bkclient.New(ctx, "", bkclient.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
		return e.lis.DialContext(ctx)
	}), bkclient.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())))
	if err != nil {
		return fmt.Errorf("buildkit client: %w", err)
	}
	e.client = cl
	return nil
}

// Client is the BuildKit client connected to the embedded engine.
func (e *Engine) Client() *bkclient.Client { return e.client }

// Containerd is the containerd client the engine uses, in its namespace.
func (e *Engine) Containerd() *ctd.Client { return e.ctd }

// Close stops the engine and releases the state lock. Only the controller
// is closed: it closes its workers itself.
func (e *Engine) Close() error {
	if e.closed {
		return nil
	}
	e.closed = true
	if e.remote {
		return e.closeRemote()
	}
	var errs []error
	if e.client != nil {
		errs = append(errs, e.client.Close())
	}
	if e.srv != nil {
		e.srv.Stop()
	}
	if e.worker != nil {
		errs = append(errs, e.dailyGC())
	}
	if e.ctrl != nil {
		errs = append(errs, e.ctrl.Close())
	}
	swept := false
	if e.ctd != nil {
		// A cancelled build returns before BuildKit has torn its steps
		// down; finish that here, before the process can exit.
		err := e.sweep(context.Background())
		swept = err == nil
		errs = append(errs, err)
		if e.opts.client == nil {
			errs = append(errs, e.ctd.Close())
		}
	}
	if e.hadTmp {
		os.Setenv("TMPDIR", e.oldTmp)
	} else {
		os.Unsetenv("TMPDIR")
	}
	if err := unmountState(e.opts.root); err != nil {
		errs = append(errs, err)
	} else {
		os.RemoveAll(e.tmpDir)
		if swept && e.ctrl != nil {
			errs = append(errs, os.WriteFile(filepath.Join(e.opts.root, cleanMarker), nil, 0o600))
		}
	}
	e.cg.remove()
	e.lock.release()
	return errors.Join(errs...)
}
