package engine

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/moby/buildkit/executor"
	resourcestypes "github.com/moby/buildkit/executor/resources/types"
	gatewayapi "github.com/moby/buildkit/frontend/gateway/pb"
	"github.com/moby/buildkit/snapshot"
	"github.com/moby/sys/user"
	sbllb "github.com/skillbuild/skillbuild/llb"
)

// Coalescing install steps. A cold build of N distributions runs N
// per-layer install steps at once, each a container (containerd container,
// task, shim, runc) and a Python start for a file operation of a few
// milliseconds: the starts are most of the steps' CPU. The graph keeps one
// step per distribution (a layer's cache key is the base, the venv and
// that one wheel), and the embedded engine's executor runs the install
// steps that arrive together (batchQuiet, batchWindow) as one container:
// the first step's root filesystem is the container's, every other step's
// is bind-mounted at batchDir/<i> with its own mounts below it, and
// batchinstall.py installs each step into its own root (a chroot per
// step, so each writes exactly what it would alone). Every step still gets
// its own result, exit status and log.

// batchQuiet and batchWindow say when the install steps that run
// together are complete: when batchQuiet passed without another one
// arriving, at most batchWindow after the first. BuildKit hands a cold
// build's install steps to the executor over 15-25 ms (each first
// prepares its snapshot), a few ms apart, up to 12 ms at times; a lone
// step (adding one requirement) waits batchQuiet.
const (
	batchQuiet  = 15 * time.Millisecond
	batchWindow = 50 * time.Millisecond
)

// batchMax bounds the steps of one container (its command line, and the
// mounts of one runc).
const batchMax = 32

// batchDir holds, inside a batch's container, the other steps' roots and
// the driver. It is below the first step's /tmp, a tmpfs of that step, so
// no mount point is made in any step's root filesystem.
const batchDir = "/tmp/.skillbuild-batch"

// batchNotBatchable is the exit status batchinstall.py reports for a step
// it cannot install (another installer or venv): the step runs alone.
const batchNotBatchable = 125

// batchStatusPrefix starts batchinstall.py's line for each step.
const batchStatusPrefix = "skillbuild-batch-status "

//go:embed batchinstall.py
var batchInstallScript []byte

// installBatcher is an executor.Executor that runs install steps together
// and everything else (and install steps with nothing to run with) through
// the executor it wraps, unchanged.
type installBatcher struct {
	inner         executor.Executor
	driverDir     string // host directory holding batchinstall.py
	quiet, window time.Duration
	max           int

	mu   sync.Mutex
	open map[string]*installBatch // by batchKey
}

type installBatch struct {
	reqs     []*installRequest
	first    time.Time
	timer    *time.Timer
	launched bool
}

// installRequest is one install step's call of Run.
type installRequest struct {
	ctx     context.Context
	rootfs  executor.Mount
	mounts  []executor.Mount
	process executor.ProcessInfo
	started chan<- struct{}
	done    chan error
}

// newInstallBatcher wraps inner; batchinstall.py is written below root.
func newInstallBatcher(inner executor.Executor, root string) (*installBatcher, error) {
	dir := filepath.Join(root, "batchinstall")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create install batch dir: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "batchinstall.py"), batchInstallScript, 0o644); err != nil {
		return nil, fmt.Errorf("write install batch driver: %w", err)
	}
	return &installBatcher{inner: inner, driverDir: dir, quiet: batchQuiet, window: batchWindow, max: batchMax, open: map[string]*installBatch{}}, nil
}

func (b *installBatcher) Exec(ctx context.Context, id string, process executor.ProcessInfo) error {
	return b.inner.Exec(ctx, id, process)
}

func (b *installBatcher) Run(ctx context.Context, id string, rootfs executor.Mount, mounts []executor.Mount, process executor.ProcessInfo, started chan<- struct{}) (resourcestypes.Recorder, error) {
	key, ok := batchKey(id, mounts, process)
	if !ok {
		return b.inner.Run(ctx, id, rootfs, mounts, process, started)
	}
	r := &installRequest{ctx: ctx, rootfs: rootfs, mounts: mounts, process: process, started: started, done: make(chan error, 1)}
	b.mu.Lock()
	bt := b.open[key]
	if bt == nil {
		bt = &installBatch{first: time.Now()}
		b.open[key] = bt
		bt.timer = time.AfterFunc(b.quiet, func() { b.launch(key, bt) })
	} else {
		bt.timer.Reset(max(0, min(b.quiet, b.window-time.Since(bt.first))))
	}
	bt.reqs = append(bt.reqs, r)
	full := len(bt.reqs) >= b.max
	b.mu.Unlock()
	if full {
		go b.launch(key, bt)
	}
	// A cancelled step waits for its batch: its root filesystem is
	// mounted in the batch's container until that ends (the batch is
	// killed when every step of it is cancelled).
	return nil, <-r.done
}

