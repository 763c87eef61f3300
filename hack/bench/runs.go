package main

import (
	"context"
	"encoding/json"
	"fmt"
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
}

func (s *sbRunner) key() string { return colSBRun }

func (s *sbRunner) run(ctx context.Context) (result, error) {
	argv := append(append([]string{}, s.wrap...), s.b.sbArgs(s.root, "run", "--json", "-c", "print(1)", s.id)...)
	r, err := s.b.exec(ctx, nil, argv)
	if err != nil {
		return r, err
	}
	var doc struct {
		ExitCode int             `json:"exit_code"`
		Stdout   string          `json:"stdout"`
		Error    json.RawMessage `json:"error"` // null, or {type, message, traceback}
	}
	if err := json.Unmarshal(r.stdout, &doc); err != nil {
		return r, fmt.Errorf("run --json output: %w", err)
	}
	if doc.ExitCode != 0 || strings.TrimSpace(doc.Stdout) != "1" {
		return r, fmt.Errorf("run printed %q, exit %d, error %s", doc.Stdout, doc.ExitCode, doc.Error)
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
			cell.rss = append(cell.rss, res.maxRSS)
		}
	}
	for _, r := range runners {
		if c := cells[r.key()]; c.err == nil {
			b.say("  %-44s print(1) p50 %s p95 %s", r.key(), pct(c.latency, 50).Round(time.Millisecond), pct(c.latency, 95).Round(time.Millisecond))
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
			b.say("  %-44s %d concurrent: %.2f runs/s", r.key(), b.o.concurrency, rate)
		}
	}
	return cells, order, nil
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
