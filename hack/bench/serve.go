package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/skillbuild/skillbuild/internal/pyindex"
	"github.com/skillbuild/skillbuild/skill/api"
)

// serveReport is the serve section: print(1) through the API of a real
// `skillbuild serve` beside `ctr run --rm` of the same image, interleaved;
// a preloaded module; a soak of many runs from 16 clients.
type serveReport struct {
	err                   error
	warm, ctr             []time.Duration // sequential print(1), interleaved
	serveRate, ctrRate    []float64       // runs/s, 16 clients, alternating batches
	preloaded, notPreload []time.Duration // warm runs importing a module whose import sleeps
	importSleep           time.Duration
	soakRuns              int
	soakLost, soakMixed   int64
	soakLeft              []string
	rssStart, rssEnd      string
	soakWall              time.Duration
	load                  string
	ctrRetries            int // sequential ctr runs repeated after a failure
	// print(1) through `skillbuild run --host` (the CLI as a client of a
	// warm server), plain `skillbuild run` and ctr run --rm, interleaved.
	remote, remoteLocal, remoteCtr []time.Duration
	remoteLoad                     string
	// warm print(1) in the base, a skill of the server's root and one of
	// another root, interleaved (see admission.go).
	admission     []*admissionRow
	admissionLoad string
	// back-to-back print(1) after warm-ups (see burst.go).
	burst *burstReport
}

// serveProc is a running server and an HTTP client of its socket.
type serveProc struct {
	cmd  *exec.Cmd
	http *http.Client
}

// startServe starts `skillbuild serve` on a socket in the work directory
// and waits until it answers.
func (b *bench) startServe(ctx context.Context, root, name string, flags ...string) (*serveProc, error) {
	return b.startServeBin(ctx, "", root, name, flags...)
}

// startServeBin is startServe of another skillbuild binary (empty: -bin).
func (b *bench) startServeBin(ctx context.Context, bin, root, name string, flags ...string) (*serveProc, error) {
	sock := filepath.Join(b.dir, name+".sock")
	argv := b.sbArgsBin(bin, root, append([]string{"serve", "--listen", "unix://" + sock, "--allow-base-images"}, flags...)...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = b.cleanEnv()
	cmd.Stdout, cmd.Stderr = b.logf, b.logf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &serveProc{cmd: cmd, http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}}
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if _, err := s.health(); err == nil {
			return s, nil
		}
	}
	s.stop()
	return nil, fmt.Errorf("serve did not answer within a minute (log: %s)", b.logf.Name())
}

// stop drains the server (SIGTERM) and waits for its exit.
func (s *serveProc) stop() error {
	s.cmd.Process.Signal(syscall.SIGTERM) //nolint:errcheck
	done := make(chan error, 1)
	go func() { done <- s.cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(2 * time.Minute):
		s.cmd.Process.Kill() //nolint:errcheck
		return fmt.Errorf("serve did not stop within 2 minutes of SIGTERM")
	}
}

func (s *serveProc) health() (api.Health, error) {
	var h api.Health
	resp, err := s.http.Get("http://skillbuild/v1/health")
	if err != nil {
		return h, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return h, fmt.Errorf("health: status %d", resp.StatusCode)
	}
	return h, json.NewDecoder(resp.Body).Decode(&h)
}

// quiet waits until n containers are ready and none is being started or
// removed: a sequential run then measures itself, not the background work
// of the one before.
func (s *serveProc) quiet(n int) {
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if h, err := s.health(); err == nil && h.Warm >= n && h.Starting == 0 && h.Destroying == 0 {
			return
		}
	}
}

// run sends one run and returns its result and stdout.
func (s *serveProc) run(req map[string]any) (result json.RawMessage, stdout string, err error) {
	d, err := s.runDoc(req)
	return d.Result, d.Stdout, err
}

// runDoc sends one run and returns the whole document it answered (how
// the image was admitted, too).
func (s *serveProc) runDoc(req map[string]any) (api.RunResult, error) {
	var d api.RunResult
	body, _ := json.Marshal(req)
	resp, err := s.http.Post("http://skillbuild/v1/run", "application/json", bytes.NewReader(body))
	if err != nil {
		return d, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &d); err != nil || resp.StatusCode != 200 || d.Error != nil {
		return api.RunResult{}, fmt.Errorf("run answered %d: %s", resp.StatusCode, oneLine(string(b)))
	}
	return d, nil
}

