package integration

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
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
	"github.com/skillbuild/skillbuild/internal/ctdtest"
	"github.com/skillbuild/skillbuild/internal/pyindex"
	"github.com/skillbuild/skillbuild/runtime/pid1"
	"github.com/skillbuild/skillbuild/skill/api"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// served is a running `skillbuild serve` on a unix socket.
type served struct {
	cmd    *exec.Cmd
	sock   string
	http   *http.Client
	stderr syncBuffer
	exited chan error
}

func (s *served) Write(p []byte) (int, error) { return s.stderr.Write(p) }

func (s *served) log() string { return s.stderr.String() }

// startServe starts `skillbuild serve` on a socket of its own and waits
// until it answers; the cleanup stops it with SIGTERM (or kills it). Runs
// may name the base image (--allow-base-images) unless flags say
// --allow-base-images=false.
func startServe(t testing.TB, flags ...string) *served {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "api.sock")
	return startServeOn(t, "unix://"+sock, sock, "", flags...)
}

// startServeTCP starts `skillbuild serve` on addr (tcp://127.0.0.1:PORT)
// with the bearer token in tokenFile; s.http sends the token.
func startServeTCP(t testing.TB, addr, tokenFile, token string, flags ...string) *served {
	t.Helper()
	return startServeOn(t, addr, "", token, append([]string{"--token-file", tokenFile}, flags...)...)
}

// bearer adds a bearer token to every request.
type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

// startServeOn starts `skillbuild serve --listen listen`: on the unix
// socket sock, or on TCP with token.
func startServeOn(t testing.TB, listen, sock, token string, flags ...string) *served {
	t.Helper()
	s := &served{sock: sock, exited: make(chan error, 1)}
	args := append([]string{"serve", "--listen", listen, "--allow-base-images"}, flags...)
	s.cmd = sbCmd(args...)
	s.cmd.Stdout, s.cmd.Stderr = s, s
	require.NoError(t, s.cmd.Start())
	go func() { s.exited <- s.cmd.Wait() }()
	network, address := "unix", sock
	if sock == "" {
		network, address = "tcp", strings.TrimPrefix(listen, "tcp://")
	}
	var tr http.RoundTripper = &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, address)
	}}
	if token != "" {
		tr = bearer{token: token, next: tr}
	}
	s.http = &http.Client{Transport: tr}
	t.Cleanup(func() {
		if s.cmd.ProcessState == nil {
			s.cmd.Process.Signal(syscall.SIGTERM) //nolint:errcheck
			select {
			case <-s.exited:
			case <-time.After(2 * time.Minute):
				s.cmd.Process.Kill() //nolint:errcheck
			}
		}
		if t.Failed() {
			t.Logf("serve's stderr:\n%s", tailString(s.log(), 4000))
		}
	})
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := s.http.Get("http://skillbuild/v1/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return s
			}
		}
		select {
		case err := <-s.exited:
			t.Fatalf("serve exited before answering: %v\n%s", err, s.log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not answer within a minute:\n%s", s.log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop sends SIGTERM and waits for the exit.
func (s *served) stop(t *testing.T) {
	t.Helper()
	require.NoError(t, s.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-s.exited:
		require.NoError(t, err, "serve exits 0 after draining:\n%s", s.log())
	case <-time.After(2 * time.Minute):
		t.Fatalf("serve did not stop within 2 minutes of SIGTERM:\n%s", s.log())
	}
}

// call sends a JSON request and returns the status, the exit code header
// and the body.
func (s *served) call(t *testing.T, method, path string, body any) (int, string, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(t, err)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "http://skillbuild"+path, rd)
	require.NoError(t, err)
	resp, err := s.http.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header.Get("X-Skillbuild-Exit-Code"), b
}

// run posts a run request and decodes the run document.
func (s *served) run(t *testing.T, req map[string]any) runDoc {
	t.Helper()
	status, code, body := s.call(t, http.MethodPost, "/v1/run", req)
	require.Equal(t, 200, status, "exit %s: %s", code, body)
	return decodeRun(t, string(body))
}

// curl runs curl against the server's socket.
func (s *served) curl(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command("curl", append([]string{"-sS", "--unix-socket", s.sock}, args...)...)
	cmd.Env = cleanEnv()
	out, err := cmd.Output()
	require.NoError(t, err, "curl %v", args)
	return string(out)
}

// python runs a script with the python3 of a venv the client package was
// installed into (clientVenv); the socket's path is sys.argv[1]. It
// returns stdout.
func (s *served) python(t *testing.T, script string) string {
	t.Helper()
	return pythonClient(t, script, s.sock)
}

// pythonClient runs script with the client venv's python3 and args as
// sys.argv[1:], and returns stdout.
func pythonClient(t *testing.T, script string, args ...string) string {
	t.Helper()
	cmd := exec.Command(clientVenv(t), append([]string{"-c", script}, args...)...)
	cmd.Dir = t.TempDir() // nothing on the path but the venv's
	cmd.Env = append(cleanEnv(), "PYTHONDONTWRITEBYTECODE=1")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	require.NoError(t, cmd.Run(), "python3 client script failed:\n%s", errb.String())
	return out.String()
}

// warm is the number of warm containers ready, from the health document.
func (s *served) warm(t *testing.T) int {
	t.Helper()
	var h api.Health
	_, _, b := s.call(t, http.MethodGet, "/v1/health", nil)
	require.NoError(t, json.Unmarshal(b, &h), "%s", b)
	return h.Warm
}

// metric returns the value of a sample line of /metrics.
func (s *served) metric(t *testing.T, sample string) string {
	t.Helper()
	_, _, body := s.call(t, http.MethodGet, "/metrics", nil)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			return v
		}
	}
	return ""
}

