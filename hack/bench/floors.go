package main

// The floors of one container per run: what a run costs at the least, in
// time and in CPU, when every run gets a container of its own, measured
// beside what ctr, skillbuild run and serve pay on the same machine, in
// the same run, with the same image (the Debian python base).

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// cpuacctRoot is the cgroup v1 cpuacct hierarchy: a cgroup's
// cpuacct.usage counts the CPU time of its tasks and of every cgroup below
// it, including those removed meanwhile (the kernel charges the ancestors
// as it charges the task).
const cpuacctRoot = "/sys/fs/cgroup/cpuacct"

// cpuMeter reads where the CPU of the private containerd's work went:
// the daemon's own process, the cgroup the daemon was moved into (the
// daemon, every shim it starts and the runc commands the shims run, up to
// the moment runc moves the container's init into the container's
// cgroup), and the cgroup of the namespace (containerd's default cgroup
// path of a container is /NAMESPACE/ID; the bare runc row uses the same
// parent), which holds everything inside the containers.
type cpuMeter struct {
	daemonPid int
	daemonCg  string // cpuacct cgroup of the daemon and its shims
	nsCg      string // cpuacct cgroup of the containers
}

// cpuSample is one reading of the meter.
type cpuSample struct {
	daemon, daemonCg, inside time.Duration
}

func (m *cpuMeter) sample() cpuSample {
	return cpuSample{daemon: procCPU(m.daemonPid), daemonCg: cgUsage(m.daemonCg), inside: cgUsage(m.nsCg)}
}

// cgUsage is a cpuacct cgroup's cpuacct.usage (0 when unreadable).
func cgUsage(dir string) time.Duration {
	b, err := os.ReadFile(filepath.Join(dir, "cpuacct.usage"))
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return time.Duration(n)
}

// clockTick is USER_HZ, the unit of /proc/PID/stat's times (100 on Linux).
const clockTick = 10 * time.Millisecond

// procCPU is the user+system CPU of a live process and of the children it
// waited for (/proc/PID/stat utime, stime, cutime, cstime).
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which may hold spaces: ") S ppid ...".
	_, rest, ok := strings.Cut(string(b), ") ")
	if !ok {
		return 0
	}
	f := strings.Fields(rest)
	if len(f) < 15 {
		return 0
	}
	var sum int64
	for _, i := range []int{11, 12, 13, 14} { // utime stime cutime cstime (fields 14-17)
		n, _ := strconv.ParseInt(f[i], 10, 64)
		sum += n
	}
	return time.Duration(sum) * clockTick
}

// selfCPU is this process's user+system CPU.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// newCPUMeter moves the private containerd into a cpuacct cgroup of its
// own and makes the namespace's cgroup; undo puts the daemon back and
// removes the daemon's cgroup.
func (b *bench) newCPUMeter() (*cpuMeter, func(), error) {
	pid, err := b.containerdPid()
	if err != nil {
		return nil, nil, err
	}
	m := &cpuMeter{daemonPid: pid, daemonCg: filepath.Join(cpuacctRoot, fmt.Sprintf("sb-bench-daemon-%d", os.Getpid())), nsCg: filepath.Join(cpuacctRoot, namespace)}
	if err := os.MkdirAll(m.nsCg, 0o755); err != nil {
		return nil, nil, fmt.Errorf("cpuacct cgroup of the containers (cgroup v1 cpuacct needed): %w", err)
	}
	if err := os.Mkdir(m.daemonCg, 0o755); err != nil {
		return nil, nil, fmt.Errorf("cpuacct cgroup of containerd: %w", err)
	}
	if err := os.WriteFile(filepath.Join(m.daemonCg, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
		os.Remove(m.daemonCg)
		return nil, nil, fmt.Errorf("move containerd into its cpuacct cgroup: %w", err)
	}
	undo := func() {
		// The daemon and any shim left go back to the root cgroup.
		if b, err := os.ReadFile(filepath.Join(m.daemonCg, "cgroup.procs")); err == nil {
			for _, p := range strings.Fields(string(b)) {
				os.WriteFile(filepath.Join(cpuacctRoot, "cgroup.procs"), []byte(p), 0o644) //nolint:errcheck
			}
		}
		os.Remove(m.daemonCg)
	}
	return m, undo, nil
}

// containerdPid finds the private containerd's process by its config path.
func (b *bench) containerdPid() (int, error) {
	cfg := filepath.Join(b.dir, "containerd", "config.toml")
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(cmd), "\x00"), "\x00")
		if len(args) >= 3 && filepath.Base(args[0]) == "containerd" && args[len(args)-1] == cfg {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("private containerd (--config %s) not found in /proc", cfg)
}

