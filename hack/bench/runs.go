package main

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/skillbuild/skillbuild/skill/api"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Column keys of the run table.
const (
	colSBRun  = "skillbuild run"
	colCtr    = "ctr run --rm"
	colPodman = "podman run --rm --network none --read-only"
)

// runner runs print(1) once in the skill's image.
type runner interface {
	key() string
	run(ctx context.Context) (result, error)
}

type sbRunner struct {
	b    *bench
	root string
	id   string
	wrap []string
	// debug runs with --debug: the runtime writes how long each step of
	// the run took to stderr (see runProfile).
	debug bool
	// image, if set, runs in that image (--image) rather than the skill's.
	image string
	// bin, if set, is the skillbuild binary to run (default: -bin).
	bin string
	// peak starts it under hack/peakrss, for its own peak RSS.
	peak bool
	// host, if set, sends the run to that server (--host).
	host string
}

func (s *sbRunner) key() string { return colSBRun }

func (s *sbRunner) run(ctx context.Context) (result, error) {
	args := []string{"run", "--json", "-c", "print(1)", s.id}
	if s.image != "" {
		args = append(args[:len(args)-1], "--image", s.image, s.id)
	}
	if s.debug {
		args = append([]string{"--debug"}, args...)
	}
	if s.host != "" {
		args = append([]string{"--host", s.host}, args...)
	}
	argv := append(append([]string{}, s.wrap...), s.b.sbArgsBin(s.bin, s.root, args...)...)
	start := s.b.exec
	if s.peak {
		start = s.b.execPeak
	}
	r, err := start(ctx, nil, argv)
	if err != nil {
		return r, err
	}
	var doc api.RunResult
	if err := json.Unmarshal(r.stdout, &doc); err != nil {
		return r, fmt.Errorf("run --json output: %w", err)
	}
	if doc.ExitCode == nil || doc.Exit() != 0 || strings.TrimSpace(doc.Stdout) != "1" {
		return r, fmt.Errorf("run printed %q, exit %d, error %+v", doc.Stdout, doc.Exit(), doc.Error)
	}
	return r, nil
}

var containerSeq atomic.Int64

type ctrRunner struct {
	b   *bench
	ref string
}

func (c *ctrRunner) key() string { return colCtr }

func (c *ctrRunner) run(ctx context.Context) (result, error) {
	id := fmt.Sprintf("sb-bench-ctr-%d-%d", os.Getpid(), containerSeq.Add(1))
	r, err := c.b.exec(ctx, nil, c.b.ctrArgs("run", "--rm", c.ref, id, "python3", "-c", "print(1)"))
	if err == nil && strings.TrimSpace(string(r.stdout)) != "1" {
		err = fmt.Errorf("ctr run printed %q", r.stdout)
	}
	return r, err
}

type podmanRunner struct {
	b   *bench
	ref string
}

func (p *podmanRunner) key() string { return colPodman }

func (p *podmanRunner) run(ctx context.Context) (result, error) {
	argv := append(p.b.podmanArgs(), "run", "--rm", "--network", "none", "--read-only",
		"--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", p.ref, "python3", "-c", "print(1)")
	r, err := p.b.exec(ctx, nil, argv)
	if err == nil && strings.TrimSpace(string(r.stdout)) != "1" {
		err = fmt.Errorf("podman run printed %q", r.stdout)
	}
	return r, err
}

// runCell is one column of the run table.
type runCell struct {
	latency    []time.Duration
	rss        []int64 // KiB, skillbuild only
	throughput []float64
	err        error
	// load is the load average after the latency runs and after the
	// concurrent batches (the same for every column: they interleave).
	load [2]string
	// profile is the median time of each step of `skillbuild run`
	// (skillbuild's column only; see runProfile).
	profile []stepTime
}

// stepTime is the median duration of one step of a run.
type stepTime struct {
	step string
	d    time.Duration
	n    int
}

