package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/skillbuild/skillbuild/scan"
	"github.com/skillbuild/skillbuild/skill/api"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeOps answers like the service would, from memory: these tests are
// about the HTTP side (the integration suite drives the real one).
type fakeOps struct {
	runStarted chan struct{}
	runRelease chan struct{}
	fakeSessions
}

func (f *fakeOps) Install(_ context.Context, req api.InstallRequest, progress func(any)) (*api.InstallResult, error) {
	if progress != nil {
		progress(map[string]string{"vertex": "resolve"})
		progress(map[string]string{"vertex": "install"})
	}
	if req.SkillID == "vuln" {
		return &api.InstallResult{Success: false, Error: "vulnerabilities detected"}, fmt.Errorf("refused: %w", &scan.VulnerableError{})
	}
	return &api.InstallResult{Success: true, SkillID: req.SkillID}, nil
}

func (f *fakeOps) Scan(context.Context, api.ScanRequest, func(any)) (*api.ScanResult, error) {
	return &api.ScanResult{Safe: true}, nil
}
func (f *fakeOps) List(_ context.Context, req api.ListRequest) ([]api.SkillImage, error) {
	if req.Unpacked {
		return []api.SkillImage{{SkillID: "a", Unpacked: 4096}}, nil
	}
	return nil, nil
}
func (f *fakeOps) Remove(_ context.Context, req api.RemoveRequest) (*api.RemoveResult, error) {
	return nil, fmt.Errorf("no skill %s: %w", req.SkillID, errdefs.ErrNotFound)
}

func (f *fakeOps) Run(_ context.Context, req api.RunRequest) (*api.RunResult, error) {
	if f.runStarted != nil {
		close(f.runStarted)
		<-f.runRelease
	}
	result, _ := json.Marshal(req.Code)
	return &api.RunResult{SkillID: req.SkillID, Result: result}, nil
}
func (f *fakeOps) Inspect(_ context.Context, req api.InspectRequest) (*api.InspectResult, error) {
	if req.SkillID == "nope" {
		return nil, fmt.Errorf("image atom-skill:nope-v1 not found: %w", errdefs.ErrNotFound)
	}
	return &api.InspectResult{Name: "docker.io/library/atom-skill:" + req.SkillID + "-v1", Source: "containerd"}, nil
}

func (f *fakeOps) Health(context.Context) (*api.Health, error) { return &api.Health{OK: true}, nil }

func (f *fakeOps) PoolStats() api.PoolStats {
	return api.PoolStats{Warm: 2, WarmByImage: map[string]int{"a": 2}}
}

func newTestServer(t *testing.T, ops Backend, opts ...Opt) *httptest.Server {
	t.Helper()
	s, err := New(ops, opts...)
	require.NoError(t, err)
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return ts
}

func post(t *testing.T, ts *httptest.Server, path, body string, header ...string) (*http.Response, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, ts.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := ts.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var doc map[string]any
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &doc)
	return resp, doc
}

