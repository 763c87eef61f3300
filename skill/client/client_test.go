package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/skillbuild/skillbuild/server"
	"github.com/skillbuild/skillbuild/skill/api"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// backend answers like the service would, from memory: these tests are
// about what crosses the wire.
type backend struct{ got []any }

// Sessions need a live interpreter: the client's session calls are tested
// against a real server (integration's TestServeSessionsGoClient).
func (b *backend) OpenSession(context.Context, string, api.SessionRequest) (*api.Session, error) {
	return nil, errdefs.ErrNotImplemented
}
func (b *backend) SessionRun(context.Context, string, string, api.SessionRunRequest) (*api.SessionRunResult, error) {
	return nil, errdefs.ErrNotImplemented
}
func (b *backend) CloseSession(context.Context, string, string) (*api.Session, error) {
	return nil, errdefs.ErrNotImplemented
}
func (b *backend) ListSessions(context.Context, string) (*api.SessionList, error) {
	return nil, errdefs.ErrNotImplemented
}
func (b *backend) OpenSessions() int { return 0 }

func (b *backend) Install(_ context.Context, req api.InstallRequest, progress func(any)) (*api.InstallResult, error) {
	b.got = append(b.got, req)
	if progress != nil {
		progress(map[string]any{"vertexes": []any{map[string]string{"name": "resolve"}}})
	}
	if req.SkillID == "vuln" {
		fs := []api.Finding{{ID: "PYSEC-1", Package: "pip", Version: "23.0.1"}}
		return &api.InstallResult{SkillID: "vuln", Error: "vulnerabilities detected", Vulnerabilities: fs, Scan: api.ScanRefused},
			fmt.Errorf("gate: %w", &api.VulnerableError{Findings: fs})
	}
	return &api.InstallResult{Success: true, SkillID: req.SkillID, ImageTag: "atom-skill:" + req.SkillID + "-v1"}, nil
}

func (b *backend) Scan(_ context.Context, req api.ScanRequest, _ func(any)) (*api.ScanResult, error) {
	b.got = append(b.got, req)
	return &api.ScanResult{Safe: true}, nil
}

func (b *backend) List(_ context.Context, req api.ListRequest) ([]api.SkillImage, error) {
	b.got = append(b.got, req)
	return []api.SkillImage{{SkillID: "a", Unpacked: map[bool]int64{true: 9}[req.Unpacked]}}, nil
}

func (b *backend) Remove(_ context.Context, req api.RemoveRequest) (*api.RemoveResult, error) {
	return &api.RemoveResult{Removed: []api.SkillImage{}, Error: "no skill image " + req.SkillID}, fmt.Errorf("no skill image %s: %w", req.SkillID, errdefs.ErrNotFound)
}

func (b *backend) Run(_ context.Context, req api.RunRequest) (*api.RunResult, error) {
	b.got = append(b.got, req)
	switch req.SkillID {
	case "missing":
		err := fmt.Errorf("image atom-skill:missing-v1 not found: %w", errdefs.ErrNotFound)
		return &api.RunResult{SkillID: "missing", Error: &api.CodeError{Type: "ImageNotFound", Message: err.Error()}}, err
	case "down":
		return nil, fmt.Errorf("containerd is not serving: %w", errdefs.ErrUnavailable)
	case "bad":
		return nil, fmt.Errorf("memory 1k is too small: %w", errdefs.ErrInvalidArgument)
	}
	code := 0
	if req.Code == "pass" {
		return &api.RunResult{SkillID: req.SkillID, ExitCode: &code}, nil
	}
	return &api.RunResult{SkillID: req.SkillID, ExitCode: &code, Stdout: "out\n", Stderr: "err\n", Result: json.RawMessage(`42`)}, nil
}

func (b *backend) Inspect(_ context.Context, req api.InspectRequest) (*api.InspectResult, error) {
	return &api.InspectResult{Name: req.Ref, Source: "registry"}, nil
}

func (b *backend) Health(context.Context) (*api.Health, error) { return &api.Health{OK: true}, nil }
func (b *backend) PoolStats() api.PoolStats                    { return api.PoolStats{} }

