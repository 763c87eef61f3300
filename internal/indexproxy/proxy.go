package indexproxy

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/session/sshforward"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// PyPIFilesHost is the host:port that pypi.org's index pages link the
// distribution files to. Allow it (WithAllowedHosts) when the index is PyPI.
const PyPIFilesHost = "files.pythonhosted.org:443"

// Defaults for the per-connection limits of an Proxy.
const (
	DefaultIndexConnBytes    int64 = 4 << 30 // 4 GiB, both directions
	DefaultIndexConnDuration       = 30 * time.Minute
	DefaultIndexIdleTimeout        = 2 * time.Minute
	DefaultIndexMaxConns           = 64
)

// vhostSuffix names the plain-HTTP virtual hosts that stand in, inside a
// step, for https indexes whose URL carries credentials (see StepURLs).
const vhostSuffix = ".index.skillbuild.invalid"

// maxLog bounds each of the allowed and denied logs.
const maxLog = 1024

// Proxy is an HTTP forward proxy, served in skillbuild's own process,
// that lets a no-network build step reach the package index and nothing
// else. It serves plain-HTTP absolute-URI requests and CONNECT tunnels (for
// https) to the allowed host:port pairs only and answers 403 to anything
// else. The step reaches it over a unix socket that BuildKit forwards from
// the solve's session (Attachable) and a bridge inside the step
// (llb.WithIndexAccess).
//
// The allowed targets are the host:port of every index URL given to
// New plus those added with WithAllowedHosts: the file hosts the
// index pages link to, e.g. PyPIFilesHost when the index is pypi.org.
//
// Credentials in an index URL's userinfo never enter the step: StepURLs
// gives the URLs to hand to pip. For an http index the step URL is the same
// URL without userinfo and the proxy adds the Authorization header to the
// requests it forwards to that host:port. For an https index with
// credentials, which the proxy cannot add inside a TLS tunnel, the step URL
// is a plain-HTTP virtual host (listed by TrustedHosts, which pip needs as
// --trusted-host) that the proxy forwards over https with the credentials;
// links on its pages that are relative stay on the virtual host, absolute
// links to the real host go through CONNECT without credentials.
//
// Every connection is bounded in bytes, total time and idle time (idle is
// checked on tunnels and between requests; a plain-HTTP body that stalls is
// cut by the total time). Close ends every connection and waits for every
// goroutine the proxy started.
//
// The engine fetches the locked files through RoundTrip, under the same
// policy: a file comes from nowhere the resolve step could not reach.
//
// Limits: redirects are checked like any request, so an index that
// redirects downloads to another host (object storage) needs that host in
// WithAllowedHosts; Denied shows which. The proxy dials directly and never
// uses the host's proxy environment. An index on the host's loopback is
// reached (the dial happens on the host), which is what tests rely on.
type Proxy struct {
	allowed  map[string]bool     // canonical host:port
	auth     map[string]string   // host:port -> Authorization value
	query    map[string]string   // host:port -> query added to every request (an index's token)
	vhosts   map[string]*url.URL // virtual host -> real https base
	stepURLs []string
	trusted  []string
	o        options

	srv       *http.Server
	ln        *connListener
	transport *http.Transport
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup

	mu      sync.Mutex
	closed  bool
	active  int
	tunnels map[net.Conn]struct{}
	allow   []string
	deny    []string
}

type options struct {
	extra       []string
	maxBytes    int64
	maxDuration time.Duration
	idle        time.Duration
	maxConns    int
	logw        io.Writer
	tls         *tls.Config
}

// Opt configures New.
type Opt func(*options) error

