package server

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/skillbuild/skillbuild/skill/api"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeSessions keeps sessions in memory with the service's owner rule
// (package skill's tests and the integration suite drive the real one).
type fakeSessions struct {
	mu     sync.Mutex
	max    int
	owners map[string]string // id → owner
	ended  map[string]string // id → reason
	seen   []string          // owners of the requests
}

func (f *fakeSessions) saw(owner string) {
	f.mu.Lock()
	f.seen = append(f.seen, owner)
	f.mu.Unlock()
}

func (f *fakeSessions) OpenSession(_ context.Context, owner string, req api.SessionRequest) (*api.Session, error) {
	f.saw(owner)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.owners == nil {
		f.owners, f.ended = map[string]string{}, map[string]string{}
	}
	if f.max > 0 && len(f.owners) >= f.max {
		return nil, fmt.Errorf("too many sessions: %w", errdefs.ErrResourceExhausted)
	}
	id := fmt.Sprintf("s%d", len(f.owners)+len(f.ended))
	f.owners[id] = owner
	return &api.Session{SessionID: id, SkillID: req.SkillID}, nil
}

func (f *fakeSessions) lookup(owner, id string) error {
	if o, ok := f.owners[id]; ok && o == owner {
		return nil
	}
	if r, ok := f.ended[id]; ok {
		return fmt.Errorf("session ended: %s: %w", r, errdefs.ErrNotFound)
	}
	return fmt.Errorf("session %s not found: %w", id, errdefs.ErrNotFound)
}

func (f *fakeSessions) SessionRun(_ context.Context, owner, id string, req api.SessionRunRequest) (*api.SessionRunResult, error) {
	f.saw(owner)
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.lookup(owner, id); err != nil {
		return nil, err
	}
	out := &api.SessionRunResult{RunResult: api.RunResult{SkillID: "a", Stdout: req.Code}}
	if req.Timeout == "1ms" {
		out.SessionEnded = "timeout"
		delete(f.owners, id)
		f.ended[id] = "timeout"
	}
	return out, nil
}

func (f *fakeSessions) CloseSession(_ context.Context, owner, id string) (*api.Session, error) {
	f.saw(owner)
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.lookup(owner, id); err != nil {
		return nil, err
	}
	delete(f.owners, id)
	f.ended[id] = "closed"
	return &api.Session{SessionID: id, Ended: "closed"}, nil
}

func (f *fakeSessions) OpenSessions() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.owners)
}

func (f *fakeSessions) ListSessions(_ context.Context, owner string) (*api.SessionList, error) {
	f.saw(owner)
	f.mu.Lock()
	defer f.mu.Unlock()
	out := &api.SessionList{Sessions: []api.Session{}}
	for id, o := range f.owners {
		if o == owner {
			out.Sessions = append(out.Sessions, api.Session{SessionID: id})
		}
	}
	return out, nil
}

func do(t *testing.T, hc *http.Client, method, url, body string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	resp, err := hc.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header.Get(HeaderExitCode), string(b)
}

// TestSessionEndpoints: open answers 201, a call 200 with session_ended
// when it ended the session, then 404 saying why; DELETE ends one; the
// N+1th open is 429 with exit code 75.
func TestSessionEndpoints(t *testing.T) {
	t.Parallel()
	ops := &fakeOps{fakeSessions: fakeSessions{max: 2}}
	ts := newTestServer(t, ops)
	hc, u := ts.Client(), ts.URL

	status, exit, body := do(t, hc, "POST", u+"/v1/sessions", `{"skill_id": "a"}`)
	require.Equal(t, http.StatusCreated, status, body)
	assert.Equal(t, "0", exit)
	assert.Contains(t, body, `"session_id":"s0"`)
	status, _, body = do(t, hc, "POST", u+"/v1/sessions", `{"skill_id": "a", "idel_timeout": "1m"}`)
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Contains(t, body, `unknown field \"idel_timeout\"`)

	status, _, body = do(t, hc, "POST", u+"/v1/sessions/s0/run", `{"code": "x = 1"}`)
	require.Equal(t, http.StatusOK, status, body)
	assert.Contains(t, body, `"stdout":"x = 1"`)
	assert.NotContains(t, body, "session_ended")
	status, _, body = do(t, hc, "POST", u+"/v1/sessions/s0/run", `{"code": "sleep", "timeout": "1ms"}`)
	require.Equal(t, http.StatusOK, status, body)
	assert.Contains(t, body, `"session_ended":"timeout"`)
	status, exit, body = do(t, hc, "POST", u+"/v1/sessions/s0/run", `{"code": "x"}`)
	assert.Equal(t, http.StatusNotFound, status)
	assert.Equal(t, "4", exit)
	assert.Contains(t, body, "session ended: timeout")

	status, _, _ = do(t, hc, "POST", u+"/v1/sessions", `{"skill_id": "a"}`)
	require.Equal(t, http.StatusCreated, status)
	status, _, _ = do(t, hc, "POST", u+"/v1/sessions", `{"skill_id": "a"}`)
	require.Equal(t, http.StatusCreated, status)
	status, exit, body = do(t, hc, "POST", u+"/v1/sessions", `{"skill_id": "a"}`)
	assert.Equal(t, http.StatusTooManyRequests, status, body)
	assert.Equal(t, "75", exit)
	assert.Contains(t, body, "too many sessions")

	status, _, body = do(t, hc, "GET", u+"/v1/sessions", "")
	require.Equal(t, http.StatusOK, status)
	assert.Contains(t, body, `"s1"`)
	assert.Contains(t, body, `"s2"`)
	status, _, body = do(t, hc, "DELETE", u+"/v1/sessions/s1", "")
	require.Equal(t, http.StatusOK, status, body)
	assert.Contains(t, body, `"ended":"closed"`)
	status, _, body = do(t, hc, "DELETE", u+"/v1/sessions/s1", "")
	assert.Equal(t, http.StatusNotFound, status)
	assert.Contains(t, body, "session ended: closed")
	status, _, body = do(t, hc, "GET", u+"/metrics", "")
	require.Equal(t, http.StatusOK, status)
	assert.Contains(t, body, "\nskillbuild_sessions_open 1\n")
	// Over TCP, the one bearer token is the one identity.
	assert.Subset(t, []string{"bearer"}, ops.seen)
}

// TestSessionOwnerIsPeerUID: over a unix socket, the session's owner is
// the uid of the peer, as the kernel reports it.
func TestSessionOwnerIsPeerUID(t *testing.T) {
	t.Parallel()
	ops := &fakeOps{}
	s, err := New(ops)
	require.NoError(t, err)
	sock := filepath.Join(t.TempDir(), "api.sock")
	ln, err := Listen("unix://"+sock, "")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()
	defer func() {
		cancel()
		require.NoError(t, <-served)
	}()
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	status, _, body := do(t, hc, "POST", "http://skillbuild/v1/sessions", `{"skill_id": "a"}`)
	require.Equal(t, http.StatusCreated, status, body)
	ops.mu.Lock()
	defer ops.mu.Unlock()
	assert.Equal(t, []string{fmt.Sprintf("uid:%d", os.Getuid())}, ops.seen)
}
