package integration

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
	"github.com/skillbuild/skillbuild/runtime"
	"github.com/skillbuild/skillbuild/runtime/pid1"
	"github.com/skillbuild/skillbuild/skill/api"
	skillclient "github.com/skillbuild/skillbuild/skill/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sessionLifetime is the max_lifetime the tests give their sessions: a
// container whose deadline label is that far away is a session's (warm
// containers' deadlines are close), which sessionContainers counts.
const sessionLifetime = 7 * time.Hour

// sessionContainerIDs lists the containers of the suite's namespace whose
// deadline is more than six hours away: the sessions' of these tests.
func sessionContainerIDs(t *testing.T) []string {
	t.Helper()
	cs, err := suiteClient(t).ContainerService().List(context.Background())
	require.NoError(t, err)
	var ids []string
	for _, c := range cs {
		d, err := time.Parse(time.RFC3339Nano, c.Labels[runtime.LabelDeadline])
		if err == nil && time.Until(d) > 6*time.Hour {
			ids = append(ids, c.ID)
		}
	}
	return ids
}

// sessionContainers counts the sessions' containers (sessionContainerIDs).
func sessionContainers(t *testing.T) int { return len(sessionContainerIDs(t)) }

// openSession opens a session of the base image over s's socket.
func openSession(t *testing.T, s *served, extra map[string]any) (int, string, api.Session, []byte) {
	t.Helper()
	req := map[string]any{"skill_id": "sess", "image": env.base, "max_lifetime": sessionLifetime.String()}
	for k, v := range extra {
		req[k] = v
	}
	status, code, body := s.call(t, http.MethodPost, "/v1/sessions", req)
	var doc api.Session
	if status == http.StatusCreated {
		require.NoError(t, json.Unmarshal(body, &doc), "%s", body)
	}
	return status, code, doc, body
}

// TestServeSessionsPython: through the Python client as installed, a
// session keeps its globals, modules and files between calls; a call
// that times out ends it, and the next call raises why; the with-block
// ends it and leaves no container.
func TestServeSessionsPython(t *testing.T) {
	s := startServe(t, "--warm-per-skill", "1", "--max-warm", "2")
	out := s.python(t, fmt.Sprintf(`
import sys, skillbuild_client as sbc
c = sbc.Client(sys.argv[1])
with c.session("sess", image=%[1]q, memory="256m", max_lifetime=%[2]q) as s:
    r = s.run("x = 41\nimport fractions")
    assert r.error is None and r.session_ended is None, r
    r = s.run("import sys\nresult = [x + 1, 'fractions' in sys.modules, fractions.Fraction(1, 2).denominator]")
    assert r.result == [42, True, 2], r
    r = s.run("result = open('/data/in/a.txt').read()", files={"a.txt": b"hello"})
    assert r.result == "hello", r
    r = s.run("result = open('/data/in/a.txt').read()\nopen('/data/out/o.txt', 'w').write('out')")
    assert r.result == "hello", r
    assert [(f["name"], f["content"]) for f in r.files] == [("o.txt", b"out")], r.files
    assert len(c.sessions()) == 1
    r = s.run("import time\nprint('sleeping', flush=True)\ntime.sleep(60)", timeout=1)
    assert r.timed_out and r.session_ended == "timeout", r
    try:
        s.run("result = x")
        raise AssertionError("a call on a session that timed out ran")
    except sbc.SessionEnded as e:
        assert e.reason == "timeout" and str(e) == "session ended: timeout", e
        assert e.status == 404 and e.exit_code == 4
    assert c.sessions() == []
with c.session("sess", image=%[1]q, max_lifetime=%[2]q) as s:
    s.run("y = 1")
    print("open", len(c.sessions()))
print("after", len(c.sessions()))
with c.session("sess", image=%[1]q, max_lifetime=%[2]q) as s:
    r = s.run("import os\nos._exit(3)")
    assert r.session_ended == "exited", r
    try:
        s.run("pass")
        raise AssertionError("a call on a session whose interpreter exited ran")
    except sbc.SessionEnded as e:
        print("then", e.reason)
`, env.base, sessionLifetime.String()))
	assert.Equal(t, "open 1\nafter 0\nthen exited\n", out)
	assert.Equal(t, 0, sessionContainers(t), "the sessions' containers are gone")
	assert.Equal(t, "0", s.metric(t, "skillbuild_sessions_open"))
}