// floorRow is one way of running print(1) in a new container.
type floorRow struct {
	key  string
	what string
	// one runs print(1) once and returns the CPU of the client process
	// (the process the bench waited for, or this process for in-process
	// rows).
	one func(ctx context.Context) (time.Duration, error)
	// clientHoldsInside: the client's CPU includes the container's (bare
	// runc waits for the container's process itself).
	clientHoldsInside bool
	lat               []time.Duration
	rate              []float64
	// CPU summed over the sequential runs.
	n                                int
	client, daemon, shimRunc, inside time.Duration
	err                              error
	// burst runs one concurrent batch; nil: conc runs of one at once.
	burst func(ctx context.Context) (float64, error)
	// cycle (serve): from the run's start until the pool is full again.
	cycle []time.Duration
	// prepare runs before each sequential run, untimed.
	prepare func()
}

// floorsReport is the floors section.
type floorsReport struct {
	rows        []*floorRow
	seq, bursts int
	conc        int
	load        [2]string
	err         error
}

// floorsSection measures the floor rows.
func (b *bench) floorsSection(ctx context.Context) *floorsReport {
	rep := &floorsReport{seq: max(b.o.runLatency/2, 10), bursts: b.o.runs, conc: b.o.concurrency}
	rep.err = b.measureFloors(ctx, rep)
	return rep
}