// WithAllowedHosts allows CONNECT and plain-HTTP requests to further
// host:port pairs besides the index URLs' own, e.g. PyPIFilesHost.
func WithAllowedHosts(hostports ...string) Opt {
	return func(o *options) error {
		for _, hp := range hostports {
			host, port, err := net.SplitHostPort(hp)
			if err != nil || host == "" {
				return fmt.Errorf("allowed host %q: want host:port: %w", hp, errdefs.ErrInvalidArgument)
			}
			if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
				return fmt.Errorf("allowed host %q: bad port: %w", hp, errdefs.ErrInvalidArgument)
			}
			o.extra = append(o.extra, canonical(host, port))
		}
		return nil
	}
}

// WithConnLimits bounds each forwarded connection: at most maxBytes in both
// directions together and at most maxDuration from open to close (defaults
// DefaultIndexConnBytes, DefaultIndexConnDuration). A connection over
// either limit is cut.
func WithConnLimits(maxBytes int64, maxDuration time.Duration) Opt {
	return func(o *options) error {
		if maxBytes <= 0 || maxDuration <= 0 {
			return fmt.Errorf("connection limits must be positive: %w", errdefs.ErrInvalidArgument)
		}
		o.maxBytes, o.maxDuration = maxBytes, maxDuration
		return nil
	}
}

// WithIdleTimeout cuts a connection or tunnel that moved no byte for d
// (default DefaultIndexIdleTimeout).
func WithIdleTimeout(d time.Duration) Opt {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("idle timeout must be positive: %w", errdefs.ErrInvalidArgument)
		}
		o.idle = d
		return nil
	}
}

// WithMaxConns bounds the connections served at once (default
// DefaultIndexMaxConns); further ones are refused.
func WithMaxConns(n int) Opt {
	return func(o *options) error {
		if n <= 0 {
			return fmt.Errorf("max connections must be positive: %w", errdefs.ErrInvalidArgument)
		}
		o.maxConns = n
		return nil
	}
}

// WithLog writes one line per allowed or denied request, and per
// connection cut by a limit, to w. Lines never contain credentials.
func WithLog(w io.Writer) Opt {
	return func(o *options) error {
		o.logw = w
		return nil
	}
}

// WithUpstreamTLS sets the TLS configuration for the https requests the
// proxy makes itself (https indexes with credentials, see Proxy), e.g.
// RootCAs for an index whose certificate chains to a private CA. CONNECT
// tunnels are end to end: the step's pip verifies those.
func WithUpstreamTLS(cfg *tls.Config) Opt {
	return func(o *options) error {
		if cfg == nil {
			return fmt.Errorf("nil TLS config: %w", errdefs.ErrInvalidArgument)
		}
		o.tls = cfg.Clone()
		return nil
	}
}