// launch runs bt once, when its window ends or it is full.
func (b *installBatcher) launch(key string, bt *installBatch) {
	b.mu.Lock()
	if bt.launched {
		b.mu.Unlock()
		return
	}
	bt.launched = true
	if b.open[key] == bt {
		delete(b.open, key)
	}
	reqs := bt.reqs
	b.mu.Unlock()
	if len(reqs) == 1 {
		r := reqs[0]
		_, err := b.inner.Run(r.ctx, "", r.rootfs, r.mounts, r.process, r.started)
		r.done <- err
		return
	}
	b.runBatch(reqs)
}

// batchKey says whether a step is an install step that may run with
// others, and with which: those whose process differs only in the
// installer's arguments and whose mounts are their own.
func batchKey(id string, mounts []executor.Mount, p executor.ProcessInfo) (string, bool) {
	m := p.Meta
	a := m.Args
	if id != "" || p.Stdin != nil || p.Resize != nil || p.Signal != nil || m.Tty || m.Proxy != nil || m.ValidExitCodes != nil || len(m.CDIDevices) > 0 {
		return "", false
	}
	if len(a) < 8 || (len(a)-4)%4 != 0 || a[0] != sbllb.VenvDir+"/bin/python" || a[1] != "-I" || a[2] != "-B" || a[3] != sbllb.WheelInstaller {
		return "", false
	}
	tmp := false
	for _, mt := range mounts {
		d := path.Clean("/" + mt.Dest)
		tmp = tmp || d == "/tmp"
		if d == "/" || d == batchDir || strings.HasPrefix(d, batchDir+"/") {
			return "", false
		}
	}
	if !tmp {
		return "", false
	}
	k := m
	k.Args = a[:4]
	js, err := json.Marshal(k)
	if err != nil {
		return "", false
	}
	return string(js), true
}

// batchStatus is batchinstall.py's report of one step.
type batchStatus struct {
	I      int    `json:"i"`
	Exit   int    `json:"exit"`
	Output string `json:"output"`
}

// runBatch runs reqs (two or more) in one container and answers each.
func (b *installBatcher) runBatch(reqs []*installRequest) {
	// The batch runs until it ends, or until every step is cancelled.
	ctx, cancel := context.WithCancelCause(context.WithoutCancel(reqs[0].ctx))
	defer cancel(nil)
	var live atomic.Int64
	live.Store(int64(len(reqs)))
	for _, r := range reqs {
		stop := context.AfterFunc(r.ctx, func() {
			if live.Add(-1) == 0 {
				cancel(context.Cause(r.ctx))
			}
		})
		defer stop()
	}

	statuses, err := b.runTogether(ctx, reqs)
	var wg sync.WaitGroup
	for i, r := range reqs {
		st, ok := statuses[i]
		switch {
		case ok && st.Exit == 0:
			fmt.Fprintf(r.process.Stdout, "skillbuild: installed in one container with %d other install steps\n", len(reqs)-1)
			r.done <- nil
		case ok && st.Exit != batchNotBatchable && st.Exit < 128:
			io.WriteString(r.process.Stderr, st.Output) //nolint:errcheck
			r.done <- &gatewayapi.ExitError{ExitCode: uint32(st.Exit)}
		case r.ctx.Err() != nil:
			if err == nil {
				err = context.Cause(r.ctx)
			}
			r.done <- err
		default:
			// Not installed by the batch: it could not start, this step
			// has another venv, or its install was killed (the batch's
			// memory limit is one step's, and steps install two at a
			// time on two CPUs). The step runs alone, with what it would
			// have alone; a killed install's partial files are rewritten
			// by the same installer.
			wg.Add(1)
			go func() {
				defer wg.Done()
				// started was closed when the batch started (or failed to).
				_, err := b.inner.Run(r.ctx, "", r.rootfs, r.mounts, r.process, nil)
				r.done <- err
			}()
		}
	}
	wg.Wait()
}