func (b *bench) measureFloors(ctx context.Context, rep *floorsReport) error {
	meter, undo, err := b.newCPUMeter()
	if err != nil {
		return err
	}
	defer undo()
	root, err := b.newRoot(ctx, "")
	if err != nil {
		return err
	}
	runc, err := b.runcFloor()
	if err != nil {
		return err
	}
	goc, closeGo, err := b.goClientFloor(ctx)
	if err != nil {
		return err
	}
	defer closeGo()
	ctr := &ctrRunner{b: b, ref: baseRef}
	rows := []*floorRow{
		{key: "(a) runc run, no containerd", what: "`runc run` of a bundle on the base's root filesystem (read-only root, runc's default spec: namespaces, no seccomp, no limits); the client column is runc itself", one: runc, clientHoldsInside: true},
		{key: "(b) containerd Go client, in process", what: "one process: view snapshot, container, task create, wait, start, exit, task delete, container and view delete (what ctr does, without its process start; like ctr: no seccomp, no limits, root user, host-default capabilities)", one: goc},
		{key: "(c) ctr run --rm", what: "`ctr run --rm IMAGE ID python3 -c 'print(1)'` (no seccomp, no limits)", one: func(ctx context.Context) (time.Duration, error) { r, err := ctr.run(ctx); return r.cpu, err }},
	}
	// skillbuild run and serve, of -bin and (before/after) -compare-bin.
	type variant struct{ bin, suffix string }
	variants := []variant{{bin: b.o.bin}}
	if b.o.compareBin != "" {
		variants = append(variants, variant{bin: b.o.compareBin, suffix: " [-compare-bin]"})
	}
	var serves []*floorServe
	defer func() {
		for _, s := range serves {
			s.stop()
		}
	}()
	for i, v := range variants {
		vroot := root
		if i > 0 {
			if vroot, err = b.newRoot(ctx, v.bin); err != nil {
				return err
			}
		}
		sbr := &sbRunner{b: b, root: vroot, id: "floor", image: baseRef, bin: v.bin}
		rows = append(rows, &floorRow{key: "(d) skillbuild run" + v.suffix, what: "`skillbuild run --json --image IMAGE -c 'print(1)'`: hardened spec, init, runner, sweep beside the run",
			one: func(ctx context.Context) (time.Duration, error) { r, err := sbr.run(ctx); return r.cpu, err }})
		fs, err := b.newFloorServe(ctx, v.bin, vroot, fmt.Sprintf("serve-floor-%d", i), rep.conc)
		if err != nil {
			return err
		}
		serves = append(serves, fs)
		fs.row.key += v.suffix
		rows = append(rows, fs.row)
	}
	version := &floorRow{key: "(f) skillbuild --version", what: "process start and exit of the skillbuild binary alone, no container: what any CLI run pays before it does anything",
		one: func(ctx context.Context) (time.Duration, error) {
			r, err := b.exec(ctx, nil, []string{b.o.bin, "--version"})
			return r.cpu, err
		}}
	rows = append(rows, version)
	rep.rows = rows
	for _, r := range rows { // warm-up
		if _, err := r.one(ctx); err != nil {
			r.err = fmt.Errorf("warm-up: %w", err)
			b.say("  floor %s: warm-up failed: %v", r.key, err)
		}
		r.lat, r.cycle = nil, nil
	}
	b.say("floors: %d sequential runs per row, interleaved", rep.seq)
	for i := range rep.seq {
		for _, r := range rows {
			if r.err != nil {
				continue
			}
			if r.prepare != nil {
				r.prepare()
			}
			s0 := meter.sample()
			t0 := time.Now()
			c, err := r.one(ctx)
			wall := time.Since(t0)
			s1 := meter.sample()
			if err != nil {
				r.err = fmt.Errorf("run %d: %w", i+1, err)
				b.say("  floor %s run %d failed: %v", r.key, i+1, err)
				continue
			}
			if r.cycle == nil && r.prepare == nil {
				r.lat = append(r.lat, wall)
			}
			r.n++
			in := s1.inside - s0.inside
			d := s1.daemon - s0.daemon
			r.inside += in
			r.daemon += d
			r.shimRunc += s1.daemonCg - s0.daemonCg - d
			if r.clientHoldsInside {
				c -= in
			}
			r.client += c
		}
	}
	rep.load[0] = loadAvg()
	for _, r := range rows {
		if r.err == nil && r.n > 0 {
			b.say("  %-40s p50 %s, CPU per run %s (load %s)", r.key, secs(median(r.lat)), (r.total() / time.Duration(r.n)).Round(100*time.Microsecond), rep.load[0])
		}
	}

	// Throughput: batches of conc started together, rows alternating.
	n := rep.conc
	for _, r := range rows {
		if r.burst == nil {
			one := r.one
			r.burst = func(ctx context.Context) (float64, error) {
				return clients(n, n, func(int) error { _, err := one(ctx); return err })
			}
		}
	}
	for i := range rep.bursts {
		for _, r := range rows {
			if r.err != nil || r == version {
				continue
			}
			rate, err := r.burst(ctx)
			if err != nil {
				r.err = fmt.Errorf("concurrent batch %d: %w", i+1, err)
				b.say("  floor %s batch %d failed: %v", r.key, i+1, err)
				continue
			}
			r.rate = append(r.rate, rate)
			b.say("  %-40s %d concurrent: %.2f runs/s (load %s)", r.key, n, rate, loadAvg())
		}
	}
	rep.load[1] = loadAvg()
	return nil
}

func (r *floorRow) total() time.Duration { return r.client + r.daemon + r.shimRunc + r.inside }

// floorServe is a serve row: a server with 2 warm containers for the
// sequential runs and one with conc warm for the batches.
type floorServe struct {
	row        *floorRow
	seq, burst *serveProc
}

func (f *floorServe) stop() {
	for _, s := range []*serveProc{f.seq, f.burst} {
		if s != nil {
			s.stop() //nolint:errcheck
		}
	}
}

