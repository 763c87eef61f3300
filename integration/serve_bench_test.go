package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"github.com/skillbuild/skillbuild/skill/api"
	"io"
	"net/http"
	"os/exec"
	"sync/atomic"
	"testing"
	"time"
)

// The serve benchmarks: print(1) through the API of a real `skillbuild
// serve` with warm containers, one at a time and from 16 clients. Compare
// with BenchmarkCtrRun and BenchmarkRunConcurrent (run_bench_test.go):
//
//	go test ./integration -run '^$' -bench 'Serve|CtrRun|RunConcurrent' -benchtime 50x

// benchServe starts a server for a benchmark (stopped by its cleanup) and
// returns a client of it.
func benchServe(b *testing.B, flags ...string) *http.Client {
	b.Helper()
	s := startServe(b, flags...)
	s.http.Transport.(*http.Transport).MaxIdleConnsPerHost = 64
	return s.http
}

func servePrint1(hc *http.Client) error {
	body, _ := json.Marshal(map[string]any{"skill_id": "bench", "image": env.base, "code": "print(1)"})
	resp, err := hc.Post("http://skillbuild/v1/run", "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var d runDoc
	if err := json.Unmarshal(b, &d); err != nil || resp.StatusCode != 200 || d.Stdout != "1\n" {
		return fmt.Errorf("unexpected answer %d: %s", resp.StatusCode, b)
	}
	return nil
}

// waitWarm waits (a minute at most) until the server has n warm
// containers ready and none being started or removed: a run then measures
// itself, not the background work of the one before. It reports whether
// it saw that.
func waitWarm(hc *http.Client, n int) bool {
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		resp, err := hc.Get("http://skillbuild/v1/health")
		if err != nil {
			continue
		}
		var h api.Health
		json.NewDecoder(resp.Body).Decode(&h) //nolint:errcheck
		resp.Body.Close()
		if h.Warm >= n && h.Starting == 0 && h.Destroying == 0 {
			return true
		}
	}
	return false
}

// BenchmarkServeRun: one client, print(1) through the API; each run waits
// until a warm container is ready again (what a platform calling a tool
// now and then sees).
func BenchmarkServeRun(b *testing.B) {
	hc := benchServe(b, "--warm-per-skill", "2", "--max-warm", "2")
	if err := servePrint1(hc); err != nil {
		b.Fatal(err)
	}
	ds := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		waitWarm(hc, 2)
		b.StartTimer()
		t0 := time.Now()
		if err := servePrint1(hc); err != nil {
			b.Fatal(err)
		}
		ds = append(ds, time.Since(t0))
	}
	b.StopTimer()
	reportLatency(b, ds)
}

// BenchmarkServeConcurrent: 16 clients send b.N runs as fast as they can;
// reports runs per second (warm containers are used up faster than they
// are replaced, so this mixes warm and cold runs).
func BenchmarkServeConcurrent(b *testing.B) {
	hc := benchServe(b, "--warm-per-skill", "16", "--max-warm", "16")
	if err := servePrint1(hc); err != nil {
		b.Fatal(err)
	}
	waitWarm(hc, 16)
	concurrently(b, 16, func() error { return servePrint1(hc) })
}

// BenchmarkCtrRunConcurrent: `ctr run --rm` of print(1) from 16 callers.
func BenchmarkCtrRunConcurrent(b *testing.B) {
	var n atomic.Int64
	concurrently(b, 16, func() error {
		id := fmt.Sprintf("bench-ctrc-%d", n.Add(1))
		cmd := exec.Command("ctr", "--address", env.socket, "-n", namespace, "run", "--rm", env.base, id, "python3", "-c", "print(1)")
		cmd.Env = cleanEnv()
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("ctr run: %v: %s", err, out)
		}
		return nil
	})
}