// TestServeSessionsCapsAndEnds: --max-sessions refuses the N+1th (429,
// exit code 75); DELETE removes the container; another uid on the socket
// cannot use or end a session and is told what an unknown id is told;
// the idle timeout ends a session; shutdown ends the rest.
func TestServeSessionsCapsAndEnds(t *testing.T) {
	// A socket another uid can reach: a directory it may enter, and the
	// group nogroup.
	dir, err := os.MkdirTemp("", "sbsess")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o755))
	sock := filepath.Join(dir, "api.sock")
	s := startServeOn(t, "unix://"+sock, sock, "", "--warm-per-skill", "1", "--max-warm", "1", "--max-sessions", "2", "--group", "65534")

	status, code, first, body := openSession(t, s, nil)
	require.Equal(t, http.StatusCreated, status, "exit %s: %s", code, body)
	assert.Len(t, first.SessionID, 32)
	assert.Equal(t, sessionLifetime.String(), first.MaxLifetime)
	assert.Equal(t, "5m0s", first.IdleTimeout, "the server's default")
	status, code, second, body := openSession(t, s, nil)
	require.Equal(t, http.StatusCreated, status, "exit %s: %s", code, body)
	status, code, _, body = openSession(t, s, nil)
	assert.Equal(t, http.StatusTooManyRequests, status, "%s", body)
	assert.Equal(t, "75", code)
	assert.Contains(t, string(body), "too many sessions")
	assert.Equal(t, 2, sessionContainers(t))
	status, _, _, body = openSession(t, s, map[string]any{"max_lifetime": "100h"})
	assert.Equal(t, http.StatusBadRequest, status, "above the ceiling: %s", body)

	// Another uid: the same answer as an unknown id, and no effect.
	other := func(method, path, body string) (string, string) {
		t.Helper()
		args := []string{"-sS", "--unix-socket", sock, "-X", method, "-w", "\n%{http_code}", "http://skillbuild" + path}
		if body != "" {
			args = append(args, "-H", "Content-Type: application/json", "-d", body)
		}
		cmd := exec.Command("curl", args...)
		cmd.Env = cleanEnv()
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		b, err := cmd.Output()
		require.NoError(t, err, "curl as uid 65534")
		out := strings.TrimSpace(string(b))
		i := strings.LastIndex(out, "\n")
		require.GreaterOrEqual(t, i, 0, "curl -w puts the status on a line of its own: %s", out)
		return out[i+1:], strings.TrimSpace(out[:i])
	}
	st, strange := other("POST", "/v1/sessions/"+first.SessionID+"/run", `{"code": "result = 1"}`)
	assert.Equal(t, "404", st, strange)
	_, unknown := other("POST", "/v1/sessions/00000000000000000000000000000000/run", `{"code": "result = 1"}`)
	assert.Equal(t, strings.ReplaceAll(unknown, "00000000000000000000000000000000", "ID"), strings.ReplaceAll(strange, first.SessionID, "ID"))
	st, _ = other("DELETE", "/v1/sessions/"+first.SessionID, "")
	assert.Equal(t, "404", st)
	_, list := other("GET", "/v1/sessions", "")
	assert.JSONEq(t, `{"sessions": []}`, list)
	status, _, body = s.call(t, http.MethodPost, "/v1/sessions/"+first.SessionID+"/run", map[string]any{"code": "result = 1"})
	require.Equal(t, 200, status, "the owner still uses it: %s", body)

	// DELETE removes the container.
	status, _, body = s.call(t, http.MethodDelete, "/v1/sessions/"+first.SessionID, nil)
	require.Equal(t, 200, status, "%s", body)
	assert.Contains(t, string(body), `"ended":"closed"`)
	assert.Equal(t, 1, sessionContainers(t))
	status, _, body = s.call(t, http.MethodPost, "/v1/sessions/"+first.SessionID+"/run", map[string]any{"code": "result = 1"})
	assert.Equal(t, 404, status)
	assert.Contains(t, string(body), "session ended: closed")

	// The idle timeout: no call for 2s ends it (the list does not count
	// as a call).
	status, code, idle, body := openSession(t, s, map[string]any{"idle_timeout": "2s"})
	require.Equal(t, http.StatusCreated, status, "exit %s: %s", code, body)
	listed := func() string {
		_, _, b := s.call(t, http.MethodGet, "/v1/sessions", nil)
		return string(b)
	}
	require.Contains(t, listed(), idle.SessionID)
	eventually(t, 2*time.Minute, func() bool { return !strings.Contains(listed(), idle.SessionID) }, listed)
	status, _, body = s.call(t, http.MethodPost, "/v1/sessions/"+idle.SessionID+"/run", map[string]any{"code": "result = 1"})
	assert.Equal(t, 404, status)
	assert.Contains(t, string(body), "session ended: idle")
	eventually(t, time.Minute, func() bool { return sessionContainers(t) == 1 }, func() string { return "the idle session's container is still there" })

	// Shutdown ends the last one.
	require.Contains(t, listed(), second.SessionID)
	s.stop(t)
	assert.Equal(t, 0, sessionContainers(t), "serve's drain removed the session's container")
}