// newFloorServe starts the servers of a serve row of skillbuild binary bin.
func (b *bench) newFloorServe(ctx context.Context, bin, root, name string, conc int) (*floorServe, error) {
	f := &floorServe{}
	var err error
	if f.seq, err = b.startServeBin(ctx, bin, root, name, "--warm-per-skill", "2", "--max-warm", "2"); err != nil {
		return nil, err
	}
	if f.burst, err = b.startServeBin(ctx, bin, root, name+"-16", "--warm-per-skill", strconv.Itoa(conc), "--max-warm", strconv.Itoa(conc)); err != nil {
		f.stop()
		return nil, err
	}
	for _, s := range []*serveProc{f.seq, f.burst} {
		if err := s.print1(); err != nil {
			f.stop()
			return nil, err
		}
	}
	f.burst.quiet(conc) // its start-up must not weigh on the other rows
	f.seq.quiet(2)
	row := &floorRow{key: "(e) serve: warm run + pool replacement", cycle: []time.Duration{},
		what: "`skillbuild serve`, 2 warm: print(1) through the API, then the used container's removal and a replacement created, started and ready; CPU is the whole cycle (the client column is the server process)"}
	seq := f.seq
	row.prepare = func() { seq.quiet(2) }
	row.one = func(ctx context.Context) (time.Duration, error) {
		c0 := procCPU(seq.cmd.Process.Pid)
		t0 := time.Now()
		err := seq.print1()
		row.lat = append(row.lat, time.Since(t0))
		seq.quiet(2)
		row.cycle = append(row.cycle, time.Since(t0))
		return procCPU(seq.cmd.Process.Pid) - c0, err
	}
	burst := f.burst
	row.burst = func(ctx context.Context) (float64, error) {
		burst.quiet(conc)
		rate, err := clients(conc, 4*conc, func(int) error { return burst.print1() })
		burst.quiet(conc) // the refill, untimed, before the next row's batch
		return rate, err
	}
	f.row = row
	return f, nil
}

// runcFloor returns a row function running print(1) with bare runc: one
// bundle per run (its own cgroup path under the namespace's), the base
// root filesystem shared read-only.
func (b *bench) runcFloor() (func(ctx context.Context) (time.Duration, error), error) {
	dir := filepath.Join(b.dir, "runc-floor")
	if err := os.MkdirAll(filepath.Join(dir, "state"), 0o700); err != nil {
		return nil, err
	}
	tmpl := filepath.Join(dir, "template")
	if err := os.MkdirAll(tmpl, 0o755); err != nil {
		return nil, err
	}
	if _, err := b.exec(context.Background(), nil, []string{"runc", "spec", "--bundle", tmpl}); err != nil {
		return nil, err
	}
	raw, err := os.ReadFile(filepath.Join(tmpl, "config.json"))
	if err != nil {
		return nil, err
	}
	var spec map[string]any
	if err := json.Unmarshal(raw, &spec); err != nil {
		return nil, err
	}
	proc := spec["process"].(map[string]any)
	proc["terminal"] = false
	proc["args"] = []string{"python3", "-c", "print(1)"}
	proc["env"] = []string{"PATH=" + sysPath, "HOME=/tmp"}
	spec["root"] = map[string]any{"path": b.o.rootfs, "readonly": true}
	var mu sync.Mutex
	seq := 0
	return func(ctx context.Context) (time.Duration, error) {
		mu.Lock()
		seq++
		id := fmt.Sprintf("sb-bench-runc-%d-%d", os.Getpid(), seq)
		spec["linux"].(map[string]any)["cgroupsPath"] = "/" + namespace + "/" + id
		data, err := json.Marshal(spec)
		mu.Unlock()
		if err != nil {
			return 0, err
		}
		bundle := filepath.Join(dir, id)
		if err := os.Mkdir(bundle, 0o755); err != nil {
			return 0, err
		}
		defer os.RemoveAll(bundle)
		if err := os.WriteFile(filepath.Join(bundle, "config.json"), data, 0o644); err != nil {
			return 0, err
		}
		r, err := b.exec(ctx, nil, []string{"runc", "--root", filepath.Join(dir, "state"), "run", "--bundle", bundle, id})
		if err == nil && strings.TrimSpace(string(r.stdout)) != "1" {
			err = fmt.Errorf("runc run printed %q", r.stdout)
		}
		return r.cpu, err
	}, nil
}