func TestStatusAndErrorDocuments(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, &fakeOps{}, WithMaxBody(1024))
	for _, tc := range []struct {
		name, path, body string
		status           int
		exit             string
		errContains      string
	}{
		{"run works", "/v1/run", `{"skill_id": "a", "code": "print(1)"}`, 200, "0", ""},
		{"unknown field", "/v1/run", `{"skill_id": "a", "cmd": "x"}`, 400, "2", `unknown field "cmd"`},
		{"not JSON", "/v1/run", `skill_id=a`, 400, "2", "request body of POST /v1/run"},
		{"two documents", "/v1/run", `{} {}`, 400, "2", "more than one JSON value"},
		{"body too large", "/v1/run", `{"code": "` + strings.Repeat("x", 2048) + `"}`, 413, "2", "larger than 1024 bytes"},
		{"refused build keeps its document", "/v1/install", `{"skill_id": "vuln"}`, 422, "3", ""},
		{"not found gets an error document", "/v1/remove", `{"skill_id": "nope"}`, 404, "4", "no skill nope"},
		{"inspect", "/v1/inspect", `{"skill_id": "a"}`, 200, "0", ""},
		{"inspect of a missing image", "/v1/inspect", `{"skill_id": "nope"}`, 404, "4", "atom-skill:nope-v1 not found"},
	} {
		resp, doc := post(t, ts, tc.path, tc.body)
		assert.Equal(t, tc.status, resp.StatusCode, tc.name)
		assert.Equal(t, tc.exit, resp.Header.Get(HeaderExitCode), tc.name)
		assert.Equal(t, "application/json", resp.Header.Get("Content-Type"), tc.name)
		if tc.errContains != "" {
			assert.Contains(t, doc["error"], tc.errContains, tc.name)
			assert.EqualValues(t, mustAtoi(tc.exit), doc["exit_code"], tc.name)
		}
	}
	// The refusal is the operation's own document, not a generic one.
	_, doc := post(t, ts, "/v1/install", `{"skill_id": "vuln"}`)
	assert.Equal(t, "vulnerabilities detected", doc["error"])
	assert.Equal(t, false, doc["success"])

	resp, err := ts.Client().Get(ts.URL + "/v1/run")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
	for _, path := range []string{"/v1/health", "/v1/skills"} {
		resp, err := ts.Client().Get(ts.URL + path)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode, path)
		assert.Equal(t, "0", resp.Header.Get(HeaderExitCode), path)
	}
}

// TestListUnpacked: GET /v1/skills takes ls's --unpacked as a query.
func TestListUnpacked(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, &fakeOps{})
	for query, want := range map[string]string{"": "[]\n", "?unpacked=true": `"unpacked_size":4096`, "?unpacked=0": "[]\n"} {
		resp, err := ts.Client().Get(ts.URL + "/v1/skills" + query)
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode, query)
		assert.Contains(t, string(b), want, query)
	}
	resp, err := ts.Client().Get(ts.URL + "/v1/skills?unpacked=maybe")
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.Equal(t, "2", resp.Header.Get(HeaderExitCode))
	assert.Contains(t, string(b), "unpacked")
}

func mustAtoi(s string) int {
	var n int
	fmt.Sscan(s, &n)
	return n
}

func TestToken(t *testing.T) {
	t.Parallel()
	_, err := New(&fakeOps{}, WithToken("short"))
	assert.ErrorIs(t, err, errdefs.ErrInvalidArgument, "a guessable token is refused")
	token := "0123456789abcdef0123"
	ts := newTestServer(t, &fakeOps{}, WithToken(token+"\n"))
	resp, doc := post(t, ts, "/v1/run", `{"code": "x"}`)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Contains(t, doc["error"], "bearer token")
	resp, _ = post(t, ts, "/v1/run", `{"code": "x"}`, "Authorization", "Bearer wrong")
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	resp, _ = post(t, ts, "/v1/run", `{"code": "x"}`, "Authorization", "Bearer "+token)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
}

