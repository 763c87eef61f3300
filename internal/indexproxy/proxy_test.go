package indexproxy

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/session/sshforward"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// bridgeScript is the in-step bridge, run here on the host.
const bridgeScript = "../../llb/indexbridge.py"

const indexBody = "index ok\n"

// forwardedSocket serves p's attachable for id in a real BuildKit session
// and mounts it as a unix socket with the daemon's own code
// (sshforward.MountSSHSocket), the path a step's socket takes. It returns
// the socket path.
func forwardedSocket(t *testing.T, p *Proxy, id string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	sm, err := session.NewManager()
	require.NoError(t, err)
	s, err := session.NewSession(ctx, "indexproxy-test")
	require.NoError(t, err)
	s.Allow(p.Attachable(id))
	var wg sync.WaitGroup
	dialer := func(ctx context.Context, _ string, meta map[string][]string) (net.Conn, error) {
		a, b := net.Pipe()
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = sm.HandleConn(ctx, b, meta)
		}()
		return a, nil
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = s.Run(ctx, dialer)
	}()
	caller, err := sm.Get(ctx, s.ID(), false)
	require.NoError(t, err)
	require.NoError(t, sshforward.CheckSSHID(ctx, caller, id))
	require.Error(t, sshforward.CheckSSHID(ctx, caller, id+"-other"), "an unknown id must not be served")

	sock, closeSock, err := sshforward.MountSSHSocket(ctx, caller, sshforward.SocketOpt{
		ID: id, UID: os.Getuid(), GID: os.Getgid(), Mode: 0o600,
	})
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = closeSock()
		// BuildKit leaves the socket's temp dir behind.
		_ = os.RemoveAll(filepath.Dir(sock))
		_ = s.Close()
		cancel()
		wg.Wait()
	})
	return sock
}

// runBridged runs the bridge script around argv on the host, with a clean
// environment, and returns stdout, stderr and the exit code.
func runBridged(t *testing.T, sock string, argv ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args := append([]string{bridgeScript, sock, "0", "--"}, argv...)
	cmd := exec.CommandContext(ctx, "python3", args...)
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + t.TempDir(), "NO_PROXY=127.0.0.1,localhost"}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return stdout.String(), stderr.String(), code
}

func requireTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed: %v", tool, err)
		}
	}
}

func newIndex(t *testing.T, tlsServer bool, check func(*http.Request) bool) *httptest.Server {
	t.Helper()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if check != nil && !check(r) {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		switch {
		case strings.HasPrefix(r.URL.Path, "/big"):
			_, _ = w.Write(bytes.Repeat([]byte("x"), 256<<10))
		default:
			_, _ = io.WriteString(w, indexBody)
		}
	})
	var srv *httptest.Server
	if tlsServer {
		srv = httptest.NewTLSServer(h)
	} else {
		srv = httptest.NewServer(h)
	}
	t.Cleanup(srv.Close)
	return srv
}

// forbidden is a server the proxy must never reach; it counts its hits.
func forbidden(t *testing.T) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		_, _ = io.WriteString(w, "leaked\n")
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

func hostOf(srv *httptest.Server) string {
	return strings.TrimPrefix(strings.TrimPrefix(srv.URL, "http://"), "https://")
}