// goClientFloor returns a row function running print(1) through the
// containerd Go client in this process: what a client that does nothing
// else pays (the image's config and chain ID are read once, up front).
func (b *bench) goClientFloor(ctx context.Context) (func(ctx context.Context) (time.Duration, error), func(), error) {
	c, err := client.New(b.sock, client.WithDefaultNamespace(namespace))
	if err != nil {
		return nil, nil, err
	}
	img, err := c.GetImage(ctx, baseRef)
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	ispec, err := img.Spec(ctx)
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	diffIDs, err := img.RootFS(ctx)
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	chain := identity.ChainID(diffIDs)
	var mu sync.Mutex
	seq := 0
	one := func(ctx context.Context) (time.Duration, error) {
		mu.Lock()
		seq++
		id := fmt.Sprintf("sb-bench-go-%d-%d", os.Getpid(), seq)
		mu.Unlock()
		c0 := selfCPU()
		out, err := goClientRun(ctx, c, id, chain, ispec.Config)
		c1 := selfCPU()
		if err == nil && strings.TrimSpace(out) != "1" {
			err = fmt.Errorf("printed %q", out)
		}
		return c1 - c0, err
	}
	return one, func() { c.Close() }, nil
}

// goClientRun runs print(1) in a new container on a view of chain. The
// view is made inside NewContainer, under the lease the client takes for
// it (as ctr's snapshot), so the garbage collector cannot take it before
// the container holds it.
func goClientRun(ctx context.Context, c *client.Client, id string, chain digest.Digest, cfg ocispec.ImageConfig) (string, error) {
	cont, err := c.NewContainer(ctx, id,
		func(ctx context.Context, c *client.Client, cc *containers.Container) error {
			if _, err := c.SnapshotService("overlayfs").View(ctx, id, chain.String()); err != nil {
				return fmt.Errorf("view: %w", err)
			}
			cc.Snapshotter, cc.SnapshotKey = "overlayfs", id
			return nil
		},
		client.WithNewSpec(oci.WithProcessArgs("python3", "-c", "print(1)"), oci.WithEnv(cfg.Env), oci.WithRootFSReadonly()),
	)
	if err != nil {
		c.SnapshotService("overlayfs").Remove(context.WithoutCancel(ctx), id) //nolint:errcheck
		return "", fmt.Errorf("container: %w", err)
	}
	defer cont.Delete(context.WithoutCancel(ctx), client.WithSnapshotCleanup) //nolint:errcheck
	var out bytes.Buffer
	task, err := cont.NewTask(ctx, cio.NewCreator(cio.WithStreams(nil, &out, io.Discard)))
	if err != nil {
		return "", fmt.Errorf("task: %w", err)
	}
	defer task.Delete(context.WithoutCancel(ctx)) //nolint:errcheck
	exitC, err := task.Wait(ctx)
	if err != nil {
		return "", err
	}
	if err := task.Start(ctx); err != nil {
		return "", err
	}
	<-exitC
	if _, err := task.Delete(ctx); err != nil {
		return "", err
	}
	return out.String(), nil
}