func (s *serveProc) print1() error {
	_, out, err := s.run(map[string]any{"skill_id": "bench", "image": baseRef, "code": "print(1)"})
	if err == nil && out != "1\n" {
		err = fmt.Errorf("print(1) printed %q", out)
	}
	return err
}

// serveTable measures the serve section.
func (b *bench) serveTable(ctx context.Context) *serveReport {
	rep := &serveReport{}
	rep.err = b.measureServe(ctx, rep)
	rep.load = loadAvg()
	return rep
}

func (b *bench) measureServe(ctx context.Context, rep *serveReport) error {
	root, err := b.newRoot(ctx, "")
	if err != nil {
		return err
	}
	ctr := &ctrRunner{b: b, ref: baseRef}

	// Sequential: one warm run, one ctr run --rm, alternately.
	b.say("serve: print(1) warm through the API vs ctr run --rm, %d each, interleaved", b.o.runLatency)
	s, err := b.startServe(ctx, root, "serve-seq", "--warm-per-skill", "2", "--max-warm", "2")
	if err != nil {
		return err
	}
	if err := s.print1(); err != nil {
		s.stop()
		return err
	}
	for range b.o.runLatency {
		s.quiet(2)
		t0 := time.Now()
		if err := s.print1(); err != nil {
			s.stop()
			return err
		}
		rep.warm = append(rep.warm, time.Since(t0))
		r, err := ctr.run(ctx)
		if err != nil { // ctr run now and then loses a quick task's output: once more, counted
			rep.ctrRetries++
			r, err = ctr.run(ctx)
		}
		if err != nil {
			s.stop()
			return err
		}
		rep.ctr = append(rep.ctr, r.wall)
	}
	if err := s.stop(); err != nil {
		return err
	}
	b.say("  warm p50 %s, ctr run --rm p50 %s", secs(median(rep.warm)), secs(median(rep.ctr)))

	if err := b.measureRemote(ctx, root, rep); err != nil {
		return fmt.Errorf("run --host: %w", err)
	}
	if err := b.measureAdmission(ctx, root, rep); err != nil {
		return fmt.Errorf("admission: %w", err)
	}
	if rep.burst, err = b.measureBurst(ctx, root); err != nil {
		return fmt.Errorf("burst: %w", err)
	}

	// 16 clients: batches of 4×16 runs, serve and ctr alternately.
	n := b.o.concurrency
	s, err = b.startServe(ctx, root, "serve-conc", "--warm-per-skill", strconv.Itoa(n), "--max-warm", strconv.Itoa(n))
	if err != nil {
		return err
	}
	if err := s.print1(); err != nil {
		s.stop()
		return err
	}
	for i := range b.o.runs {
		s.quiet(n)
		rate, err := clients(n, 4*n, func(int) error { return s.print1() })
		if err != nil {
			s.stop()
			return fmt.Errorf("serve batch %d: %w", i+1, err)
		}
		rep.serveRate = append(rep.serveRate, rate)
		rate, err = clients(n, 4*n, func(int) error { _, err := ctr.run(ctx); return err })
		if err != nil {
			s.stop()
			return fmt.Errorf("ctr batch %d: %w", i+1, err)
		}
		rep.ctrRate = append(rep.ctrRate, rate)
		b.say("  %d clients: serve %.2f runs/s, ctr run --rm %.2f runs/s", n, rep.serveRate[i], rate)
	}
	if err := s.stop(); err != nil {
		return err
	}

	if err := b.measurePreload(ctx, root, rep); err != nil {
		return fmt.Errorf("preload: %w", err)
	}
	return b.soak(ctx, root, rep)
}