func TestProxyThroughBridge(t *testing.T) {
	t.Parallel()
	requireTools(t, "python3", "curl")
	index := newIndex(t, false, nil)
	tlsIndex := newIndex(t, true, nil)
	other, hits := forbidden(t)

	p, err := New([]string{index.URL + "/simple", tlsIndex.URL + "/simple"})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, p.Close()) })
	sock := forwardedSocket(t, p, "index")

	tests := []struct {
		name       string
		argv       []string
		wantCode   int
		wantStdout string
		wantStderr string
		allowed    string
		denied     string
	}{
		{
			name:       "allowed host over plain HTTP",
			argv:       []string{"curl", "-sS", "-f", "-x", "{proxy}", index.URL + "/simple/"},
			wantStdout: indexBody,
			allowed:    "GET " + index.URL + "/simple/",
		},
		{
			name:       "allowed host over a CONNECT tunnel",
			argv:       []string{"curl", "-sS", "-f", "-k", "-x", "{proxy}", tlsIndex.URL + "/simple/"},
			wantStdout: indexBody,
			allowed:    "CONNECT " + hostOf(tlsIndex),
		},
		{
			name:       "proxy from the environment the bridge sets",
			argv:       []string{"curl", "-sS", "-f", index.URL + "/simple/env"},
			wantStdout: indexBody,
			allowed:    "GET " + index.URL + "/simple/env",
		},
		{
			name:       "other port of an allowed host is refused",
			argv:       []string{"curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-x", "{proxy}", other.URL + "/x"},
			wantStdout: "403",
			denied:     "GET " + other.URL + "/x: host not allowed",
		},
		{
			name:       "CONNECT to a host not allowed is refused",
			argv:       []string{"curl", "-sS", "-k", "-x", "{proxy}", "https://" + hostOf(other) + "/"},
			wantCode:   56,
			wantStderr: "403",
			denied:     "CONNECT " + hostOf(other) + ": host not allowed",
		},
		{
			name:     "exit code of the wrapped command",
			argv:     []string{"sh", "-c", "echo to-stderr >&2; exit 7"},
			wantCode: 7,
		},
		{
			name:     "death by signal",
			argv:     []string{"sh", "-c", "kill -TERM $$"},
			wantCode: 128 + 15,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			stdout, stderr, code := runBridged(t, sock, tt.argv...)
			assert.Equal(t, tt.wantCode, code, "stderr: %s", stderr)
			assert.Equal(t, tt.wantStdout, stdout, "stdout must be the command's alone")
			assert.Contains(t, stderr, tt.wantStderr)
			if tt.allowed != "" {
				assert.Contains(t, p.Allowed(), tt.allowed)
			}
			if tt.denied != "" {
				assert.Contains(t, p.Denied(), tt.denied)
			}
		})
	}
	t.Cleanup(func() { assert.Zero(t, hits.Load(), "a refused host was reached") })
}

func TestProxyCredentials(t *testing.T) {
	t.Parallel()
	requireTools(t, "python3", "curl")
	const user, secret = "builder", "s3cret-token"
	auth := func(r *http.Request) bool {
		u, p, ok := r.BasicAuth()
		return ok && u == user && p == secret
	}
	index := newIndex(t, false, auth)
	tlsIndex := newIndex(t, true, auth)
	withCreds := func(srv *httptest.Server) string {
		return strings.Replace(srv.URL, "://", "://"+user+":"+secret+"@", 1) + "/simple"
	}
	pool := tlsIndex.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	p, err := New([]string{withCreds(index), withCreds(tlsIndex)}, WithUpstreamTLS(&tls.Config{RootCAs: pool}))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, p.Close()) })
	sock := forwardedSocket(t, p, "index")

	steps := p.StepURLs()
	require.Len(t, steps, 2)
	assert.Equal(t, index.URL+"/simple", steps[0])
	assert.Equal(t, "http://index-1.index.skillbuild.invalid/simple", steps[1])
	assert.Equal(t, []string{"index-1.index.skillbuild.invalid"}, p.TrustedHosts())

	for i, u := range steps {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			assert.NotContains(t, u, secret)
			stdout, stderr, code := runBridged(t, sock, "curl", "-sS", "-f", "-x", "{proxy}", u+"/pkg/")
			assert.Equal(t, 0, code, "stderr: %s", stderr)
			assert.Equal(t, indexBody, stdout)
		})
	}
	t.Cleanup(func() {
		for _, l := range append(p.Allowed(), p.Denied()...) {
			assert.NotContains(t, l, secret)
		}
	})
}