// markdown is the floors section of the report.
func (rep *floorsReport) markdown() string {
	var sb strings.Builder
	sb.WriteString("\n## Floors: what one container per run costs at the least\n\n")
	if rep.err != nil {
		fmt.Fprintf(&sb, "failed: %s\n", oneLine(rep.err.Error()))
		return sb.String()
	}
	fmt.Fprintf(&sb, "print(1) in the Debian python base, every row on the same image and the same private containerd, "+
		"interleaved row by row: %d sequential runs per row, then %d batches of %d started together (serve: 4×%d runs from %d clients, 16 warm).\n\n",
		rep.seq, rep.bursts, rep.conc, rep.conc, rep.conc)
	sb.WriteString("| row | what it runs | p50, one at a time | runs/s, " + strconv.Itoa(rep.conc) + " at once (median of batches) | CPU per run: total | client process | containerd | shims + runc | inside the container |\n|---|---|---|---|---|---|---|---|---|\n")
	var ref *floorRow
	for _, r := range rep.rows {
		if strings.HasPrefix(r.key, "(c)") {
			ref = r
		}
	}
	ms := func(d time.Duration, n int) string {
		if n == 0 {
			return "—"
		}
		return fmt.Sprintf("%.1f ms", float64(d)/float64(n)/1e6)
	}
	for _, r := range rep.rows {
		if r.err != nil && r.n == 0 {
			fmt.Fprintf(&sb, "| %s | %s | failed: %s | | | | | | |\n", r.key, r.what, oneLine(r.err.Error()))
			continue
		}
		lat := secs(median(r.lat))
		if len(r.cycle) > 0 {
			lat += fmt.Sprintf(" (cycle until the pool is full again: %s)", secs(median(r.cycle)))
		}
		if ref != nil && r != ref && len(ref.lat) > 0 && len(r.lat) > 0 {
			lat += fmt.Sprintf(", %.2f× ctr", median(r.lat).Seconds()/median(ref.lat).Seconds())
		}
		rate := "—"
		if len(r.rate) > 0 {
			m, lo, hi := floatStats(r.rate)
			rate = fmt.Sprintf("%.2f (%.2f–%.2f)", m, lo, hi)
			if ref != nil && r != ref && len(ref.rate) > 0 {
				rm, _, _ := floatStats(ref.rate)
				rate += fmt.Sprintf(", %.2f× ctr", m/rm)
			}
		}
		if r.err != nil {
			rate += " (then failed: " + oneLine(r.err.Error()) + ")"
		}
		fmt.Fprintf(&sb, "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.key, r.what, lat, rate,
			ms(r.total(), r.n), ms(r.client, r.n), ms(r.daemon, r.n), ms(r.shimRunc, r.n), ms(r.inside, r.n))
	}
	fmt.Fprintf(&sb, "\nLoad average after the sequential runs: %s; after the batches: %s.\n", rep.load[0], rep.load[1])
	sb.WriteString("\nColumns: *p50* is wall clock from the start of the run's client to its exit (serve: the HTTP request; its cycle\n" +
		"adds the wait until the used container is removed and a replacement is ready). *runs/s* is runs over first start to\n" +
		"last exit. CPU is user+system per run, averaged over the sequential runs: *client process* from wait4's rusage of the\n" +
		"process the bench started (in-process rows: this process's getrusage delta; serve: the server process's\n" +
		"/proc/PID/stat delta, including the children it reaped); *containerd* the daemon's own /proc/PID/stat delta (10 ms\n" +
		"ticks, summed over the runs); *shims + runc* a cgroup v1 cpuacct group the bench moves the private containerd into,\n" +
		"which its shims and the runc commands they start inherit, minus the daemon's own share; *inside the container*\n" +
		"cpuacct of /" + namespace + ", the parent of every container's cgroup (runc init once it joined the container's cgroup,\n" +
		"the init, python). The bare runc row's client is runc run, which waits for the container's process: its container\n" +
		"share is taken out of the client column.\n")
	rep.ceiling(&sb)
	return sb.String()
}

// ceilings are what one container per run allows on this machine, as
// ratios to ctr run --rm measured in the same section.
type ceilings struct {
	p50 float64 // CLI latency floor over ctr's p50
	// cpu is the CPU of a CLI run at the floor (in-process client's run
	// plus a process start) over ctr's: steadier than p50 on a busy
	// machine, and a bound on it where the run's steps are CPU work.
	cpu float64
	// rate and serveRate bound runs/s over ctr's where CPU is the bound
	// (16 at once keep every core busy): ctr's CPU per run over the
	// in-process client's run's, and over serve's run + replacement's.
	rate, serveRate float64
	// rateAbs and serveAbs are the runs/s the cores allow (cores over CPU
	// per run) over ctr's runs/s as measured: ctr's batches need not
	// reach its own bound (0: ctr's rate not measured).
	rateAbs, serveAbs float64
}