// measureRemote times print(1) through `skillbuild run --host` against a
// warm server (the CLI's process start, an HTTP round trip, a warm run),
// plain `skillbuild run` (a container of its own) and ctr run --rm, one
// of each in turn.
func (b *bench) measureRemote(ctx context.Context, root string, rep *serveReport) error {
	b.say("serve: print(1) by `skillbuild run --host` (warm server) vs `skillbuild run` vs ctr run --rm, %d each, interleaved", b.o.runLatency)
	s, err := b.startServe(ctx, root, "serve-remote", "--warm-per-skill", "2", "--max-warm", "2")
	if err != nil {
		return err
	}
	defer s.stop()
	remote := &sbRunner{b: b, root: root, id: "bench", image: baseRef, host: "unix://" + filepath.Join(b.dir, "serve-remote.sock")}
	local := &sbRunner{b: b, root: root, id: "bench", image: baseRef}
	ctr := &ctrRunner{b: b, ref: baseRef}
	for _, r := range []runner{remote, local, ctr} { // warm-up
		if _, err := r.run(ctx); err != nil {
			return fmt.Errorf("%s: %w", r.key(), err)
		}
	}
	for range b.o.runLatency {
		s.quiet(2)
		r, err := remote.run(ctx)
		if err != nil {
			return fmt.Errorf("run --host: %w", err)
		}
		rep.remote = append(rep.remote, r.wall)
		if r, err = local.run(ctx); err != nil {
			return fmt.Errorf("run: %w", err)
		}
		rep.remoteLocal = append(rep.remoteLocal, r.wall)
		if r, err = ctr.run(ctx); err != nil { // ctr run now and then loses a quick task's output: once more, counted
			rep.ctrRetries++
			r, err = ctr.run(ctx)
		}
		if err != nil {
			return err
		}
		rep.remoteCtr = append(rep.remoteCtr, r.wall)
	}
	rep.remoteLoad = loadAvg()
	b.say("  run --host p50 %s, run p50 %s, ctr run --rm p50 %s (load %s)", secs(median(rep.remote)), secs(median(rep.remoteLocal)),
		secs(median(rep.remoteCtr)), rep.remoteLoad)
	return nil
}

// remoteMarkdown is the run --host rows, with their target.
func (r *serveReport) remoteMarkdown() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "\n`skillbuild run --host unix:///…` against a warm server (2 warm containers, quiet before each run), plain `skillbuild run` and "+
		"`ctr run --rm`, print(1) in the Debian python base, one of each in turn, %d each; load average at the end: %s.\n\n", len(r.remote), r.remoteLoad)
	sb.WriteString("| row | p50 | p95 | ratio to ctr run --rm (p50) |\n|---|---|---|---|\n")
	for _, row := range []struct {
		name string
		d    []time.Duration
	}{{"`skillbuild run --host` (CLI → warm server)", r.remote}, {"`skillbuild run` (a container of its own)", r.remoteLocal}, {"`ctr run --rm`", r.remoteCtr}} {
		fmt.Fprintf(&sb, "| %s | %s | %s | %.2f× |\n", row.name, secs(median(row.d)), secs(pct(row.d, 95)), ratio(median(row.d), median(r.remoteCtr)))
	}
	got := ratio(median(r.remote), median(r.remoteCtr))
	verdict := "met"
	if got > 0.25 {
		verdict = "**missed**"
	}
	fmt.Fprintf(&sb, "\n| target | goal | measured | |\n|---|---|---|---|\n| `run --host` print(1) p50 | ≤ 0.25× ctr run --rm | %.2f× | %s |\n", got, verdict)
	return sb.String()
}