// New returns a proxy for the index URL and extra index URLs in
// urls (absolute http or https URLs, userinfo allowed). It listens on
// nothing: connections arrive through Attachable.
func New(urls []string, opts ...Opt) (*Proxy, error) {
	o := options{
		maxBytes:    DefaultIndexConnBytes,
		maxDuration: DefaultIndexConnDuration,
		idle:        DefaultIndexIdleTimeout,
		maxConns:    DefaultIndexMaxConns,
		logw:        io.Discard,
	}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if len(urls) == 0 {
		return nil, fmt.Errorf("index proxy: no index URL: %w", errdefs.ErrInvalidArgument)
	}
	p := &Proxy{
		allowed: map[string]bool{},
		auth:    map[string]string{},
		query:   map[string]string{},
		vhosts:  map[string]*url.URL{},
		tunnels: map[net.Conn]struct{}{},
		o:       o,
	}
	for i, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
			return nil, fmt.Errorf("index URL %q: want an absolute http or https URL: %w", Redact(raw), errdefs.ErrInvalidArgument)
		}
		hp := hostPort(u)
		p.allowed[hp] = true
		step := *u
		step.User = nil
		// A query (an index's access token) is a secret like the
		// credentials: the proxy adds it to every request for the index,
		// and the step, its logs and its cache key never see it.
		step.RawQuery, step.ForceQuery = "", false
		if u.User != nil || u.RawQuery != "" {
			cred := ""
			if u.User != nil {
				pass, _ := u.User.Password()
				cred = "Basic " + base64.StdEncoding.EncodeToString([]byte(u.User.Username()+":"+pass))
			}
			key := hp
			if u.Scheme == "https" {
				// The step's pip would tunnel https end to end: it talks
				// plain http to a virtual host, and the proxy to the index.
				key = "index-" + strconv.Itoa(i) + vhostSuffix
				p.vhosts[key] = &url.URL{Scheme: "https", Host: u.Host}
				step.Scheme, step.Host = "http", key
				p.trusted = append(p.trusted, key)
			}
			if cred != "" {
				if prev, ok := p.auth[key]; ok && prev != cred {
					return nil, fmt.Errorf("index URLs for %s carry different credentials: %w", hp, errdefs.ErrInvalidArgument)
				}
				p.auth[key] = cred
			}
			if q := u.RawQuery; q != "" {
				if prev, ok := p.query[key]; ok && prev != q {
					return nil, fmt.Errorf("index URLs for %s carry different queries: %w", hp, errdefs.ErrInvalidArgument)
				}
				p.query[key] = q
			}
		}
		p.stepURLs = append(p.stepURLs, step.String())
	}
	for _, hp := range o.extra {
		p.allowed[hp] = true
	}

	p.ctx, p.cancel = context.WithCancel(context.Background())
	dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	p.transport = &http.Transport{
		Proxy: nil, // never the host's proxy environment
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, port, err := net.SplitHostPort(addr)
			if err != nil || !p.allowed[canonical(host, port)] {
				return nil, fmt.Errorf("dial %s: not an allowed index host: %w", addr, errdefs.ErrPermissionDenied)
			}
			return dialer.DialContext(ctx, network, addr)
		},
		DisableCompression:    true, // pass Accept-Encoding and bodies through untouched
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       o.idle,
		TLSHandshakeTimeout:   30 * time.Second,
		ResponseHeaderTimeout: 2 * time.Minute,
		TLSClientConfig:       o.tls,
	}
	p.ln = &connListener{ch: make(chan net.Conn), done: make(chan struct{})}
	p.srv = &http.Server{
		Handler:           http.HandlerFunc(p.serveHTTP),
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       o.idle,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		_ = p.srv.Serve(p.ln)
	}()
	return p, nil
}

// StepURLs returns the index URLs to give pip inside the step, in the
// order given to New, with no credentials in them.
func (p *Proxy) StepURLs() []string { return append([]string(nil), p.stepURLs...) }

// TrustedHosts returns the plain-HTTP virtual hosts among StepURLs, which
// pip must be given as --trusted-host (empty unless an https index URL
// carries credentials).
func (p *Proxy) TrustedHosts() []string { return append([]string(nil), p.trusted...) }

// Allowed returns the requests let through so far, e.g. "CONNECT
// pypi.org:443" or "GET http://127.0.0.1:8080/simple/six/" (at most 1024).
func (p *Proxy) Allowed() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.allow...)
}

// Denied returns the requests refused so far, in the same form as Allowed
// followed by ": " and the reason, e.g. "CONNECT example.com:443: host not
// allowed" (at most 1024).
func (p *Proxy) Denied() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.deny...)
}

// Attachable returns the session attachable that serves the forwarded
// socket socketID (the id given to llb.WithIndexAccess); add it to the
// solve's session (SolveOpt.Session). It registers BuildKit's SSH
// forwarding service, so a session can hold only one of it and no other
// SSH agent provider.
func (p *Proxy) Attachable(socketID string) session.Attachable {
	return &indexAttachable{p: p, id: socketID}
}