// ceilings computes them; ok is false when a row they need is missing.
func (rep *floorsReport) ceilings() (c ceilings, ok bool) {
	if rep == nil || rep.err != nil {
		return c, false
	}
	find := func(prefix string) *floorRow {
		for _, r := range rep.rows {
			if r.key == prefix && r.n > 0 && len(r.lat) > 0 {
				return r
			}
		}
		return nil
	}
	goc, ctr, srv, ver := find("(b) containerd Go client, in process"), find("(c) ctr run --rm"), find("(e) serve: warm run + pool replacement"), find("(f) skillbuild --version")
	if goc == nil || ctr == nil || ver == nil {
		return c, false
	}
	c.p50 = (median(goc.lat) + median(ver.lat)).Seconds() / median(ctr.lat).Seconds()
	perRun := func(r *floorRow) float64 { return float64(r.total()) / float64(r.n) }
	c.cpu = (perRun(goc) + perRun(ver)) / perRun(ctr)
	c.rate = perRun(ctr) / perRun(goc)
	if srv != nil {
		c.serveRate = perRun(ctr) / perRun(srv)
	}
	if len(ctr.rate) > 0 {
		cm, _, _ := floatStats(ctr.rate)
		bound := func(r *floorRow) float64 { return float64(runtime.NumCPU()) * float64(time.Second) / perRun(r) }
		c.rateAbs = bound(goc) / cm
		if srv != nil {
			c.serveAbs = bound(srv) / cm
		}
	}
	return c, true
}

// targetRows adds the ceilings to the targets table, each beside the
// target it bounds.
func (rep *floorsReport) targetRows(sb *strings.Builder, conc int) {
	c, ok := rep.ceilings()
	if !ok {
		return
	}
	reach := func(ok bool) string {
		if ok {
			return "reachable"
		}
		return "**out of reach** with one container per run"
	}
	fmt.Fprintf(sb, "| ceiling of `print(1)` p50 (floors: in-process containerd client + the CLI's process start; wall p50 / CPU per run) | ≤ 0.7× %s | %.2f× / %.2f× | %s (judged by CPU, steadier on a shared machine) |\n", colCtr, c.p50, c.cpu, reach(c.cpu <= 0.7))
	fmt.Fprintf(sb, "| ceiling of %d concurrent runs/s (floors: cores over the in-process client's CPU per run, over ctr's measured runs/s / ctr's CPU per run over the client's) | ≥ 1× %s | %.2f× / %.2f× | %s |\n", conc, colCtr, c.rateAbs, c.rate, reach(max(c.rateAbs, c.rate) >= 1))
	if c.serveRate > 0 {
		fmt.Fprintf(sb, "| ceiling of serve's runs/s, %d clients (floors: cores over serve's CPU per run + replacement, over ctr's measured runs/s / ctr's CPU per run over serve's) | ≥ 5× %s | %.2f× / %.2f× | %s |\n", conc, colCtr, c.serveAbs, c.serveRate, reach(max(c.serveAbs, c.serveRate) >= 5))
	}
}

// runcCPU is bare runc's CPU per run, as text.
func runcCPU(r *floorRow) string {
	if r == nil {
		return "not measured"
	}
	return fmt.Sprintf("%.1f ms", float64(r.total())/float64(r.n)/1e6)
}