// TestProxyQueryToken: an index URL's query (an access token) is kept by
// the proxy like credentials: the step's URLs do not carry it, and every
// request for the index gets it added, next to the request's own query.
func TestProxyQueryToken(t *testing.T) {
	t.Parallel()
	const user, secret, token = "builder", "s3cret-pass", "t0ken-value"
	check := func(r *http.Request) bool {
		u, p, ok := r.BasicAuth()
		return ok && u == user && p == secret && r.URL.Query().Get("token") == token
	}
	index := newIndex(t, false, check)
	tlsIndex := newIndex(t, true, check)
	withSecrets := func(srv *httptest.Server) string {
		return strings.Replace(srv.URL, "://", "://"+user+":"+secret+"@", 1) + "/simple?token=" + token
	}
	pool := tlsIndex.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	p, err := New([]string{withSecrets(index), withSecrets(tlsIndex)}, WithUpstreamTLS(&tls.Config{RootCAs: pool}))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, p.Close()) })

	steps := p.StepURLs()
	assert.Equal(t, []string{index.URL + "/simple", "http://index-1.index.skillbuild.invalid/simple"}, steps)
	for _, u := range steps {
		req, err := http.NewRequest(http.MethodGet, u+"/pkg/?page=2", nil)
		require.NoError(t, err)
		resp, err := p.RoundTrip(req)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode, u)
		assert.Equal(t, indexBody, string(body))
	}
	for _, l := range append(p.Allowed(), p.Denied()...) {
		assert.NotContains(t, l, token)
		assert.NotContains(t, l, secret)
	}

	_, err = New([]string{index.URL + "/simple?token=a", index.URL + "/other?token=b"})
	assert.ErrorIs(t, err, errdefs.ErrInvalidArgument, "two tokens for one host")
}

func TestProxyConnByteLimit(t *testing.T) {
	t.Parallel()
	requireTools(t, "python3", "curl")
	index := newIndex(t, false, nil)
	var logs bytes.Buffer
	var mu sync.Mutex
	p, err := New([]string{index.URL}, WithConnLimits(64<<10, time.Hour), WithLog(lockedWriter{&mu, &logs}))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, p.Close()) })
	sock := forwardedSocket(t, p, "index")

	stdout, _, code := runBridged(t, sock, "curl", "-sS", "-f", "-x", "{proxy}", index.URL+"/big")
	assert.NotEqual(t, 0, code)
	assert.Less(t, len(stdout), 256<<10)
	mu.Lock()
	defer mu.Unlock()
	assert.Contains(t, logs.String(), "cut connection: over 65536 bytes")
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// TestProxyUpstreamCloseReachesStep speaks to the forwarded socket
// directly: when the upstream side ends a connection, the step's end of the
// socket must see EOF.
func TestProxyUpstreamCloseReachesStep(t *testing.T) {
	t.Parallel()
	index := newIndex(t, false, nil)
	p, err := New([]string{index.URL})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, p.Close()) })
	sock := forwardedSocket(t, p, "index")

	c, err := net.Dial("unix", sock)
	require.NoError(t, err)
	defer c.Close()
	_, err = fmt.Fprintf(c, "GET %s/simple/ HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", index.URL, hostOf(index))
	require.NoError(t, err)
	got, err := io.ReadAll(c) // returns only on EOF
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(string(got), "HTTP/1.1 200"), "%s", got)
	assert.True(t, strings.HasSuffix(string(got), indexBody), "%s", got)
}

// TestProxyCloseEndsEverything is not parallel: it asserts that no
// goroutine of any Proxy is left, which other tests' proxies would
// break.
func TestProxyCloseEndsEverything(t *testing.T) {
	tlsIndex := newIndex(t, true, nil)
	p, err := New([]string{tlsIndex.URL})
	require.NoError(t, err)
	sock := forwardedSocket(t, p, "index")

	// An open CONNECT tunnel and an idle keep-alive connection.
	tunnel := openTunnel(t, sock, hostOf(tlsIndex))
	defer tunnel.Close()
	idle, err := net.Dial("unix", sock)
	require.NoError(t, err)
	defer idle.Close()

	require.NotEmpty(t, proxyGoroutines(), "the check below must see open connections")
	require.NoError(t, p.Close())
	assert.Empty(t, proxyGoroutines(), "goroutines of the proxy left after Close")
	for _, c := range []net.Conn{tunnel, idle} {
		_, err := io.ReadAll(c) // EOF once the proxy is gone
		assert.NoError(t, err)
	}
	require.NoError(t, p.Close(), "Close twice")
}