// Close cuts every connection and waits until every goroutine the proxy
// started has returned. It is safe to call more than once.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	tunnels := make([]net.Conn, 0, len(p.tunnels))
	for c := range p.tunnels {
		tunnels = append(tunnels, c)
	}
	p.mu.Unlock()

	p.cancel()
	err := p.srv.Close()
	for _, c := range tunnels {
		_ = c.Close()
	}
	p.wg.Wait()
	p.transport.CloseIdleConnections()
	return err
}

// serveStream serves one forwarded connection (one ForwardAgent stream)
// until either end closes it or a limit cuts it: it admits the stream,
// hands one end of a socket pair to the HTTP server, and copies bytes
// between the stream and the other end under the byte and time limits.
func (p *Proxy) serveStream(ctx context.Context, stream sshforward.Stream) error {
	release, err := p.admit()
	if err != nil {
		return err
	}
	defer release()

	inner, outer, err := socketPair()
	if err != nil {
		return status.Errorf(codes.Internal, "index proxy: %v", err)
	}
	defer outer.Close()
	if !p.ln.push(inner) {
		inner.Close()
		return status.Error(codes.Unavailable, "index proxy closed")
	}

	ctx, cancel := context.WithTimeout(ctx, p.o.maxDuration)
	defer cancel()
	stop := context.AfterFunc(p.ctx, cancel)
	defer stop()
	// Close outer when the stream's context ends; if that already began,
	// wait for it, so no goroutine of the proxy outlives serveStream (and
	// so Close, which waits for serveStream, leaves none behind).
	cutDone := make(chan struct{})
	cut := context.AfterFunc(ctx, func() {
		defer close(cutDone)
		outer.Close()
	})
	defer func() {
		if !cut() {
			<-cutDone
		}
	}()

	budget := &byteBudget{max: p.o.maxBytes}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.streamToConn(stream, outer, budget, cancel)
	}()
	if err := p.connToStream(outer, stream, budget); err != nil {
		return err
	}
	switch {
	case budget.exceeded():
		p.logf("cut connection: over %d bytes", p.o.maxBytes)
		return status.Error(codes.ResourceExhausted, "index proxy: connection over its byte limit")
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		p.logf("cut connection: open longer than %s", p.o.maxDuration)
		return status.Error(codes.DeadlineExceeded, "index proxy: connection over its time limit")
	}
	return nil
}

// admit counts a new stream against the connection limit; release
// uncounts it once the stream is served.
func (p *Proxy) admit() (release func(), err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, status.Error(codes.Unavailable, "index proxy closed")
	}
	if p.active >= p.o.maxConns {
		p.logf("refused connection: %d connections open", p.o.maxConns)
		return nil, status.Error(codes.ResourceExhausted, "index proxy: too many connections")
	}
	p.active++
	p.wg.Add(1)
	return func() {
		p.mu.Lock()
		p.active--
		p.mu.Unlock()
		p.wg.Done()
	}, nil
}

// byteBudget is the byte limit of one connection, both directions together.
type byteBudget struct {
	mu    sync.Mutex
	max   int64
	total int64
	over  bool
}

// spend counts n bytes and reports whether the connection is still
// within its limit.
func (b *byteBudget) spend(n int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.total += int64(n)
	if b.total > b.max {
		b.over = true
	}
	return !b.over
}

func (b *byteBudget) exceeded() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.over || b.total > b.max
}

// streamToConn copies step -> proxy. On the step's half-close (CloseSend)
// it passes EOF on and keeps the other direction open. It may outlive the
// handler: returning from it is what ends a pending RecvMsg.
func (p *Proxy) streamToConn(stream sshforward.Stream, outer *net.UnixConn, budget *byteBudget, cancel func()) {
	for {
		var m sshforward.BytesMessage
		if err := stream.RecvMsg(&m); err != nil {
			if errors.Is(err, io.EOF) {
				_ = outer.CloseWrite()
			} else {
				_ = outer.Close()
			}
			return
		}
		if !budget.spend(len(m.Data)) {
			cancel()
			return
		}
		if _, err := outer.Write(m.Data); err != nil {
			return
		}
	}
}