// TestServeKilledServerSessionsEnd: after kill -9 of serve, an open
// session's container ends by itself, with its interpreter's state, and
// the next command of any kind removes what is left of it.
func TestServeKilledServerSessionsEnd(t *testing.T) {
	s := startServe(t, "--warm-per-skill", "1", "--max-warm", "1")
	status, code, doc, body := openSession(t, s, nil)
	require.Equal(t, http.StatusCreated, status, "exit %s: %s", code, body)
	status, _, body = s.call(t, http.MethodPost, "/v1/sessions/"+doc.SessionID+"/run", map[string]any{"code": "x = 41\nresult = x"})
	require.Equal(t, http.StatusOK, status, "%s", body)
	ids := sessionContainerIDs(t)
	require.Len(t, ids, 1)
	session := ids[0]
	// The pool's replacement of the container the session took is ready
	// (killing the server while containerd creates a task can leave the
	// task where containerd no longer sees it: not this test's problem).
	require.True(t, waitWarm(s.http, 1), "the pool's replacement is ready")
	ctx := context.Background()
	ct, err := ctdClient(t).LoadContainer(ctx, session)
	require.NoError(t, err)
	task, err := ct.Task(ctx, nil)
	require.NoError(t, err)
	st, err := task.Status(ctx)
	require.NoError(t, err)
	require.Equal(t, containerd.Running, st.Status, "the session's container runs")

	require.NoError(t, s.cmd.Process.Kill())
	<-s.exited
	killed := time.Now()
	// 10s is the bound a session may outlive its server by, not a speed.
	for time.Since(killed) < 10*time.Second {
		if st, err = task.Status(ctx); err != nil || st.Status == containerd.Stopped {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !errdefs.IsNotFound(err) {
		require.NoError(t, err)
		require.Equal(t, containerd.Stopped, st.Status, "the session outlived its server by 10s")
		assert.Equal(t, uint32(pid1.HostGoneStatus), st.ExitStatus, "its init saw its host go")
	}
	assert.Empty(t, cgroupProcs(session), "no process left in its cgroups")
	t.Logf("the session stopped %s after the kill (measured, not asserted)", time.Since(killed).Round(time.Millisecond))

	r := sb(t, "ls")
	require.Equal(t, 0, r.code, r.stderr)
	assertNoRunLeftovers(t)
}

// TestServeSessionsGoClient: the Go client (the one --host uses) opens,
// uses, lists and closes sessions on a real server; a call after a
// timeout and after a close fails with the reason, an unknown id with
// not-found and no reason; nothing is left.
func TestServeSessionsGoClient(t *testing.T) {
	s := startServe(t, "--warm-per-skill", "1", "--max-warm", "2")
	c, err := skillclient.New("unix://" + s.sock)
	require.NoError(t, err)
	ctx := context.Background()
	open := func() string {
		t.Helper()
		sess, err := c.OpenSession(ctx, api.SessionRequest{SkillID: "sess", Image: env.base, Memory: "256m", MaxLifetime: sessionLifetime.String()})
		require.NoError(t, err)
		require.Len(t, sess.SessionID, 32)
		assert.Equal(t, int64(256<<20), sess.Limits.MemoryBytes)
		return sess.SessionID
	}
	id := open()
	r, err := c.SessionRun(ctx, id, api.SessionRunRequest{Code: "x = 41"})
	require.NoError(t, err)
	assert.Empty(t, r.SessionEnded)
	r, err = c.SessionRun(ctx, id, api.SessionRunRequest{
		Code:  "result = x + 1\nopen('/data/out/o.txt', 'w').write(open('/data/in/a.txt').read() + '!')",
		Files: map[string]string{"a.txt": base64.StdEncoding.EncodeToString([]byte("hi"))},
	})
	require.NoError(t, err)
	assert.JSONEq(t, "42", string(r.Result))
	require.Len(t, r.Files, 1)
	assert.Equal(t, "o.txt", r.Files[0].Name)
	assert.Equal(t, base64.StdEncoding.EncodeToString([]byte("hi!")), r.Files[0].Content)
	list, err := c.ListSessions(ctx)
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, id, list[0].SessionID)

	// A call that times out ends the session and says so; the next one
	// fails with why.
	r, err = c.SessionRun(ctx, id, api.SessionRunRequest{Code: "import time\ntime.sleep(60)", Timeout: "1s"})
	require.NotNil(t, r, "the call's document: %v", err)
	assert.True(t, r.TimedOut)
	assert.Equal(t, "timeout", r.SessionEnded)
	_, err = c.SessionRun(ctx, id, api.SessionRunRequest{Code: "result = x"})
	require.Error(t, err)
	assert.Equal(t, "timeout", skillclient.EndedReason(err), "%v", err)
	assert.True(t, errdefs.IsNotFound(err), "%v", err)
	assert.Equal(t, api.ExitNotFound, api.ExitCode(err))

	// An unknown id is not found, with no reason.
	_, err = c.SessionRun(ctx, strings.Repeat("0", 32), api.SessionRunRequest{Code: "pass"})
	assert.True(t, errdefs.IsNotFound(err), "%v", err)
	assert.Empty(t, skillclient.EndedReason(err))

	// Close: the container goes, and the next call says "closed".
	id = open()
	closed, err := c.CloseSession(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, "closed", closed.Ended)
	_, err = c.SessionRun(ctx, id, api.SessionRunRequest{Code: "pass"})
	assert.Equal(t, "closed", skillclient.EndedReason(err), "%v", err)
	list, err = c.ListSessions(ctx)
	require.NoError(t, err)
	assert.Empty(t, list)
	assert.Equal(t, 0, sessionContainers(t), "the sessions' containers are gone")
}

// TestServeSessionsCLI: `skillbuild --host … session` opens, uses, lists
// and closes sessions of a real server, with run's output and exit codes;
// a call that times out says it ended the session, and the next call
// exits 4 saying why.
func TestServeSessionsCLI(t *testing.T) {
	s := startServe(t, "--warm-per-skill", "1", "--max-warm", "2")
	host := "unix://" + s.sock
	session := func(args ...string) result {
		t.Helper()
		return sb(t, append([]string{"--host", host, "session"}, args...)...)
	}
	open := func() string {
		t.Helper()
		r := session("open", "--image", env.base, "--memory", "256m", "--max-lifetime", sessionLifetime.String(), "sess")
		require.Equal(t, 0, r.code, r.stderr)
		id := strings.TrimSpace(r.stdout)
		require.Len(t, id, 32, r.stdout)
		return id
	}
	id := open()
	r := session("run", "-c", "x = 41\nprint('hi')", id)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, "hi\n", r.stdout)
	in := filepath.Join(t.TempDir(), "a.txt")
	require.NoError(t, os.WriteFile(in, []byte("data"), 0o644))
	outDir := filepath.Join(t.TempDir(), "out")
	r = session("run", "--in", "a.txt="+in, "--out-dir", outDir, "-c", "result = x + 1\nopen('/data/out/o.txt', 'w').write(open('/data/in/a.txt').read())", id)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, "42\n", r.stdout)
	got, err := os.ReadFile(filepath.Join(outDir, "o.txt"))
	require.NoError(t, err)
	assert.Equal(t, "data", string(got))
	r = session("ls", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	var list api.SessionList
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &list), r.stdout)
	require.Len(t, list.Sessions, 1)
	assert.Equal(t, id, list.Sessions[0].SessionID)

	r = session("run", "--timeout", "1s", "-c", "import time\ntime.sleep(60)", id)
	assert.Equal(t, 124, r.code, r.stderr)
	assert.Contains(t, r.stderr, "this call ended the session: timeout")
	r = session("run", "-c", "result = x", id)
	assert.Equal(t, api.ExitNotFound, r.code, r.stderr)
	assert.Contains(t, r.stderr, "session ended: timeout")

	id = open()
	r = session("run", "--json", "-c", "result = 7", id)
	require.Equal(t, 0, r.code, r.stderr)
	var doc api.SessionRunResult
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &doc), r.stdout)
	assert.JSONEq(t, "7", string(doc.Result))
	assert.Empty(t, doc.SessionEnded)
	r = session("close", id)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, "closed "+id+"\n", r.stdout)
	r = session("run", "-c", "pass", id)
	assert.Equal(t, api.ExitNotFound, r.code)
	assert.Contains(t, r.stderr, "session ended: closed")
	r = session("ls")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, 1, strings.Count(r.stdout, "\n"), "the header only: %s", r.stdout)
	assert.Equal(t, 0, sessionContainers(t), "the sessions' containers are gone")
}