// serve runs a server for b on addr (unix://... or tcp://127.0.0.1:0) and
// returns the address clients use.
func serve(t *testing.T, b server.Backend, addr string, opts ...server.Opt) string {
	t.Helper()
	s, err := server.New(b, opts...)
	require.NoError(t, err)
	ln, err := server.Listen(addr, "")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	if tcp, ok := ln.Addr().(*net.TCPAddr); ok {
		return "tcp://" + tcp.String()
	}
	return addr
}

func unixServer(t *testing.T, b server.Backend) *Client {
	t.Helper()
	c, err := New(serve(t, b, "unix://"+filepath.Join(t.TempDir(), "api.sock")))
	require.NoError(t, err)
	return c
}

func TestOperations(t *testing.T) {
	t.Parallel()
	b := &backend{}
	c := unixServer(t, b)
	ctx := context.Background()

	var stdout, stderr bytes.Buffer
	run, err := c.Run(ctx, api.RunRequest{SkillID: "ok", Code: "print(1)", Local: api.RunLocal{Stdout: &stdout, Stderr: &stderr}})
	require.NoError(t, err)
	assert.Equal(t, "42", string(run.Result))
	assert.Equal(t, "out\n", stdout.String(), "the output reaches the run's writers")
	assert.Equal(t, "err\n", stderr.String())
	run, err = c.Run(ctx, api.RunRequest{SkillID: "ok", Code: "pass"})
	require.NoError(t, err)
	assert.Nil(t, run.Result, "no result is nil, as the service leaves it, not the JSON null")

	var events []any
	inst, err := c.Install(ctx, api.InstallRequest{SkillID: "ok", Requirements: []string{"a==1"}}, func(ev any) { events = append(events, ev) })
	require.NoError(t, err)
	assert.Equal(t, "atom-skill:ok-v1", inst.ImageTag)
	require.Len(t, events, 1, "progress streamed")
	assert.JSONEq(t, `{"vertexes": [{"name": "resolve"}]}`, string(events[0].(json.RawMessage)))
	assert.True(t, b.got[len(b.got)-1].(api.InstallRequest).Progress, "a progress callback asks for the stream")

	imgs, err := c.List(ctx, api.ListRequest{Unpacked: true})
	require.NoError(t, err)
	assert.Equal(t, int64(9), imgs[0].Unpacked, "--unpacked travels")

	ins, err := c.Inspect(ctx, api.InspectRequest{Ref: "localhost:5000/x:1"})
	require.NoError(t, err)
	assert.Equal(t, "localhost:5000/x:1", ins.Name)

	h, err := c.Health(ctx)
	require.NoError(t, err)
	assert.True(t, h.OK)
	require.NoError(t, c.Close(ctx))
}

// TestFailuresClassifyAsOnTheServer: each failure comes back with the
// server's document (when it had one) and an error whose exit code is the
// one the server reported.
func TestFailuresClassifyAsOnTheServer(t *testing.T) {
	t.Parallel()
	c := unixServer(t, &backend{})
	ctx := context.Background()

	run, err := c.Run(ctx, api.RunRequest{SkillID: "missing", Code: "pass"})
	require.NotNil(t, run, "a run that did not happen keeps its document")
	assert.Equal(t, "ImageNotFound", run.Error.Type)
	assert.Equal(t, api.ExitNotFound, api.ExitCode(err))
	assert.True(t, errdefs.IsNotFound(err))
	assert.Equal(t, "image atom-skill:missing-v1 not found: not found", err.Error())

	_, err = c.Run(ctx, api.RunRequest{SkillID: "down", Code: "pass"})
	assert.Equal(t, api.ExitTempFail, api.ExitCode(err))

	inst, err := c.Install(ctx, api.InstallRequest{SkillID: "vuln"}, nil)
	require.NotNil(t, inst)
	assert.Equal(t, api.ScanRefused, inst.Scan)
	assert.Equal(t, api.ExitVulnerable, api.ExitCode(err))
	fs, ok := api.Findings(err)
	require.True(t, ok)
	assert.Equal(t, "PYSEC-1", fs[0].ID)
	// The same through the progress stream.
	_, err = c.Install(ctx, api.InstallRequest{SkillID: "vuln"}, func(any) {})
	assert.True(t, api.IsVulnerable(err), "%v", err)

	rm, err := c.Remove(ctx, api.RemoveRequest{SkillID: "nope"})
	require.NotNil(t, rm)
	assert.Equal(t, api.ExitNotFound, api.ExitCode(err))

	// A failure without a document has an error document only.
	run, err = c.Run(ctx, api.RunRequest{SkillID: "bad", Code: "pass"})
	assert.Nil(t, run)
	assert.Equal(t, api.ExitBadInput, api.ExitCode(err), "%v", err)
	var e *Error
	require.True(t, errors.As(err, &e))
	assert.Equal(t, 400, e.Status)
	assert.Equal(t, "memory 1k is too small: invalid argument", e.Message)

	// Inputs that are no JSON never leave.
	_, err = c.Run(ctx, api.RunRequest{SkillID: "ok", Inputs: json.RawMessage(`{"broken"`)})
	assert.Equal(t, api.ExitBadInput, api.ExitCode(err), "%v", err)
}

