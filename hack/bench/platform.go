package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/skillbuild/skillbuild/skill/api"
)

// onlyPlatform measures the platform rows alone: gVisor beside runc, cold
// and warm, with the CPU per run; a session's calls; a session soak.
var onlyPlatform = flag.Bool("only-platform", false, "measure only gVisor beside runc (cold run, warm serve run, CPU per run), session calls and a session soak against ctr run --rm (-latency-runs rounds, interleaved); prints the rows, writes nothing")

// soakSessions, soakCalls and soakClients shape the session soak.
var (
	soakSessions = flag.Int("session-soak", 200, "sessions of the session soak (-only-platform)")
	soakCalls    = flag.Int("session-soak-calls", 10, "calls per session of the session soak")
	soakClients  = flag.Int("session-soak-clients", 16, "concurrent clients of the session soak")
)

// platRow is one row: a way to run print(1), timed one at a time with
// everything it caused on the CPU (the client, containerd, the shims and
// runc or runsc, the container; for a warm run, the replacement started
// after it, which the next run waits for with quiet).
type platRow struct {
	name, does string
	// one runs print(1) once; client is the CPU of a client process it
	// started (the server's is measured around it).
	one       func(ctx context.Context) (client time.Duration, err error)
	wall, cpu []time.Duration
	err       error
}

type platformReport struct {
	rows    []*platRow
	load    string
	soak    sessionSoak
	soakErr error
}

type sessionSoak struct {
	sessions, calls, clients int
	wall                     time.Duration
	lost, mixed              int64
	left                     []string
	rssStart, rssEnd         string
}

// platformOnly measures and prints the platform rows.
func (b *bench) platformOnly(ctx context.Context, stdout io.Writer) error {
	root, err := b.newRoot(ctx, "")
	if err != nil {
		return err
	}
	rep, err := b.measurePlatform(ctx, root)
	if err != nil {
		return err
	}
	fmt.Fprint(stdout, rep.markdown())
	return nil
}

func (b *bench) measurePlatform(ctx context.Context, root string) (*platformReport, error) {
	meter, undo, err := b.newCPUMeter()
	if err != nil {
		return nil, err
	}
	defer undo()
	s, err := b.startServe(ctx, root, "serve-platform", "--warm-per-skill", "2", "--max-warm", "4")
	if err != nil {
		return nil, err
	}
	defer s.stop() //nolint:errcheck // the soak stops it first; this is for the failures before
	servePid := s.cmd.Process.Pid
	// ready is how many warm containers the pool holds when quiet: two per
	// runtime once each runtime's set exists.
	ready := 0
	warm := func(runtime string) func(context.Context) (time.Duration, error) {
		return func(context.Context) (time.Duration, error) {
			d, err := s.runDoc(map[string]any{"skill_id": "bench", "image": baseRef, "code": "print(1)", "runtime": runtime})
			if err == nil && d.Stdout != "1\n" {
				err = fmt.Errorf("print(1) under %s printed %q (exit %v, stderr %q)", runtime, d.Stdout, exitOf(d), d.Stderr)
			}
			return 0, err
		}
	}
	cold := func(runtime string) func(context.Context) (time.Duration, error) {
		r := &sbRunner{b: b, root: root, id: "bench", image: baseRef}
		return func(ctx context.Context) (time.Duration, error) {
			args := []string{"run", "--json", "--runtime", runtime, "-c", "print(1)", "--image", baseRef, "bench"}
			res, err := b.exec(ctx, nil, b.sbArgsBin(r.bin, root, args...))
			if err != nil {
				return 0, err
			}
			var doc api.RunResult
			if err := json.Unmarshal(res.stdout, &doc); err != nil || doc.Stdout != "1\n" {
				return 0, fmt.Errorf("run --runtime %s: %q %v", runtime, doc.Stdout, err)
			}
			return res.cpu, nil
		}
	}
	ctr := &ctrRunner{b: b, ref: baseRef}
	sess, sessErr := s.openSession(map[string]any{"skill_id": "bench", "image": baseRef})
	if sessErr == nil {
		sessErr = sess.check()
	}
	rep := &platformReport{rows: []*platRow{
		{name: "`ctr run --rm` (runc)", does: "a container per run, no limits or hardening", one: func(ctx context.Context) (time.Duration, error) {
			r, err := ctr.run(ctx)
			return r.cpu, err
		}},
		{name: "`skillbuild run` (runc, cold)", does: "a container per run, hardened spec", one: cold("runc")},
		{name: "`skillbuild run --runtime gvisor` (cold)", does: "a container per run under runsc (through the runc shim)", one: cold("gvisor")},
		{name: "serve, warm, runc", does: "`POST /v1/run` to a warm container; its replacement counted", one: warm("runc")},
		{name: "serve, warm, gVisor", does: "`POST /v1/run` with `\"runtime\": \"gvisor\"`; its replacement counted", one: warm("gvisor")},
		{name: "session call (runc)", does: "`POST /v1/sessions/{id}/run` in a live interpreter", one: func(context.Context) (time.Duration, error) {
			if sessErr != nil {
				return 0, fmt.Errorf("open a session: %w", sessErr)
			}
			return 0, sess.print1()
		}},
	}}
	for _, r := range rep.rows { // warm-up: images, views, the pools' sets
		if _, r.err = r.one(ctx); r.err != nil {
			b.say("  %s: %v", r.name, r.err)
		}
	}
	ready = 4
	b.say("platform: %d rounds of %d rows, interleaved", b.o.runLatency, len(rep.rows))
	for range b.o.runLatency {
		for _, r := range rep.rows {
			if r.err != nil {
				continue
			}
			s.quiet(ready)
			s0, serve0 := meter.sample(), procCPU(servePid)
			t0 := time.Now()
			client, err := r.one(ctx)
			wall := time.Since(t0)
			s.quiet(ready) // a warm run's replacement, counted in its CPU
			s1, serve1 := meter.sample(), procCPU(servePid)
			if err != nil {
				r.err = err
				b.say("  %s: %v", r.name, err)
				continue
			}
			r.wall = append(r.wall, wall)
			r.cpu = append(r.cpu, client+(serve1-serve0)+(s1.daemonCg-s0.daemonCg)+(s1.inside-s0.inside))
		}
	}
	rep.load = loadAvg()
	if sessErr != nil {
		rep.soakErr = fmt.Errorf("no session: %w", sessErr)
		return rep, nil
	}
	if err := sess.end(); err != nil {
		return nil, err
	}
	for _, r := range rep.rows {
		b.say("  %s: p50 %s, CPU p50 %s", r.name, secs(median(r.wall)), secs(median(r.cpu)))
	}
	rep.soakErr = b.sessionSoak(ctx, s, &rep.soak)
	return rep, nil
}