// TestServeAPI drives a real server with the Python client and curl:
// install (progress streamed, a refusal raised with its findings), list,
// run in warm containers, remove, errors by exit-code class, metrics, and
// the CLI working beside the server on the same root.
func TestServeAPI(t *testing.T) {
	srv, _ := index(t, pyindex.Wheel{Name: "servepkg", Version: "1.0"}, pyindex.Wheel{Name: "servepkg", Version: "2.0"})
	s := startServe(t, "--warm-per-skill", "2", "--max-warm", "4")

	fi, err := os.Stat(s.sock)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o660), fi.Mode().Perm(), "the socket is for its owner and group only")

	out := s.python(t, fmt.Sprintf(`
import json, sys
import skillbuild_client as sbc
c = sbc.Client(sys.argv[1])
events = []
doc = c.install("served", ["servepkg==1.0"], base=%[1]q, index_url=%[2]q, progress=events.append)
assert doc["success"] and doc["image_tag"] == "atom-skill:served-v1", doc
assert events, "progress events were streamed"
try:
    c.install("served-vuln", ["pip==23.0.1"], base=%[1]q, index_url=%[2]q)
    raise SystemExit("a vulnerable set was installed")
except sbc.Vulnerable as e:
    assert e.exit_code == 3 and e.status == 422, (e.exit_code, e.status)
    assert any(v["package"] == "pip" for v in e.document["vulnerabilities"]), e.document
    assert e.document["error"] == "vulnerabilities detected"
ids = [s["skill_id"] for s in c.list()]
assert "served" in ids and "served-vuln" not in ids, ids
r = c.run("served", "import servepkg\nprint('hi')\nresult = {'v': servepkg.__version__, 'x': inputs['x']}", {"x": 7}, timeout=20, memory="128m")
assert r["error"] is None and r["result"] == {"v": "1.0", "x": 7} and r["stdout"] == "hi\n", r
r = c.run("served", "raise ValueError('boom')")
assert r["error"]["type"] == "ValueError" and r["exit_code"] == 1, r
try:
    c.run("nope", "pass")
    raise SystemExit("ran in a missing skill")
except sbc.NotFound as e:
    # The advice is in the API's words, not the command line's.
    assert e.exit_code == 4 and "POST /v1/install" in str(e) and "skillbuild install" not in str(e), str(e)
try:
    c.run("served", "pass", memory="1k")
    raise SystemExit("a 1k memory limit was accepted")
except sbc.BadInput as e:
    assert e.exit_code == 2 and "memory" in str(e) and "--memory" not in str(e), str(e)
print(json.dumps(c.health()))
`, env.base, srv.URL()))
	var health map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &health), out)
	assert.Equal(t, true, health["ok"])

	// curl: the same documents as the CLI.
	var skills []map[string]any
	require.NoError(t, json.Unmarshal([]byte(s.curl(t, "http://x/v1/skills")), &skills))
	cli := sb(t, "ls", "--json")
	require.Equal(t, 0, cli.code)
	var cliSkills []map[string]any
	require.NoError(t, json.Unmarshal([]byte(cli.stdout), &cliSkills))
	assert.Equal(t, cliSkills, skills, "GET /v1/skills is `ls --json`")

	d := decodeRun(t, s.curl(t, "-H", "Content-Type: application/json", "-d", `{"skill_id": "served", "code": "result = sum(inputs['n'])", "inputs": {"n": [1, 2, 3]}}`, "http://x/v1/run"))
	requireClean(t, d)
	assert.Equal(t, "6", string(d.Result))
	assert.Equal(t, "atom-skill:served-v1", d.ImageTag)

	// The CLI keeps working beside the server, on the same root: a run,
	// and a build (same state lock) that the server then runs in.
	cliRun := sb(t, "run", "--json", "-c", "import servepkg; result = servepkg.__version__", "served")
	require.Equal(t, 0, cliRun.code, cliRun.stderr)
	assert.Equal(t, `"1.0"`, string(decodeRun(t, cliRun.stdout).Result))
	r := sb(t, "install", "--json", "--base", env.base, "--index-url", srv.URL(), "--version", "2", "served", "servepkg==2.0")
	require.Equal(t, 0, r.code, r.stderr)
	d = s.run(t, map[string]any{"skill_id": "served", "version": "2", "code": "import servepkg; result = servepkg.__version__"})
	assert.Equal(t, `"2.0"`, string(d.Result))

	// Bad requests: 4xx with an error document and the exit code.
	status, code, body := s.call(t, http.MethodPost, "/v1/run", map[string]any{"skill_id": "served", "cmd": "ls"})
	assert.Equal(t, 400, status)
	assert.Equal(t, "2", code)
	assert.Contains(t, string(body), `unknown field \"cmd\"`)
	status, _, _ = s.call(t, http.MethodPost, "/v1/run", map[string]any{"skill_id": "served", "code": strings.Repeat("#", 25<<20)})
	assert.Equal(t, 413, status, "bodies are capped")
	// Callers get the ceilings the operator set, never more.
	for field, value := range map[string]string{"memory": "1000g", "pids": "1000000", "cpus": "64", "timeout": "100000h", "user": "0"} {
		status, code, body = s.call(t, http.MethodPost, "/v1/run", map[string]any{"skill_id": "served", "code": "pass", field: value})
		assert.Equal(t, 400, status, "%s %s: %s", field, value, body)
		assert.Equal(t, "2", code, field)
		if field == "user" {
			assert.Contains(t, string(body), "uid 0", field)
		} else {
			assert.Contains(t, string(body), "ceiling", field)
		}
	}

	// Warm containers served runs, and the metrics say so.
	assert.NotEqual(t, "", s.metric(t, "skillbuild_pool_hits_total"))
	assert.NotEqual(t, "0", s.metric(t, "skillbuild_pool_hits_total"), "some runs got a warm container")
	assert.Equal(t, "1", s.metric(t, `skillbuild_builds_total{exit_code="3"}`))

	// remove: the image goes, its warm containers too, and runs say so.
	out = s.python(t, `
import sys
import skillbuild_client as sbc
c = sbc.Client(sys.argv[1])
doc = c.remove("served")
assert sorted(s["version"] for s in doc["removed"]) == ["1", "2"], doc
try:
    c.remove("served")
    raise SystemExit("removed twice")
except sbc.NotFound:
    pass
try:
    c.run("served", "pass")
    raise SystemExit("ran in a removed skill")
except sbc.NotFound:
    print("gone")
`)
	assert.Equal(t, "gone\n", out)

	s.stop(t)
	assertNoRunLeftovers(t)
}