// ceiling derives what one container per run allows on this machine from
// the rows.
func (rep *floorsReport) ceiling(sb *strings.Builder) {
	find := func(prefix string) *floorRow {
		for _, r := range rep.rows {
			if strings.HasPrefix(r.key, prefix) && r.n > 0 && len(r.lat) > 0 {
				return r
			}
		}
		return nil
	}
	runc, goc, ctr, sbr, srv, ver := find("(a)"), find("(b)"), find("(c)"), find("(d)"), find("(e)"), find("(f)")
	if goc == nil || ctr == nil || ver == nil {
		return
	}
	cores := float64(runtime.NumCPU())
	perRun := func(r *floorRow) float64 { return float64(r.total()) / float64(r.n) / 1e6 } // ms
	sb.WriteString("\n### Ceiling for one container per run on this machine\n\n")
	cliFloor := median(goc.lat) + median(ver.lat)
	fmt.Fprintf(sb, "- CLI latency floor: the in-process client's p50 plus the CLI's own process start = %s + %s = %s, "+
		"**%.2f× ctr run --rm** (goal for `skillbuild run`: ≤ 0.7×).\n",
		secs(median(goc.lat)), secs(median(ver.lat)), secs(cliFloor), cliFloor.Seconds()/median(ctr.lat).Seconds())
	if c, ok := rep.ceilings(); ok {
		fmt.Fprintf(sb, "- The same by CPU, steadier when the machine is busy: the in-process client's run plus a process start cost "+
			"**%.2f× the CPU of a ctr run --rm** (every step of a sequential run waits on the one before, so its wall time does not fall "+
			"below its CPU time by much).\n", c.cpu)
	}
	if runc != nil {
		fmt.Fprintf(sb, "- Below containerd: bare runc p50 %s (%.2f× ctr), %.1f ms CPU per run.\n", secs(median(runc.lat)), median(runc.lat).Seconds()/median(ctr.lat).Seconds(), perRun(runc))
	}
	cpuCeil := func(r *floorRow) float64 { return cores * 1000 / perRun(r) }
	cm := 0.0
	if len(ctr.rate) > 0 {
		cm, _, _ = floatStats(ctr.rate)
	}
	fmt.Fprintf(sb, "- Throughput where CPU is the bound (16 at once keep every core busy): runs/s are at most cores over CPU per run. "+
		"Through containerd with nothing but the in-process client: %.1f ms CPU per run, ≤ %.1f runs/s on %d idle cores; ctr: %.1f ms, ≤ %.1f runs/s "+
		"(measured here: %.2f runs/s, its batches short of its own bound). A design with one container per run can so reach at most "+
		"**%.2f× ctr's measured runs/s**, or %.2f× ctr's at equal efficiency (the ratio of CPU per run, which holds however busy the machine is).\n",
		perRun(goc), cpuCeil(goc), int(cores), perRun(ctr), cpuCeil(ctr), cm, cpuCeil(goc)/cm, perRun(ctr)/perRun(goc))
	if srv != nil && cm > 0 {
		need := cores * 1000 / (5 * cm)
		fmt.Fprintf(sb, "- Serve: %.1f ms CPU per run (run + replacement), ≤ %.1f runs/s on %d idle cores: at most **%.2f× ctr's measured runs/s** "+
			"(%.2f× by the ratio of CPU per run; goal ≥ 5×). 5× ctr's measured rate, %.1f runs/s, needs ≤ %.1f ms CPU per run including the "+
			"container's creation and removal; bare runc alone, without containerd, costs %s.\n",
			perRun(srv), cpuCeil(srv), int(cores), cpuCeil(srv)/cm, perRun(ctr)/perRun(srv), 5*cm, need, runcCPU(runc))
	}
	if sbr != nil {
		fmt.Fprintf(sb, "- `skillbuild run` pays %.1f ms CPU per run beyond the in-process floor (%.1f vs %.1f ms) and %.1f ms beyond ctr.\n",
			perRun(sbr)-perRun(goc), perRun(sbr), perRun(goc), perRun(sbr)-perRun(ctr))
	}
}

// runsMarkdown is the report of -only-runs / -only-floors: the run table
// (if measured), the floors, and the run targets.
func (rep *report) runsMarkdown() string {
	var sb strings.Builder
	sb.WriteString("# Benchmarks: run rows and floors, separate run (`go run ./hack/bench -only-runs`)\n\n## Machine\n\n")
	for _, l := range rep.machine {
		sb.WriteString(l + "\n")
	}
	fmt.Fprintf(&sb, "- whole benchmark: %s\n", rep.total.Round(time.Second))
	if rep.runCells != nil || rep.runErr != nil {
		sb.WriteString("\n## Run\n\n")
		if rep.runErr != nil {
			fmt.Fprintf(&sb, "failed: %s\n", oneLine(rep.runErr.Error()))
		} else {
			rep.runTable(&sb)
		}
	}
	if rep.floors != nil {
		sb.WriteString(rep.floors.markdown())
	}
	rep.targets(&sb)
	return sb.String()
}