// measurePreload installs the same slow-importing wheel as two skills,
// one with the module in its preload list, and times warm runs importing
// it in each, interleaved.
func (b *bench) measurePreload(ctx context.Context, root string, rep *serveReport) error {
	rep.importSleep = 300 * time.Millisecond
	links := filepath.Join(b.dir, "preload-wheels")
	if err := os.MkdirAll(links, 0o755); err != nil {
		return err
	}
	if _, err := pyindex.BuildWheel(links, pyindex.Wheel{Name: "slowimport", Version: "1.0",
		Init: fmt.Sprintf("import time\ntime.sleep(%g)\n", rep.importSleep.Seconds())}); err != nil {
		return err
	}
	for _, sk := range []struct{ id, preload string }{{"preloaded", "preload: [slowimport]\n"}, {"notpreloaded", ""}} {
		yaml := fmt.Sprintf("id: %s\nversion: 1\nbase: %s\nrequirements: [slowimport==1.0]\nindex: {find_links: [%s]}\n%s", sk.id, baseRef, links, sk.preload)
		f := filepath.Join(b.dir, sk.id+".yaml")
		if err := os.WriteFile(f, []byte(yaml), 0o644); err != nil {
			return err
		}
		if _, err := b.exec(ctx, nil, b.sbArgs(root, "install", "--json", "--no-scan", "--progress", "quiet", "-f", f)); err != nil {
			return fmt.Errorf("install %s: %w", sk.id, err)
		}
	}
	b.say("serve: warm runs importing a module whose import sleeps %s, with and without preload", rep.importSleep)
	s, err := b.startServe(ctx, root, "serve-preload", "--warm-per-skill", "1", "--max-warm", "2")
	if err != nil {
		return err
	}
	defer s.stop()
	code := "import sys\nwarm = 'slowimport' in sys.modules\nimport slowimport\nresult = warm"
	for _, id := range []string{"preloaded", "notpreloaded"} { // warm-up: the sets start
		if _, _, err := s.run(map[string]any{"skill_id": id, "code": code}); err != nil {
			return err
		}
	}
	for range max(5, b.o.runLatency/5) {
		for _, id := range []string{"preloaded", "notpreloaded"} {
			s.quiet(2)
			t0 := time.Now()
			res, _, err := s.run(map[string]any{"skill_id": id, "code": code})
			if err != nil {
				return err
			}
			d := time.Since(t0)
			want := strconv.FormatBool(id == "preloaded")
			if string(res) != want {
				return fmt.Errorf("%s: module imported before the job: %s, want %s", id, res, want)
			}
			if id == "preloaded" {
				rep.preloaded = append(rep.preloaded, d)
			} else {
				rep.notPreload = append(rep.notPreload, d)
			}
		}
	}
	b.say("  preloaded p50 %s, not preloaded p50 %s", secs(median(rep.preloaded)), secs(median(rep.notPreload)))
	return nil
}

// soak sends -soak-runs runs from 16 clients through one server, each
// printing and returning a token of its own, then drains the server and
// looks for anything a run left in containerd or the process table.
func (b *bench) soak(ctx context.Context, root string, rep *serveReport) error {
	rep.soakRuns = b.o.soakRuns
	b.say("serve: soak of %d runs from 16 clients", rep.soakRuns)
	s, err := b.startServe(ctx, root, "serve-soak")
	if err != nil {
		return err
	}
	pid := s.cmd.Process.Pid
	rep.rssStart = vmRSS(pid)
	var lost, mixed atomic.Int64
	t0 := time.Now()
	clients(16, rep.soakRuns, func(i int) error { //nolint:errcheck // counted below
		token := fmt.Sprintf("tok-%d-%x", i, i*7919)
		res, out, err := s.run(map[string]any{"skill_id": "soak", "image": baseRef,
			"code": "print(inputs['t'])\nresult = inputs['t']", "inputs": map[string]string{"t": token}})
		switch {
		case err != nil:
			lost.Add(1)
		case out != token+"\n" || string(res) != strconv.Quote(token):
			mixed.Add(1)
		}
		return nil
	})
	rep.soakWall = time.Since(t0)
	rep.rssEnd = vmRSS(pid)
	rep.soakLost, rep.soakMixed = lost.Load(), mixed.Load()
	if err := s.stop(); err != nil {
		return fmt.Errorf("drain: %w", err)
	}
	rep.soakLeft = b.runLeftovers(ctx)
	b.say("  %d lost, %d mixed up, leftovers %v, RSS %s → %s", rep.soakLost, rep.soakMixed, rep.soakLeft, rep.rssStart, rep.rssEnd)
	return nil
}