// session is a session of a serve.
type session struct {
	s  *serveProc
	id string
}

func (s *serveProc) openSession(req map[string]any) (*session, error) {
	var d struct {
		ID string `json:"session_id"`
	}
	if err := s.call("POST", "/v1/sessions", req, 201, &d); err != nil {
		return nil, err
	}
	return &session{s: s, id: d.ID}, nil
}

// call sends a request and decodes the answer, which must have status want.
func (s *serveProc) call(method, path string, body any, want int, out any) error {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "http://skillbuild"+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s answered %d: %s", method, path, resp.StatusCode, oneLine(string(b)))
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// sessionResult is a session call's document.
type sessionResult struct {
	api.RunResult
	SessionEnded string `json:"session_ended"`
}

func (se *session) run(code string) (sessionResult, error) {
	var d sessionResult
	err := se.s.call("POST", "/v1/sessions/"+se.id+"/run", map[string]any{"code": code}, 200, &d)
	if err == nil && (d.Error != nil || d.SessionEnded != "") {
		err = fmt.Errorf("session call: error %+v, session_ended %q, stderr %q", d.Error, d.SessionEnded, d.Stderr)
	}
	return d, err
}

func (se *session) print1() error {
	d, err := se.run("print(1)")
	if err == nil && d.Stdout != "1\n" {
		err = fmt.Errorf("session print(1) printed %q", d.Stdout)
	}
	return err
}

// check makes sure a session keeps its state: the second call sees the
// first's variable.
func (se *session) check() error {
	if _, err := se.run("x = 41"); err != nil {
		return err
	}
	d, err := se.run("result = x + 1")
	if err != nil {
		return err
	}
	if strings.TrimSpace(string(d.Result)) != "42" {
		return fmt.Errorf("second call's result %s, want 42: the session did not keep x", d.Result)
	}
	return nil
}

func (se *session) end() error {
	return se.s.call("DELETE", "/v1/sessions/"+se.id, nil, 200, nil)
}

// sessionSoak opens sessions from many clients at once, each making calls
// that set and read back a token of its own, and counts results lost
// (an error) or mixed up (another session's or another call's token).
func (b *bench) sessionSoak(ctx context.Context, s *serveProc, out *sessionSoak) error {
	out.sessions, out.calls, out.clients = *soakSessions, *soakCalls, *soakClients
	b.say("platform: session soak, %d sessions × %d calls from %d clients", out.sessions, out.calls, out.clients)
	out.rssStart = vmRSS(s.cmd.Process.Pid)
	var lost, mixed atomic.Int64
	var mu sync.Mutex
	var firstErr error
	t0 := time.Now()
	_, _ = clients(out.clients, out.sessions, func(i int) error {
		fail := func(err error) error {
			lost.Add(1)
			mu.Lock()
			if firstErr == nil {
				firstErr = err
			}
			mu.Unlock()
			return nil
		}
		se, err := s.openSession(map[string]any{"skill_id": "bench", "image": baseRef})
		if err != nil {
			return fail(err)
		}
		defer se.end() //nolint:errcheck // a failed end shows as a leftover
		for c := range out.calls {
			token := fmt.Sprintf("s%d-c%d", i, c)
			code := fmt.Sprintf("prev = globals().get('tok')\ntok = %q\nprint(tok)\nresult = [prev, tok]", token)
			d, err := se.run(code)
			if err != nil {
				fail(err)
				continue
			}
			want := fmt.Sprintf("[%q, %q]", fmt.Sprintf("s%d-c%d", i, c-1), token)
			if c == 0 {
				want = fmt.Sprintf("[null, %q]", token)
			}
			var got []any
			if json.Unmarshal(d.Result, &got) != nil || compact(d.Result) != compact(json.RawMessage(want)) || d.Stdout != token+"\n" {
				mixed.Add(1)
			}
		}
		return nil
	})
	out.wall = time.Since(t0)
	out.lost, out.mixed = lost.Load(), mixed.Load()
	s.quiet(4)
	out.rssEnd = vmRSS(s.cmd.Process.Pid)
	out.left = b.sessionLeftovers(ctx, s)
	b.say("  %s; %d lost, %d mixed, left: %v; RSS %s → %s", secs(out.wall), out.lost, out.mixed, out.left, out.rssStart, out.rssEnd)
	return firstErr
}

// sessionLeftovers stops the server and returns what the soak left:
// sessions the server still listed, and any run container, task,
// snapshot or shim after the drain.
func (b *bench) sessionLeftovers(ctx context.Context, s *serveProc) []string {
	var left []string
	var list []json.RawMessage
	if err := s.call("GET", "/v1/sessions", nil, 200, &list); err != nil {
		var wrapped struct {
			Sessions []json.RawMessage `json:"sessions"`
		}
		if err2 := s.call("GET", "/v1/sessions", nil, 200, &wrapped); err2 != nil {
			left = append(left, "GET /v1/sessions: "+err.Error())
		}
		list = wrapped.Sessions
	}
	if len(list) > 0 {
		left = append(left, fmt.Sprintf("%d sessions still listed", len(list)))
	}
	// The drain ends the server: every run container must go with it.
	if err := s.stop(); err != nil {
		left = append(left, "serve's stop: "+err.Error())
	}
	return append(left, b.runLeftovers(ctx)...)
}

func compact(m json.RawMessage) string {
	var b bytes.Buffer
	if json.Compact(&b, m) != nil {
		return string(m)
	}
	return b.String()
}

func (rep *platformReport) markdown() string {
	var sb strings.Builder
	var ctr time.Duration
	if len(rep.rows) > 0 {
		ctr = median(rep.rows[0].wall)
	}
	fmt.Fprintf(&sb, "\nprint(1) in the Debian python base, one run of each row in turn, %d rounds; before each run the server's pool "+
		"is quiet (its replacements done), and a warm run's CPU includes starting its replacement. CPU per run: the client "+
		"process, the private containerd with its shims, runc or runsc, and the containers' cgroups. Load average at the end: %s.\n\n",
		len(rep.rows[0].wall), rep.load)
	sb.WriteString("| row | what it does | p50 | p95 | ratio to ctr run --rm (p50) | CPU per run (p50) |\n|---|---|---|---|---|---|\n")
	for _, r := range rep.rows {
		if r.err != nil {
			fmt.Fprintf(&sb, "| %s | %s | failed: %s | | | |\n", r.name, r.does, oneLine(r.err.Error()))
			continue
		}
		fmt.Fprintf(&sb, "| %s | %s | %s | %s | %.2f× | %s |\n", r.name, r.does, secs(median(r.wall)), secs(pct(r.wall, 95)),
			ratio(median(r.wall), ctr), secs(median(r.cpu)))
	}
	k := rep.soak
	if rep.soakErr != nil {
		fmt.Fprintf(&sb, "\nSession soak: failed: %s\n", oneLine(rep.soakErr.Error()))
		if k.sessions == 0 {
			return sb.String()
		}
	}
	left := "none"
	if len(k.left) > 0 {
		left = strings.Join(k.left, "; ")
	}
	fmt.Fprintf(&sb, "\nSession soak: %d sessions × %d calls from %d clients in %s, each call setting a token of its own and "+
		"reading back the one its session's previous call set: %d calls lost, %d mixed up; left after the drain: %s; server RSS %s at "+
		"start, %s at the end.\n", k.sessions, k.calls, k.clients, secs(k.wall), k.lost, k.mixed, left, k.rssStart, k.rssEnd)
	return sb.String()
}
