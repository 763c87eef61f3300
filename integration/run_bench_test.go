package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	sbruntime "github.com/skillbuild/skillbuild/runtime"
)

// The run benchmarks: latency of print(1) from create to result to cleanup,
// and throughput under concurrency. Run them with
//
//	go test ./integration -run '^$' -bench 'Run|Ctr' -benchtime 50x
//
// Each reports p50 and p95 (ms/run) besides Go's mean.

// reportLatency adds p50 and p95 of ds to the benchmark's metrics.
func reportLatency(b *testing.B, ds []time.Duration) {
	b.Helper()
	if len(ds) == 0 {
		return
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	pct := func(p float64) float64 {
		i := int(p*float64(len(s))+0.5) - 1
		i = max(0, min(i, len(s)-1))
		return float64(s[i].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.95), "p95-ms")
}

func benchRunner(b *testing.B) *sbruntime.Runner {
	b.Helper()
	c, err := containerd.New(env.socket, containerd.WithDefaultNamespace(namespace))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	r, err := sbruntime.New(context.Background(), c, sbruntime.WithStateDir(filepath.Join(env.root, "runs")))
	if err != nil {
		b.Fatal(err)
	}
	return r
}

func runPrint1(r *sbruntime.Runner) error {
	res, err := r.Run(context.Background(), sbruntime.Request{Image: env.base, Code: []byte("print(1)")})
	if err != nil {
		return err
	}
	if res.Stdout != "1\n" || res.ExitCode != 0 {
		return fmt.Errorf("unexpected result: %+v", res)
	}
	return nil
}

// BenchmarkRunAPI: runtime.Runner.Run of print(1), one at a time.
func BenchmarkRunAPI(b *testing.B) {
	r := benchRunner(b)
	if err := runPrint1(r); err != nil { // the image is unpacked, caches are warm
		b.Fatal(err)
	}
	ds := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		if err := runPrint1(r); err != nil {
			b.Fatal(err)
		}
		ds = append(ds, time.Since(t0))
	}
	b.StopTimer()
	reportLatency(b, ds)
}

// BenchmarkRunCLI: `skillbuild run -c 'print(1)'`, process start to exit.
func BenchmarkRunCLI(b *testing.B) {
	one := func() {
		out, err := sbCmd("run", "--image", env.base, "-c", "print(1)", "bench").CombinedOutput()
		if err != nil || string(out) != "1\n" {
			b.Fatalf("skillbuild run: %v: %s", err, out)
		}
	}
	measure(b, one)
}

// BenchmarkRunCLIGVisor: BenchmarkRunCLI under gVisor (--runtime
// gvisor), to set beside it (docs/runtimes.md).
func BenchmarkRunCLIGVisor(b *testing.B) {
	if _, err := os.Stat(sbruntime.DefaultRunsc); err != nil {
		b.Skipf("no runsc at %s (apt-get install runsc): %v", sbruntime.DefaultRunsc, err)
	}
	one := func() {
		out, err := sbCmd("run", "--runtime", "gvisor", "--image", env.base, "-c", "print(1)", "bench").CombinedOutput()
		if err != nil || string(out) != "1\n" {
			b.Fatalf("skillbuild run --runtime gvisor: %v: %s", err, out)
		}
	}
	measure(b, one)
}

// BenchmarkCtrRun: `ctr run --rm` of the same image and program, for
// comparison (ctr's defaults: a writable snapshot, no seccomp, host
// network namespace not requested, default capabilities).
func BenchmarkCtrRun(b *testing.B) {
	var n atomic.Int64
	one := func() {
		id := fmt.Sprintf("bench-ctr-%d", n.Add(1))
		cmd := exec.Command("ctr", "--address", env.socket, "-n", namespace, "run", "--rm", env.base, id, "python3", "-c", "print(1)")
		cmd.Env = cleanEnv()
		out, err := cmd.CombinedOutput()
		if err != nil || string(out) != "1\n" {
			b.Fatalf("ctr run: %v: %s", err, out)
		}
	}
	measure(b, one)
}

// BenchmarkRunConcurrent: b.N runs of print(1) through one Runner by 8 and
// 16 concurrent callers; reports runs per second and the latency each
// caller saw.
func BenchmarkRunConcurrent(b *testing.B) {
	for _, workers := range []int{8, 16} {
		b.Run(fmt.Sprintf("%d", workers), func(b *testing.B) {
			r := benchRunner(b)
			if err := runPrint1(r); err != nil {
				b.Fatal(err)
			}
			concurrently(b, workers, func() error { return runPrint1(r) })
		})
	}
}

// concurrently makes b.N calls of one from workers callers and reports
// calls per second ("runs/s") and the latency each call saw.
func concurrently(b *testing.B, workers int, one func() error) {
	b.Helper()
	var (
		mu   sync.Mutex
		ds   = make([]time.Duration, 0, b.N)
		next atomic.Int64
		wg   sync.WaitGroup
	)
	b.ResetTimer()
	start := time.Now()
	for range workers {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				if err := one(); err != nil {
					b.Error(err)
					return
				}
				d := time.Since(t0)
				mu.Lock()
				ds = append(ds, d)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "runs/s")
	reportLatency(b, ds)
}

// measure warms up with one call, then times b.N sequential calls of one
// and reports their latency percentiles.
func measure(b *testing.B, one func()) {
	b.Helper()
	one()
	ds := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		one()
		ds = append(ds, time.Since(t0))
	}
	b.StopTimer()
	reportLatency(b, ds)
}