// connToStream copies proxy -> step until the proxy's end closes or the
// budget runs out. The proxy's EOF ends the stream, which is what tells
// the step's end of the socket that the connection is over: BuildKit's
// own copy (sshforward.Copy with a nil close) would leave it open.
func (p *Proxy) connToStream(outer *net.UnixConn, stream sshforward.Stream, budget *byteBudget) error {
	for {
		// A fresh buffer per message: gRPC may hold on to a sent message.
		buf := make([]byte, 32<<10)
		n, rerr := outer.Read(buf)
		if n > 0 {
			if !budget.spend(n) {
				return nil
			}
			if err := stream.SendMsg(&sshforward.BytesMessage{Data: buf[:n]}); err != nil {
				return err
			}
		}
		if rerr != nil {
			return nil
		}
	}
}

func (p *Proxy) serveHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		http.Error(w, "index proxy closed", http.StatusServiceUnavailable)
		return
	}
	p.wg.Add(1)
	p.mu.Unlock()
	defer p.wg.Done()

	if r.Method == http.MethodConnect {
		p.connect(w, r)
		return
	}
	entry := r.Method + " " + Redact(r.URL.String())
	out, key, why := p.forward(r)
	if why != "" {
		p.refuse(w, entry, why)
		return
	}
	p.record(true, entry)
	target := out.URL
	resp, err := p.transport.RoundTrip(out)
	if err != nil {
		p.logf("upstream %s: %v", Redact(target.String()), err)
		http.Error(w, "index proxy: upstream unreachable", http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	removeHopHeaders(resp.Header)
	if real, ok := p.vhosts[key]; ok {
		// Keep redirects within the real host on the virtual one, where
		// the credentials are added.
		if loc := resp.Header.Get("Location"); strings.HasPrefix(loc, real.String()+"/") {
			resp.Header.Set("Location", "http://"+key+strings.TrimPrefix(loc, real.String()))
		}
	}
	for k, vs := range resp.Header {
		w.Header()[k] = vs
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

// forward applies the proxy's policy to a plain request for an absolute
// http(s) URL: it returns the request to send upstream (a virtual host
// mapped to its real https host, credentials set by the proxy alone) and
// the key its credentials are under, or why it is refused.
func (p *Proxy) forward(r *http.Request) (*http.Request, string, string) {
	if !r.URL.IsAbs() || (r.URL.Scheme != "http" && r.URL.Scheme != "https") || r.URL.Hostname() == "" {
		return nil, "", "not a proxy request"
	}
	target := *r.URL
	target.User = nil
	key := hostPort(&target)
	if real, ok := p.vhosts[strings.ToLower(r.URL.Hostname())]; ok && r.URL.Scheme == "http" {
		key = strings.ToLower(r.URL.Hostname())
		target.Scheme, target.Host = real.Scheme, real.Host
	} else if !p.allowed[key] {
		return nil, "", "host not allowed"
	}
	out := r.Clone(r.Context())
	out.URL = &target
	out.Host = target.Host
	out.RequestURI = ""
	removeHopHeaders(out.Header)
	out.Header.Del("Authorization")
	if cred, ok := p.auth[key]; ok {
		out.Header.Set("Authorization", cred)
	}
	if q, ok := p.query[key]; ok {
		if target.RawQuery != "" {
			q = target.RawQuery + "&" + q
		}
		target.RawQuery = q
	}
	return out, key, ""
}

// Permits reports whether the proxy would forward a request for u (an
// allowed host:port, or one of its virtual hosts).
func (p *Proxy) Permits(u *url.URL) bool {
	if u.Scheme != "http" && u.Scheme != "https" {
		return false
	}
	if _, ok := p.vhosts[strings.ToLower(u.Hostname())]; ok && u.Scheme == "http" {
		return true
	}
	return p.allowed[hostPort(u)]
}

// RoundTrip fetches req under the same policy as the requests the proxy
// serves to a step (allowed hosts only, virtual hosts mapped, credentials
// added by the proxy): the engine fetches the locked files with it, so
// they come from nowhere the resolve step could not reach. A refused
// request is an errdefs.ErrPermissionDenied; every request is recorded in
// Allowed or Denied.
func (p *Proxy) RoundTrip(req *http.Request) (*http.Response, error) {
	entry := req.Method + " " + Redact(req.URL.String())
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("index proxy closed: %w", errdefs.ErrUnavailable)
	}
	out, _, why := p.forward(req)
	if why != "" {
		p.record(false, entry+": "+why)
		return nil, fmt.Errorf("%s: %s: %w", entry, why, errdefs.ErrPermissionDenied)
	}
	p.record(true, entry)
	return p.transport.RoundTrip(out)
}

func (p *Proxy) connect(w http.ResponseWriter, r *http.Request) {
	host, port, err := net.SplitHostPort(r.Host)
	if err != nil {
		host, port = r.Host, "443"
	}
	key := canonical(host, port)
	entry := "CONNECT " + key
	if !p.allowed[key] {
		p.refuse(w, entry, "host not allowed")
		return
	}
	p.record(true, entry)
	dctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	up, err := (&net.Dialer{}).DialContext(dctx, "tcp", net.JoinHostPort(host, port))
	cancel()
	if err != nil {
		p.logf("upstream %s: %v", key, err)
		http.Error(w, "index proxy: upstream unreachable", http.StatusBadGateway)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		up.Close()
		http.Error(w, "index proxy: cannot tunnel", http.StatusInternalServerError)
		return
	}
	client, brw, err := hj.Hijack()
	if err != nil {
		up.Close()
		return
	}
	if !p.track(client, up) {
		client.Close()
		up.Close()
		return
	}
	defer p.untrack(client, up)
	defer client.Close()
	defer up.Close()
	if _, err := io.WriteString(client, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		return
	}
	if n := brw.Reader.Buffered(); n > 0 {
		pending, _ := brw.Reader.Peek(n)
		if _, err := up.Write(pending); err != nil {
			return
		}
	}

	var act activity
	act.touch()
	done := make(chan struct{})
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer close(done)
		// client -> upstream; the client's half-close is passed on.
		if p.copyIdle(up, client, &act) == nil {
			if cw, ok := up.(interface{ CloseWrite() error }); ok {
				_ = cw.CloseWrite()
				return
			}
		}
		up.Close()
	}()
	// upstream -> client; its end ends the tunnel.
	_ = p.copyIdle(client, up, &act)
	client.Close()
	up.Close()
	<-done
	if act.idleFor() >= p.o.idle {
		p.logf("cut tunnel to %s: idle for %s", key, p.o.idle)
	}
}

// activity is the time of a tunnel's last byte, in either direction.
type activity struct{ last atomic.Int64 }

func (a *activity) touch() { a.last.Store(time.Now().UnixNano()) }

func (a *activity) idleFor() time.Duration { return time.Since(time.Unix(0, a.last.Load())) }

// copyIdle copies src to dst until src's EOF (nil) or an error, or until
// the tunnel moved no byte in either direction for the idle timeout.
func (p *Proxy) copyIdle(dst, src net.Conn, act *activity) error {
	buf := make([]byte, 32<<10)
	for {
		_ = src.SetReadDeadline(time.Now().Add(p.o.idle))
		n, err := src.Read(buf)
		if n > 0 {
			act.touch()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return werr
			}
		}
		var ne net.Error
		switch {
		case err == nil:
		case errors.Is(err, io.EOF):
			return nil
		case errors.As(err, &ne) && ne.Timeout() && act.idleFor() < p.o.idle:
			// Only this direction was quiet: a download with nothing to send.
		default:
			return err
		}
	}
}