// runTable prepares the skill image in containerd (and in podman's
// storage), then measures each runner's sequential latency and its
// throughput at the configured concurrency.
func (b *bench) runTable(ctx context.Context, root string) (map[string]*runCell, []string, error) {
	const id = "runbench"
	sb := &sbBuilder{b: b}
	if _, err := sb.build(ctx, root, id, pins(core(10)), false); err != nil {
		return nil, nil, fmt.Errorf("build the run image: %w", err)
	}
	ref := "docker.io/library/atom-skill:" + id + "-v1"
	runners := []runner{&sbRunner{b: b, root: root, id: id}, &ctrRunner{b: b, ref: ref}}
	if b.podman {
		archive := filepath.Join(b.dir, "runbench.tar")
		if _, err := b.exec(ctx, nil, b.ctrArgs("images", "export", archive, ref)); err != nil {
			return nil, nil, fmt.Errorf("export the run image for podman: %w", err)
		}
		if _, err := b.exec(ctx, nil, append(b.podmanArgs(), "load", "-i", archive)); err != nil {
			return nil, nil, fmt.Errorf("load the run image into podman: %w", err)
		}
		runners = append(runners, &podmanRunner{b: b, ref: ref})
	}
	cells := map[string]*runCell{}
	var order []string
	for _, r := range runners {
		order = append(order, r.key())
		cell := &runCell{}
		cells[r.key()] = cell
		if _, err := r.run(ctx); err != nil { // warm-up
			cell.err = fmt.Errorf("warm-up: %w", err)
			b.say("  %s: warm-up failed: %v", r.key(), err)
		}
	}
	// Sequential latency, interleaved run by run.
	for i := range b.o.runLatency {
		for _, r := range runners {
			cell := cells[r.key()]
			if cell.err != nil {
				continue
			}
			res, err := r.run(ctx)
			if err != nil {
				cell.err = fmt.Errorf("run %d: %w", i+1, err)
				b.say("  %s run %d failed: %v", r.key(), i+1, err)
				continue
			}
			cell.latency = append(cell.latency, res.wall)
		}
	}
	// skillbuild run's peak RSS, from untimed runs under hack/peakrss: the
	// timed runs' wait4 readings start at this process's own peak.
	if c := cells[colSBRun]; c.err == nil {
		peak := *runners[0].(*sbRunner)
		peak.peak = true
		for range 3 {
			if res, err := peak.run(ctx); err == nil {
				c.rss = append(c.rss, res.maxRSS)
			}
		}
	}
	load := loadAvg()
	for _, r := range runners {
		cells[r.key()].load[0] = load
		if c := cells[r.key()]; c.err == nil {
			b.say("  %-44s print(1) p50 %s p95 %s (load %s)", r.key(), pct(c.latency, 50).Round(time.Millisecond), pct(c.latency, 95).Round(time.Millisecond), load)
		}
	}
	// Throughput: batches of concurrency runs started together.
	for i := range b.o.runs {
		for _, r := range runners {
			cell := cells[r.key()]
			if cell.err != nil {
				continue
			}
			rate, err := b.burst(ctx, r)
			if err != nil {
				cell.err = fmt.Errorf("concurrent batch %d: %w", i+1, err)
				b.say("  %s concurrent batch %d failed: %v", r.key(), i+1, err)
				continue
			}
			cell.throughput = append(cell.throughput, rate)
			b.say("  %-44s %d concurrent: %.2f runs/s (load %s)", r.key(), b.o.concurrency, rate, loadAvg())
		}
	}
	load = loadAvg()
	for _, c := range cells {
		c.load[1] = load
	}
	if c := cells[colSBRun]; c.err == nil {
		c.profile = b.runProfile(ctx, &sbRunner{b: b, root: root, id: id, debug: true}, 10)
	}
	return cells, order, nil
}

// runProfile runs `skillbuild --debug run` n times and returns the median
// time of each step the runtime reports ("run <id> <step> <duration>" on
// stderr), in the order of the steps.
func (b *bench) runProfile(ctx context.Context, r *sbRunner, n int) []stepTime {
	times := map[string][]time.Duration{}
	var order []string
	for range n {
		res, err := r.run(ctx)
		if err != nil {
			b.say("  run profile: %v", err)
			return nil
		}
		for _, line := range strings.Split(string(res.stderr), "\n") {
			f := strings.Fields(line)
			if len(f) != 4 || f[0] != "run" {
				continue
			}
			d, err := time.ParseDuration(f[3])
			if err != nil {
				continue
			}
			if _, ok := times[f[2]]; !ok {
				order = append(order, f[2])
			}
			times[f[2]] = append(times[f[2]], d)
		}
	}
	var out []stepTime
	for _, s := range order {
		out = append(out, stepTime{step: s, d: median(times[s]), n: len(times[s])})
	}
	return out
}

// burst starts concurrency runs at once and returns runs per second over
// the whole batch (first start to last exit).
func (b *bench) burst(ctx context.Context, r runner) (float64, error) {
	n := b.o.concurrency
	jobs := make(chan struct{}, n)
	for range n {
		jobs <- struct{}{}
	}
	close(jobs)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	t0 := time.Now()
	for range b.o.concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				if _, err := r.run(ctx); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return 0, firstErr
	}
	return float64(n) / time.Since(t0).Seconds(), nil
}

// runNotes writes the load averages of the run table and the profile of
// `skillbuild run` under it.
func (rep *report) runNotes(sb *strings.Builder) {
	c := rep.runCells[colSBRun]
	if c == nil {
		return
	}
	if c.load[0] != "" {
		fmt.Fprintf(sb, "\nLoad average (1, 5, 15 min) after the latency runs: %s; after the concurrent batches: %s.\n", c.load[0], c.load[1])
	}
	if len(c.profile) == 0 {
		return
	}
	sb.WriteString("\nWhere a `skillbuild run` spends its time (`skillbuild --debug run`, median of 10 runs after the table):\n\n| step | median |\n|---|---|\n")
	for _, s := range c.profile {
		fmt.Fprintf(sb, "| %s | %s |\n", s.step, s.d.Round(100*time.Microsecond))
	}
}