// openTunnel opens a CONNECT tunnel to host through the proxy socket and
// returns the connection, positioned just after the 200 response.
func openTunnel(t *testing.T, sock, host string) net.Conn {
	t.Helper()
	c, err := net.Dial("unix", sock)
	require.NoError(t, err)
	_, err = fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", host, host)
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(oneByteReader{c}), nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	return c
}

// oneByteReader reads one byte at a time so that nothing past the
// response header is consumed.
type oneByteReader struct{ c net.Conn }

func (b oneByteReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return b.c.Read(p[:1])
}

// proxyGoroutines lists the stacks of running goroutines in this file's
// proxy code.
func proxyGoroutines() []string {
	buf := make([]byte, 1<<22)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "indexproxy.(*Proxy)") || strings.Contains(g, "indexproxy.(*indexAttachable)") {
			out = append(out, g)
		}
	}
	return out
}

func TestNewRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		urls []string
		opts []Opt
	}{
		{name: "no URL"},
		{name: "relative URL", urls: []string{"/simple"}},
		{name: "ftp URL", urls: []string{"ftp://example.com/simple"}},
		{name: "allowed host without port", urls: []string{"https://pypi.org/simple"}, opts: []Opt{WithAllowedHosts("files.pythonhosted.org")}},
		{name: "zero byte limit", urls: []string{"https://pypi.org/simple"}, opts: []Opt{WithConnLimits(0, time.Minute)}},
		{
			name: "one host, two passwords",
			urls: []string{"http://a:1@idx.example/simple", "http://a:2@idx.example/other"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := New(tt.urls, tt.opts...)
			require.Error(t, err)
			assert.Nil(t, p)
			assert.ErrorIs(t, err, errdefs.ErrInvalidArgument)
			assert.NotContains(t, err.Error(), ":2@")
		})
	}
}