func (p *Proxy) track(conns ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	for _, c := range conns {
		p.tunnels[c] = struct{}{}
	}
	return true
}

func (p *Proxy) untrack(conns ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range conns {
		delete(p.tunnels, c)
	}
}

func (p *Proxy) refuse(w http.ResponseWriter, entry, why string) {
	p.record(false, entry+": "+why)
	http.Error(w, "index proxy: "+why+" (skillbuild lets build steps reach the package index only)", http.StatusForbidden)
}

func (p *Proxy) record(ok bool, entry string) {
	p.mu.Lock()
	if ok && len(p.allow) < maxLog {
		p.allow = append(p.allow, entry)
	} else if !ok && len(p.deny) < maxLog {
		p.deny = append(p.deny, entry)
	}
	p.mu.Unlock()
	if ok {
		p.logf("allowed %s", entry)
	} else {
		p.logf("denied %s", entry)
	}
}

func (p *Proxy) logf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.o.logw, "index proxy: "+format+"\n", args...)
}

// indexAttachable is the session side of the forwarded index socket.
type indexAttachable struct {
	sshforward.UnimplementedSSHServer
	p  *Proxy
	id string
}

func (a *indexAttachable) Register(s *grpc.Server) {
	sshforward.RegisterSSHServer(s, a)
}