// TestLocalPartsStay: a request with parts of the caller's host is
// refused before anything is sent.
func TestLocalPartsStay(t *testing.T) {
	t.Parallel()
	b := &backend{}
	c := unixServer(t, b)
	ctx := context.Background()
	_, err := c.Install(ctx, api.InstallRequest{SkillID: "a", Local: api.InstallLocal{Outputs: []string{"oci-archive=x.tar"}, Push: "r/x:1"}}, nil)
	assert.ErrorIs(t, err, errdefs.ErrInvalidArgument)
	assert.ErrorContains(t, err, "Local.Outputs")
	assert.ErrorContains(t, err, "Local.Push")
	_, err = c.Run(ctx, api.RunRequest{SkillID: "a", Local: api.RunLocal{Pull: "always"}})
	assert.ErrorContains(t, err, "Local.Pull")
	_, err = c.Scan(ctx, api.ScanRequest{Local: api.ScanLocal{DB: "osv.zip"}}, nil)
	assert.ErrorContains(t, err, "Local.DB")
	assert.Empty(t, b.got, "nothing reached the server")
}

func TestTokenAndReachability(t *testing.T) {
	t.Parallel()
	const token = "0123456789abcdef-token"
	addr := serve(t, &backend{}, "tcp://127.0.0.1:0", server.WithToken(token))
	ctx := context.Background()

	_, err := New(addr)
	assert.ErrorIs(t, err, errdefs.ErrInvalidArgument, "TCP without a token")
	c, err := New(addr, WithToken(" "+token+"\n"))
	require.NoError(t, err)
	_, err = c.List(ctx, api.ListRequest{})
	require.NoError(t, err)

	wrong, err := New(addr, WithToken("not-the-token-at-all"))
	require.NoError(t, err)
	_, err = wrong.List(ctx, api.ListRequest{})
	assert.Equal(t, api.ExitBadInput, api.ExitCode(err))
	assert.ErrorContains(t, err, "refused the bearer token")

	for _, host := range []string{"unix://" + filepath.Join(t.TempDir(), "none.sock"), "tcp://127.0.0.1:1"} {
		c, err := New(host, WithToken(token))
		require.NoError(t, err)
		_, err = c.Run(ctx, api.RunRequest{SkillID: "a", Code: "pass"})
		assert.Equal(t, api.ExitTempFail, api.ExitCode(err), "%s: %v", host, err)
		assert.ErrorContains(t, err, "cannot reach skillbuild serve at "+host)
	}
	for _, host := range []string{"", "/run/x.sock", "http://127.0.0.1:1", "tcp://127.0.0.1", "unix://relative.sock"} {
		_, err := New(host, WithToken(token))
		assert.ErrorIs(t, err, errdefs.ErrInvalidArgument, host)
	}

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = c.List(cancelled, api.ListRequest{})
	assert.Equal(t, api.ExitInterrupted, api.ExitCode(err), "%v", err)
}