// TestProxyPipReport runs what the resolve step runs, on the host: pip
// --dry-run --report through the bridge against an index whose pages link
// the files to another host, which is allowed explicitly.
func TestProxyPipReport(t *testing.T) {
	t.Parallel()
	requireTools(t, "python3")
	if err := exec.Command("python3", "-m", "pip", "--version").Run(); err != nil {
		t.Skipf("pip not available to python3: %v", err)
	}
	whl := tinyWheel(t, "demo", "1.0")
	sum := sha256.Sum256(whl)
	files := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/demo-1.0-py3-none-any.whl" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(whl)
	}))
	t.Cleanup(files.Close)
	index := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/simple/demo/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<html><body><a href="%s/demo-1.0-py3-none-any.whl#sha256=%s">demo-1.0-py3-none-any.whl</a></body></html>`,
			files.URL, hex.EncodeToString(sum[:]))
	}))
	t.Cleanup(index.Close)

	pip := func(t *testing.T, p *Proxy) (string, string, int) {
		sock := forwardedSocket(t, p, "index")
		return runBridged(t, sock, "python3", "-m", "pip", "install", "--dry-run", "--ignore-installed",
			"--no-cache-dir", "--disable-pip-version-check", "--no-input", "--quiet", "--report", "-",
			"--retries", "0", "--index-url", p.StepURLs()[0], "--proxy", "{proxy}", "demo")
	}

	t.Run("files host allowed", func(t *testing.T) {
		t.Parallel()
		p, err := New([]string{index.URL + "/simple"}, WithAllowedHosts(hostOf(files)))
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, p.Close()) })
		stdout, stderr, code := pip(t, p)
		require.Equal(t, 0, code, "stderr: %s", stderr)
		var report struct {
			Install []struct {
				Metadata struct {
					Name    string `json:"name"`
					Version string `json:"version"`
				} `json:"metadata"`
				DownloadInfo struct {
					URL         string `json:"url"`
					ArchiveInfo struct {
						Hashes map[string]string `json:"hashes"`
					} `json:"archive_info"`
				} `json:"download_info"`
			} `json:"install"`
		}
		require.NoError(t, json.Unmarshal([]byte(stdout), &report), "stdout must be the report alone: %q", stdout)
		require.Len(t, report.Install, 1)
		assert.Equal(t, "demo", report.Install[0].Metadata.Name)
		assert.Equal(t, "1.0", report.Install[0].Metadata.Version)
		assert.Equal(t, hex.EncodeToString(sum[:]), report.Install[0].DownloadInfo.ArchiveInfo.Hashes["sha256"])
		assert.Contains(t, p.Allowed(), "GET "+index.URL+"/simple/demo/")
		assert.Contains(t, p.Allowed(), "GET "+files.URL+"/demo-1.0-py3-none-any.whl")
		assert.Empty(t, p.Denied())
	})
	t.Run("files host not allowed", func(t *testing.T) {
		t.Parallel()
		p, err := New([]string{index.URL + "/simple"})
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, p.Close()) })
		stdout, stderr, code := pip(t, p)
		assert.NotEqual(t, 0, code)
		assert.Contains(t, stderr, "403")
		assert.Empty(t, stdout)
		assert.Contains(t, p.Denied(), "GET "+files.URL+"/demo-1.0-py3-none-any.whl: host not allowed")
	})
}

// tinyWheel builds a pure-Python wheel with nothing but its metadata.
func tinyWheel(t *testing.T, name, version string) []byte {
	t.Helper()
	info := name + "-" + version + ".dist-info/"
	entries := []struct{ name, body string }{
		{name + "/__init__.py", ""},
		{info + "METADATA", "Metadata-Version: 2.1\nName: " + name + "\nVersion: " + version + "\n"},
		{info + "WHEEL", "Wheel-Version: 1.0\nGenerator: skillbuild-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"},
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	var record strings.Builder
	for _, e := range entries {
		w, err := zw.Create(e.name)
		require.NoError(t, err)
		_, err = io.WriteString(w, e.body)
		require.NoError(t, err)
		h := sha256.Sum256([]byte(e.body))
		fmt.Fprintf(&record, "%s,sha256=%s,%d\n", e.name, base64.RawURLEncoding.EncodeToString(h[:]), len(e.body))
	}
	record.WriteString(info + "RECORD,,\n")
	w, err := zw.Create(info + "RECORD")
	require.NoError(t, err)
	_, err = io.WriteString(w, record.String())
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

// TestProxyTunnelLimits opens a CONNECT tunnel that never carries a
// byte: a limit must cut it (without one, ReadAll would never return).
func TestProxyTunnelLimits(t *testing.T) {
	t.Parallel()
	tlsIndex := newIndex(t, true, nil)
	tests := []struct {
		name    string
		opts    []Opt
		wantLog string
	}{
		{
			name:    "total time",
			opts:    []Opt{WithConnLimits(1<<20, 300*time.Millisecond), WithIdleTimeout(time.Hour)},
			wantLog: "cut connection: open longer than 300ms",
		},
		{
			name:    "idle time",
			opts:    []Opt{WithIdleTimeout(300 * time.Millisecond)},
			wantLog: "cut tunnel to " + hostOf(tlsIndex) + ": idle for 300ms",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var logs bytes.Buffer
			var mu sync.Mutex
			p, err := New([]string{tlsIndex.URL}, append(tt.opts, WithLog(lockedWriter{&mu, &logs}))...)
			require.NoError(t, err)
			t.Cleanup(func() { require.NoError(t, p.Close()) })
			sock := forwardedSocket(t, p, "index")

			c := openTunnel(t, sock, hostOf(tlsIndex))
			defer c.Close()
			_, err = io.ReadAll(c)
			assert.NoError(t, err)
			require.Eventually(t, func() bool {
				mu.Lock()
				defer mu.Unlock()
				return strings.Contains(logs.String(), tt.wantLog)
			}, 10*time.Second, 10*time.Millisecond, "log: %s", &logs)
		})
	}
}

// TestIndexBridgeWithoutSocket: with no forwarded socket the command still
// runs, its connections fail, and the bridge says why on stderr only.
func TestIndexBridgeWithoutSocket(t *testing.T) {
	t.Parallel()
	requireTools(t, "python3", "curl")
	missing := filepath.Join(t.TempDir(), "absent.sock")
	stdout, stderr, code := runBridged(t, missing, "curl", "-sS", "-x", "{proxy}", "http://127.0.0.1:9/")
	assert.NotEqual(t, 0, code)
	assert.Empty(t, stdout)
	assert.Contains(t, stderr, "indexbridge: cannot reach "+missing)
}