func (a *indexAttachable) CheckAgent(_ context.Context, req *sshforward.CheckAgentRequest) (*sshforward.CheckAgentResponse, error) {
	if req.ID != a.id {
		return nil, status.Errorf(codes.NotFound, "no index proxy socket %q forwarded from the client", req.ID)
	}
	return &sshforward.CheckAgentResponse{}, nil
}

func (a *indexAttachable) ForwardAgent(stream sshforward.SSH_ForwardAgentServer) error {
	md, _ := metadata.FromIncomingContext(stream.Context())
	if ids := md.Get(sshforward.KeySSHID); len(ids) == 0 || ids[0] != a.id {
		return status.Errorf(codes.NotFound, "no index proxy socket %q forwarded from the client", strings.Join(ids, ","))
	}
	return a.p.serveStream(stream.Context(), stream)
}

// connListener hands the connections built from forwarded streams to the
// http.Server.
type connListener struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func (l *connListener) push(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *connListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *connListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *connListener) Addr() net.Addr { return indexAddr{} }

type indexAddr struct{}

func (indexAddr) Network() string { return "unix" }
func (indexAddr) String() string  { return "skillbuild-index-proxy" }

// socketPair returns the two ends of a connected unix stream socket pair:
// unlike net.Pipe they buffer, take deadlines (which http.Server needs to
// abort its background reads) and half-close.
func socketPair() (*net.UnixConn, *net.UnixConn, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("socketpair: %w", err)
	}
	conns := make([]*net.UnixConn, 2)
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "index-proxy")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			for _, c := range conns[:i] {
				c.Close()
			}
			if i == 0 {
				syscall.Close(fds[1])
			}
			return nil, nil, fmt.Errorf("socketpair: %w", err)
		}
		conns[i] = c.(*net.UnixConn)
	}
	return conns[0], conns[1], nil
}

var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

func removeHopHeaders(h http.Header) {
	for _, f := range h.Values("Connection") {
		for _, k := range strings.Split(f, ",") {
			if k = strings.TrimSpace(k); k != "" {
				h.Del(k)
			}
		}
	}
	for _, k := range hopHeaders {
		h.Del(k)
	}
}

// hostPort returns u's canonical host:port, with the scheme's default port.
func hostPort(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	return canonical(u.Hostname(), port)
}

func canonical(host, port string) string {
	return net.JoinHostPort(strings.ToLower(strings.TrimSuffix(host, ".")), port)
}

// Redact drops userinfo and query from a URL for logs and errors.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparsable URL>"
	}
	u.User = nil
	u.RawQuery = ""
	u.Fragment = ""
	return u.String()
}