// clients runs total calls of one from n goroutines and returns calls per
// second; the first error is returned (the others still run).
func clients(n, total int, one func(i int) error) (float64, error) {
	var next atomic.Int64
	var mu sync.Mutex
	var first error
	var wg sync.WaitGroup
	t0 := time.Now()
	for range n {
		wg.Go(func() {
			for {
				i := int(next.Add(1))
				if i > total {
					return
				}
				if err := one(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	return float64(total) / time.Since(t0).Seconds(), first
}

// runLeftovers lists the run containers, tasks and snapshots left in the
// private containerd, and shim processes of runs.
func (b *bench) runLeftovers(ctx context.Context) []string {
	var left []string
	for _, what := range [][]string{{"containers", "ls", "-q"}, {"tasks", "ls", "-q"}, {"snapshots", "ls"}} {
		r, err := b.exec(ctx, nil, b.ctrArgs(what...))
		if err != nil {
			left = append(left, fmt.Sprintf("%s: %v", what[0], err))
			continue
		}
		for _, line := range strings.Split(string(r.stdout), "\n") {
			if strings.Contains(line, "sbrun-") {
				left = append(left, what[0]+": "+strings.Fields(line)[0])
			}
		}
	}
	out, _ := exec.Command("ps", "-eo", "args=").Output()
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "containerd-shim") && strings.Contains(line, "sbrun-") && strings.Contains(line, b.sock) {
			left = append(left, "shim: "+line)
		}
	}
	return left
}

// vmRSS is a process's resident set size as /proc reports it.
func vmRSS(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "?"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

// markdown is the serve section of BENCHMARKS.md, with its targets.
func (r *serveReport) markdown() string {
	var sb strings.Builder
	sb.WriteString("\n## Serve: warm single-use containers through the API\n\n")
	if r.err != nil {
		fmt.Fprintf(&sb, "failed: %s\n", oneLine(r.err.Error()))
		return sb.String()
	}
	fmt.Fprintf(&sb, "A real `skillbuild serve` on a unix socket against the private containerd; `ctr run --rm` of the same\n"+
		"image (the Debian python base) interleaved run by run or batch by batch. Load average at the end: %s.\n\n", r.load)
	sb.WriteString("| row | serve | ctr run --rm | ratio |\n|---|---|---|---|\n")
	fmt.Fprintf(&sb, "| print(1), one client, warm (pool full and quiet), p50 | %s | %s | %.2f× |\n",
		secs(median(r.warm)), secs(median(r.ctr)), ratio(median(r.warm), median(r.ctr)))
	if r.ctrRetries > 0 {
		fmt.Fprintf(&sb, "| (ctr run --rm failed and was repeated %d times) | | | |\n", r.ctrRetries)
	}
	fmt.Fprintf(&sb, "| print(1), one client, warm, p95 | %s | %s | %.2f× |\n",
		secs(pct(r.warm, 95)), secs(pct(r.ctr, 95)), ratio(pct(r.warm, 95), pct(r.ctr, 95)))
	sr, cr := medianF(r.serveRate), medianF(r.ctrRate)
	fmt.Fprintf(&sb, "| print(1), 16 clients, runs/s (median of %d batches of 64) | %.2f | %.2f | %.2f× |\n", len(r.serveRate), sr, cr, sr/cr)
	fmt.Fprintf(&sb, "\nPreload: a warm run that imports a module whose import sleeps %s, p50 over %d runs each: "+
		"**%s** with the module in the skill's `preload` list, %s without.\n",
		r.importSleep, len(r.preloaded), secs(median(r.preloaded)), secs(median(r.notPreload)))
	left := "none"
	if len(r.soakLeft) > 0 {
		left = strings.Join(r.soakLeft, ", ")
	}
	fmt.Fprintf(&sb, "\nSoak: %d runs from 16 clients in %s, each printing and returning a token of its own: "+
		"%d results lost, %d mixed up; left after the drain (containers, tasks, snapshots, shims of runs): %s; "+
		"server RSS %s at start, %s at the end.\n", r.soakRuns, secs(r.soakWall), r.soakLost, r.soakMixed, left, r.rssStart, r.rssEnd)

	if len(r.remote) > 0 {
		sb.WriteString(r.remoteMarkdown())
	}
	sb.WriteString(r.admissionMarkdown())
	if r.burst != nil {
		sb.WriteString(r.burst.markdown())
	}

	verdict := func(met bool) string {
		if met {
			return "met"
		}
		return "**missed**"
	}
	sb.WriteString("\n| serve target | goal | measured | |\n|---|---|---|---|\n")
	warm := ratio(median(r.warm), median(r.ctr))
	fmt.Fprintf(&sb, "| warm print(1) p50 | ≤ 0.2× ctr run --rm | %.2f× | %s |\n", warm, verdict(warm <= 0.2))
	fmt.Fprintf(&sb, "| 16 clients, runs/s | ≥ 5× ctr run --rm | %.2f× | %s |\n", sr/cr, verdict(sr/cr >= 5))
	soakOK := r.soakLost == 0 && r.soakMixed == 0 && len(r.soakLeft) == 0
	fmt.Fprintf(&sb, "| soak | 0 lost, 0 mixed, 0 leftovers | %d, %d, %d | %s |\n", r.soakLost, r.soakMixed, len(r.soakLeft), verdict(soakOK))
	return sb.String()
}

func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func medianF(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(v))
	if len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[len(s)/2]
}