func TestInstallProgressStream(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, &fakeOps{})
	for _, tc := range []struct {
		id   string
		code int
	}{{"ok", 0}, {"vuln", 3}} {
		resp, err := ts.Client().Post(ts.URL+"/v1/install", "application/json", strings.NewReader(`{"skill_id": "`+tc.id+`", "progress": true}`))
		require.NoError(t, err)
		assert.Equal(t, "application/x-ndjson", resp.Header.Get("Content-Type"))
		var lines []StreamEvent
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			var ev StreamEvent
			require.NoError(t, json.Unmarshal(sc.Bytes(), &ev), sc.Text())
			lines = append(lines, ev)
		}
		resp.Body.Close()
		require.Len(t, lines, 3)
		assert.NotNil(t, lines[0].Progress)
		assert.NotNil(t, lines[1].Progress)
		require.NotNil(t, lines[2].ExitCode, "the last line is the result")
		assert.Equal(t, tc.code, *lines[2].ExitCode)
		assert.NotNil(t, lines[2].Result)
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, &fakeOps{})
	post(t, ts, "/v1/run", `{"code": "1"}`)
	post(t, ts, "/v1/run", `{"bad": 1}`)
	post(t, ts, "/v1/install", `{"skill_id": "vuln"}`)
	resp, err := ts.Client().Get(ts.URL + "/metrics")
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	text := string(b)
	for _, want := range []string{
		`skillbuild_requests_total{endpoint="run",exit_code="0"} 1`,
		`skillbuild_requests_total{endpoint="run",exit_code="2"} 1`,
		`skillbuild_builds_total{exit_code="3"} 1`,
		`skillbuild_build_refusals_total 1`,
		`skillbuild_run_duration_seconds_bucket{le="+Inf"} 1`,
		`skillbuild_run_duration_seconds_count 1`,
		`skillbuild_requests_in_flight{endpoint="run"} 0`,
		"# TYPE skillbuild_pool_warm gauge",
		`skillbuild_pool_warm 2`,
		`skillbuild_pool_warm_by_image{image="a"} 2`,
	} {
		assert.Contains(t, text, want)
	}
	// Every sample line is NAME{labels} VALUE.
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		assert.Len(t, strings.Fields(line), 2, line)
	}
}

func TestListen(t *testing.T) {
	t.Parallel()
	for _, addr := range []string{"tcp://0.0.0.0:0", "tcp://10.1.2.3:80", "tcp://example.com:80", "http://127.0.0.1:1", "unix://relative.sock", "/run/x.sock"} {
		_, err := Listen(addr, "")
		assert.ErrorIs(t, err, errdefs.ErrInvalidArgument, addr)
	}
	ln, err := Listen("tcp://127.0.0.1:0", "")
	require.NoError(t, err)
	defer ln.Close()
	s, err := New(&fakeOps{})
	require.NoError(t, err)
	err = s.Serve(context.Background(), ln)
	assert.ErrorIs(t, err, errdefs.ErrInvalidArgument, "TCP without a token is refused")

	dir := t.TempDir()
	sock := filepath.Join(dir, "sub", "api.sock")
	ln, err = Listen("unix://"+sock, "0")
	require.NoError(t, err)
	fi, err := os.Stat(sock)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o660), fi.Mode().Perm())
	_, err = Listen("unix://"+sock, "")
	assert.ErrorIs(t, err, errdefs.ErrUnavailable, "a live server's socket is not taken over")
	ln.Close()
	_, err = os.Stat(sock)
	assert.ErrorIs(t, err, os.ErrNotExist, "closing removes the socket")

	// A stale socket (its server died) is replaced.
	stale, err := net.Listen("unix", sock)
	require.NoError(t, err)
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()
	ln, err = Listen("unix://"+sock, "")
	require.NoError(t, err)
	ln.Close()
	require.NoError(t, os.WriteFile(sock, nil, 0o600))
	_, err = Listen("unix://"+sock, "")
	assert.ErrorIs(t, err, errdefs.ErrInvalidArgument, "a file that is not a socket is left alone")
}

// TestServeDrains: after ctx is cancelled, a request in flight still gets
// its answer, and new connections are refused.
func TestServeDrains(t *testing.T) {
	t.Parallel()
	ops := &fakeOps{runStarted: make(chan struct{}), runRelease: make(chan struct{})}
	s, err := New(ops)
	require.NoError(t, err)
	sock := filepath.Join(t.TempDir(), "api.sock")
	ln, err := Listen("unix://"+sock, "")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()

	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	answered := make(chan string, 1)
	go func() {
		resp, err := hc.Post("http://skillbuild/v1/run", "application/json", bytes.NewReader([]byte(`{"skill_id": "a", "code": "late"}`)))
		if err != nil {
			answered <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		answered <- string(b)
	}()
	<-ops.runStarted
	cancel()
	select {
	case err := <-served:
		t.Fatalf("Serve returned with a request in flight: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(ops.runRelease)
	assert.Contains(t, <-answered, `"result":"late"`)
	require.NoError(t, <-served)
	_, err = net.Dial("unix", sock)
	assert.Error(t, err, "no longer listening")
}