// TestServePreload: the modules a run asks to preload are imported in the
// warm container before the run; without the list they are not.
func TestServePreload(t *testing.T) {
	s := startServe(t, "--warm-per-skill", "1", "--max-warm", "2")
	out := s.python(t, fmt.Sprintf(`
import sys, time
import skillbuild_client as sbc
c = sbc.Client(sys.argv[1])
code = "import sys\nresult = 'decimal' in sys.modules"
seen = []
for preload in (["decimal"], ["decimal"], None, None):
    if seen:
        deadline = time.time() + 60
        while c.health()["warm"] < 1 and time.time() < deadline:
            time.sleep(0.05)
    opts = {"preload": preload} if preload else {}
    seen.append(c.run("preload", code, image=%q, **opts)["result"])
try:
    c.run("preload", "pass", image=%[1]q, preload=["os; import x"])
    raise SystemExit("a preload that is not a module name was accepted")
except sbc.BadInput:
    pass
print(seen)
`, env.base))
	assert.Equal(t, "[True, True, False, False]\n", out, "cold and warm runs alike")
	assert.NotEqual(t, "0", s.metric(t, "skillbuild_pool_hits_total"))
	s.stop(t)
	assertNoRunLeftovers(t)
}

// TestServeManyClients: runs from several clients at once (Go and the
// Python client), each checking it got its own result; then SIGTERM while
// runs are in flight: they finish, and nothing is left.
func TestServeManyClients(t *testing.T) {
	s := startServe(t, "--warm-per-skill", "4", "--max-warm", "4")
	rssStart := rss(t, s.cmd.Process.Pid)
	const clients, each = 6, 10
	var wg sync.WaitGroup
	errs := make(chan error, clients*each)
	for c := range clients {
		wg.Go(func() {
			for i := range each {
				tag := fmt.Sprintf("c%d-r%d", c, i)
				b, _ := json.Marshal(map[string]any{"skill_id": "many", "image": env.base,
					"code": "print(inputs['tag'])\nresult = {'tag': inputs['tag']}", "inputs": map[string]string{"tag": tag}})
				resp, err := s.http.Post("http://skillbuild/v1/run", "application/json", bytes.NewReader(b))
				if err != nil {
					errs <- err
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				var d runDoc
				if err := json.Unmarshal(body, &d); err != nil || resp.StatusCode != 200 {
					errs <- fmt.Errorf("%s: status %d: %s", tag, resp.StatusCode, body)
					continue
				}
				if d.Stdout != tag+"\n" || string(d.Result) != fmt.Sprintf(`{"tag":%q}`, tag) {
					errs <- fmt.Errorf("%s got someone else's result: stdout %q result %s", tag, d.Stdout, d.Result)
				}
			}
		})
	}
	pyOut := make(chan string, 1)
	wg.Go(func() {
		pyOut <- s.python(t, `
import sys, threading
import skillbuild_client as sbc
c = sbc.Client(sys.argv[1])
bad = []
def worker(w):
    for i in range(5):
        tag = "py%d-%d" % (w, i)
        r = c.run("many", "result = inputs['tag']", {"tag": tag}, image=`+fmt.Sprintf("%q", env.base)+`)
        if r["result"] != tag:
            bad.append((tag, r))
ts = [threading.Thread(target=worker, args=(w,)) for w in range(3)]
[t.start() for t in ts]
[t.join() for t in ts]
print("bad", bad)
`)
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	assert.Equal(t, "bad []\n", <-pyOut)
	t.Logf("server RSS: %s at start, %s after %d runs (measured, not asserted)", rssStart, rss(t, s.cmd.Process.Pid), clients*each+15)

	// SIGTERM with runs in flight: they complete, then the server exits.
	done := make(chan runDoc, 2)
	for range 2 {
		go func() {
			_, _, b := s.call(t, http.MethodPost, "/v1/run", map[string]any{"skill_id": "many", "image": env.base, "timeout": "30s",
				"code": "import time\ntime.sleep(2)\nresult = 'finished'"})
			var d runDoc
			json.Unmarshal(b, &d) //nolint:errcheck
			done <- d
		}()
	}
	require.Eventually(t, func() bool { return s.metric(t, `skillbuild_requests_in_flight{endpoint="run"}`) == "2" }, time.Minute, 20*time.Millisecond)
	s.stop(t)
	for range 2 {
		d := <-done
		assert.Equal(t, `"finished"`, string(d.Result), "an in-flight run finished during the drain: %+v", d)
	}
	assertNoRunLeftovers(t)
}

// rss is a process's resident set size as /proc reports it.
func rss(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	require.NoError(t, err)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

// TestServeKilledServerWarmContainersEnd: after kill -9 of serve, every
// warm container it had ends by itself, with no other skillbuild process
// running: its init sees the server's end of the report FIFO close. The
// next command of any kind (here ls) removes what is left of them, and a
// new server starts clean.
func TestServeKilledServerWarmContainersEnd(t *testing.T) {
	s := startServe(t, "--warm-per-skill", "2", "--max-warm", "2")
	requireClean(t, s.run(t, map[string]any{"skill_id": "killed", "image": env.base, "code": "pass"}))
	c := ctdClient(t)
	// Both warm containers started (killing the server while containerd
	// creates a task can leave the task behind where containerd no longer
	// sees it: a different problem, not this test's).
	require.Eventually(t, func() bool { return s.warm(t) == 2 }, time.Minute, 50*time.Millisecond, "two warm containers")
	warm := runContainers(t, c)
	require.Len(t, warm, 2)
	ctx := context.Background()
	var tasks []containerd.Task
	for _, ct := range warm {
		task, err := ct.Task(ctx, nil)
		require.NoError(t, err)
		st, err := task.Status(ctx)
		require.NoError(t, err)
		require.Equal(t, containerd.Running, st.Status, "warm container %s", ct.ID())
		tasks = append(tasks, task)
	}
	require.NoError(t, s.cmd.Process.Kill())
	<-s.exited
	killed := time.Now()

	// Poll containerd only: each task must stop by itself. 10s is the
	// bound a warm container may outlive its server by, not a speed.
	for i, task := range tasks {
		var st containerd.Status
		var err error
		for time.Since(killed) < 10*time.Second {
			if st, err = task.Status(ctx); err != nil || st.Status == containerd.Stopped {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if errdefs.IsNotFound(err) {
			continue // gone altogether
		}
		require.NoError(t, err)
		require.Equal(t, containerd.Stopped, st.Status, "warm container %s outlived its server by 10s", warm[i].ID())
		assert.Equal(t, uint32(pid1.HostGoneStatus), st.ExitStatus, "its init saw its host go")
		assert.Empty(t, cgroupProcs(warm[i].ID()), "no process left in its cgroups")
	}
	t.Logf("the warm containers stopped %s after the kill (measured, not asserted)", time.Since(killed).Round(time.Millisecond))

	// Any command sweeps what is left: records, views, state, cgroups.
	r := sb(t, "ls")
	require.Equal(t, 0, r.code, r.stderr)
	assertNoRunLeftovers(t)

	s2 := startServe(t)
	requireClean(t, s2.run(t, map[string]any{"skill_id": "killed", "image": env.base, "code": "pass"}))
	s2.stop(t)
	assertNoRunLeftovers(t)
}

// TestServeSurvivesContainerdRestart: containerd restarts under a running
// server with warm containers; runs work again once it is back (the warm
// containers it can no longer trust are discarded and the pool refills),
// and the drain leaves nothing behind.
func TestServeSurvivesContainerdRestart(t *testing.T) {
	s := startServe(t, "--warm-per-skill", "2", "--max-warm", "2")
	req := map[string]any{"skill_id": "restart", "image": env.base, "code": "result = inputs['n'] + 1", "inputs": map[string]int{"n": 1}}
	requireClean(t, s.run(t, req))
	require.Eventually(t, func() bool { return s.warm(t) == 2 }, time.Minute, 50*time.Millisecond)

	env.ctd.Stop()
	ctd, err := ctdtest.Start(filepath.Join(env.dir, "containerd"), cleanEnv())
	require.NoError(t, err, "containerd restarts on the same state")
	env.ctd = ctd

	// The first requests may find the connection still coming back (503,
	// exit 75: try again); then runs work.
	var d runDoc
	require.Eventually(t, func() bool {
		status, _, body := s.call(t, http.MethodPost, "/v1/run", req)
		if status != 200 {
			return false
		}
		d = decodeRun(t, string(body))
		return d.Error == nil
	}, 2*time.Minute, 200*time.Millisecond, "runs work after containerd restarted")
	assert.Equal(t, "2", string(d.Result))
	require.Eventually(t, func() bool { return s.warm(t) == 2 }, time.Minute, 50*time.Millisecond, "the pool refills")
	requireClean(t, s.run(t, req))
	s.stop(t)
	assertNoRunLeftovers(t)
}

// venv is the suite's venv with the Python client installed.
var venv struct {
	once   sync.Once
	python string
	err    error
}

// clientVenv is the python3 of a fresh venv into which the Python client
// was installed as a user installs it: a wheel built from clients/python
// by pip with Debian's setuptools and wheel, installed with --no-index
// (no network). Made once per suite.
func clientVenv(t *testing.T) string {
	t.Helper()
	venv.once.Do(func() { venv.python, venv.err = installClient(filepath.Join(env.dir, "pyclient")) })
	require.NoError(t, venv.err, "install the Python client into a venv")
	return venv.python
}

func installClient(dir string) (string, error) {
	src, err := filepath.Abs(filepath.Join("..", "clients", "python"))
	if err != nil {
		return "", err
	}
	// A copy: pip builds in the source tree, which is not the suite's to
	// write into.
	tree := filepath.Join(dir, "src")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if out, err := exec.Command("cp", "-r", src, tree).CombinedOutput(); err != nil {
		return "", fmt.Errorf("copy %s: %v: %s", src, err, out)
	}
	vdir := filepath.Join(dir, "venv")
	python := filepath.Join(vdir, "bin", "python3")
	dist := filepath.Join(dir, "dist")
	for _, argv := range [][]string{
		{"/usr/bin/python3", "-m", "venv", vdir},
		{python, "-m", "pip", "install", "--no-index", "--find-links", pyindex.DebianWheelsDir, "wheel"},
		{python, "-m", "pip", "wheel", "--no-index", "--no-build-isolation", "--no-deps", "-w", dist, tree},
		{python, "-m", "pip", "install", "--no-index", "--find-links", dist, "skillbuild-client"},
	} {
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Env = cleanEnv()
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("%s: %v: %s", strings.Join(argv, " "), err, out)
		}
	}
	return python, nil
}