// runTogether runs reqs as one container and returns what batchinstall.py
// reported for each (by index); err is the container's.
func (b *installBatcher) runTogether(ctx context.Context, reqs []*installRequest) (map[int]batchStatus, error) {
	root := reqs[0]
	meta := root.process.Meta
	mounts := append(slices.Clone(root.mounts), executor.Mount{Src: hostBind(b.driverDir), Dest: batchDir + "/driver", Readonly: true})
	// The driver runs jobs installs at once (each one process, one
	// thread). The container gets jobs steps' CPU quota, so each install
	// has what its step would have had; its memory limit stays one step's
	// (an install killed there runs again alone).
	jobs := min(len(reqs), runtime.NumCPU())
	if lr := meta.LinuxResources; lr != nil && lr.CpuQuota > 0 {
		lr = lr.CloneVT()
		lr.CpuQuota *= int64(jobs)
		meta.LinuxResources = lr
	}
	// Every step's started is closed when the container starts, or when
	// it failed to (as the executor does for one step).
	started := make(chan struct{})
	closeStarted := sync.OnceFunc(func() {
		for _, r := range reqs {
			if r.started != nil {
				close(r.started)
			}
		}
	})
	defer closeStarted()
	args := append(slices.Clone(meta.Args[:3]), batchDir+"/driver/batchinstall.py", "--jobs", strconv.Itoa(jobs), meta.Args[3], "--root", "")
	args = append(args, meta.Args[4:]...)
	for i, r := range reqs[1:] {
		prefix := batchDir + "/" + strconv.Itoa(i+1)
		dir, release, err := mountRoot(ctx, r)
		if err != nil {
			return nil, err
		}
		defer release()
		mounts = append(mounts, executor.Mount{Src: hostBind(dir), Dest: prefix, Readonly: meta.ReadonlyRootFS})
		for _, m := range r.mounts {
			m.Dest = path.Join(prefix, m.Dest)
			mounts = append(mounts, m)
		}
		args = append(args, "--root", prefix)
		args = append(args, r.process.Meta.Args[4:]...)
	}
	meta.Args = args

	var stdout bytes.Buffer
	stderr := &fanout{}
	for _, r := range reqs {
		stderr.ws = append(stderr.ws, r.process.Stderr)
	}
	go func() {
		select {
		case <-started:
			closeStarted()
		case <-ctx.Done():
		}
	}()
	_, err := b.inner.Run(ctx, "", root.rootfs, mounts, executor.ProcessInfo{Meta: meta, Stdout: nopCloser{&stdout}, Stderr: nopCloser{stderr}}, started)
	closeStarted()

	statuses := map[int]batchStatus{}
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		js, ok := strings.CutPrefix(sc.Text(), batchStatusPrefix)
		var st batchStatus
		if ok && json.Unmarshal([]byte(js), &st) == nil && st.I >= 0 && st.I < len(reqs) {
			statuses[st.I] = st
		}
	}
	return statuses, err
}

// mountRoot mounts r's root filesystem on the host, for the batch's
// container to bind, and removes the mount points the batch made in it
// afterwards (what the executor does for the root of a step it runs).
func mountRoot(ctx context.Context, r *installRequest) (string, func(), error) {
	ref, err := r.rootfs.Src.Mount(ctx, false)
	if err != nil {
		return "", nil, err
	}
	mnts, release, err := ref.Mount()
	if err != nil {
		return "", nil, err
	}
	lm := snapshot.LocalMounterWithMounts(mnts)
	dir, err := lm.Mount()
	if err != nil {
		if release != nil {
			release() //nolint:errcheck
		}
		return "", nil, err
	}
	clean := executor.MountStubsCleaner(ctx, dir, r.mounts, r.process.Meta.RemoveMountStubsRecursive)
	return dir, func() {
		clean()
		lm.Unmount() //nolint:errcheck
		if release != nil {
			release() //nolint:errcheck
		}
	}, nil
}

// hostBind is a directory of the host as the source of a mount.
type hostBind string

func (h hostBind) Mount(_ context.Context, readonly bool) (executor.MountableRef, error) {
	return hostBindRef{dir: string(h), readonly: readonly}, nil
}

type hostBindRef struct {
	dir      string
	readonly bool
}

func (h hostBindRef) Mount() ([]mount.Mount, func() error, error) {
	opts := []string{"rbind"}
	if h.readonly {
		opts = append(opts, "ro")
	}
	return []mount.Mount{{Type: "bind", Source: h.dir, Options: opts}}, func() error { return nil }, nil
}

func (hostBindRef) IdentityMapping() *user.IdentityMapping { return nil }

// fanout writes to every writer (the batch's own stderr, which only an
// unexpected failure of the driver fills, goes to every step's log).
type fanout struct {
	mu sync.Mutex
	ws []io.Writer
}

func (f *fanout) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, w := range f.ws {
		w.Write(p) //nolint:errcheck
	}
	return len(p), nil
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }
