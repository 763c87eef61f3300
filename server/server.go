package server

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"github.com/skillbuild/skillbuild/skill/api"
)

// Backend does what the endpoints ask (package skill's Service). Each
// method returns the document of the operation (the one the CLI prints
// with --json), and the operation's error (nil when it worked), classified
// with errdefs (api.ExitCode maps it to the CLI's exit code). A document
// may be nil when the operation failed before it had one; the server then
// answers with an api.ErrorDocument.
type Backend interface {
	// Install builds a skill's image; progress receives build progress
	// events (nil: none wanted).
	Install(ctx context.Context, req api.InstallRequest, progress func(event any)) (*api.InstallResult, error)
	Scan(ctx context.Context, req api.ScanRequest, progress func(event any)) (*api.ScanResult, error)
	List(ctx context.Context, req api.ListRequest) ([]api.SkillImage, error)
	Remove(ctx context.Context, req api.RemoveRequest) (*api.RemoveResult, error)
	Run(ctx context.Context, req api.RunRequest) (*api.RunResult, error)
	Inspect(ctx context.Context, req api.InspectRequest) (*api.InspectResult, error)
	// Health reports the backend's dependencies; an error makes the
	// health check fail (503 when it is Unavailable).
	Health(ctx context.Context) (*api.Health, error)
	// PoolStats are the warm pool's counters, for /metrics.
	PoolStats() api.PoolStats
	Sessions
}

// HeaderExitCode carries the CLI exit code of every answer.
const HeaderExitCode = "X-Skillbuild-Exit-Code"

// Server serves a Backend over HTTP. Create it with New.
type Server struct {
	ops     Backend
	opts    options
	mux     *http.ServeMux
	routes  []route
	metrics *metrics
}

// route is one endpoint: its pattern, what it does, and the Go types of
// its request body and of its answer (nil: none, or not JSON). The OpenAPI
// document (openapi.json) describes exactly these.
type route struct {
	pattern, summary  string
	request, document reflect.Type
	// ok is the status of an answer that worked (0: 200).
	ok int
}

type options struct {
	token      string
	maxBody    int64
	drainLimit time.Duration
}

// Opt configures a Server.
type Opt func(*options) error

// WithToken requires "Authorization: Bearer TOKEN" on every request. A
// TCP listener is refused without it.
func WithToken(token string) Opt {
	return func(o *options) error {
		token = strings.TrimSpace(token)
		if len(token) < 16 {
			return fmt.Errorf("bearer token is shorter than 16 characters: %w", errdefs.ErrInvalidArgument)
		}
		o.token = token
		return nil
	}
}

// WithMaxBody caps request bodies. Default: 24 MiB, which holds a run's
// files at their cap (16 MiB, in base64) and its code.
func WithMaxBody(n int64) Opt {
	return func(o *options) error {
		if n <= 0 {
			return fmt.Errorf("maximum body size must be positive, got %d: %w", n, errdefs.ErrInvalidArgument)
		}
		o.maxBody = n
		return nil
	}
}

// WithDrainTimeout bounds how long Serve waits for requests in flight
// after its ctx is cancelled (runs end at their own deadline well before
// the default of 10 minutes; builds may take longer and are cancelled).
func WithDrainTimeout(d time.Duration) Opt {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("drain timeout must be positive, got %s: %w", d, errdefs.ErrInvalidArgument)
		}
		o.drainLimit = d
		return nil
	}
}

// New returns a server for the backend ops.
func New(ops Backend, opts ...Opt) (*Server, error) {
	if ops == nil {
		return nil, fmt.Errorf("no backend given: %w", errdefs.ErrInvalidArgument)
	}
	o := options{maxBody: 24 << 20, drainLimit: 10 * time.Minute}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	s := &Server{ops: ops, opts: o, mux: http.NewServeMux(), metrics: newMetrics()}
	op(s, "GET /v1/health", "health", "whether the server can serve, and its warm pool",
		func(ctx context.Context, _ struct{}) (*api.Health, error) { return ops.Health(ctx) })
	s.handle("GET /v1/skills", "the skill images: `ls --json`'s document (?unpacked=true: with the unpacked size, as `ls --unpacked`)",
		nil, reflect.TypeFor[[]api.SkillImage](), s.list)
	s.handle("POST /v1/install", "build (or reuse) a skill's image: `install --json`'s document; with \"progress\": true, NDJSON progress events then the result",
		reflect.TypeFor[api.InstallRequest](), reflect.TypeFor[*api.InstallResult](), s.install)
	op(s, "POST /v1/scan", "scan", "check requirements against the vulnerability database: `scan --json`'s document",
		func(ctx context.Context, req api.ScanRequest) (*api.ScanResult, error) {
			return ops.Scan(ctx, req, nil)
		})
	op(s, "POST /v1/remove", "remove", "remove a skill's image tags: `rm --json`'s document", ops.Remove)
	op(s, "POST /v1/run", "run", "run code in a skill's image: `run --json`'s document", s.timedRun)
	op(s, "POST /v1/inspect", "inspect", "describe an image (lock, labels, SBOM, scan verdict): `inspect --json`'s document", ops.Inspect)
	s.sessionRoutes(ops)
	s.handle("GET /v1/openapi.json", "this API's OpenAPI 3.1 document", nil, nil, serveOpenAPI)
	s.handle("GET /metrics", "Prometheus text format", nil, nil, s.serveMetrics)
	return s, nil
}

// ServeHTTP checks the token and routes the request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.opts.token != "" {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(s.opts.token)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="skillbuild"`)
			s.writeError(w, http.StatusUnauthorized, api.ExitBadInput, "missing or wrong bearer token: send Authorization: Bearer <the token of --token-file>")
			return
		}
	}
	s.mux.ServeHTTP(w, r)
}

// Serve answers on ln until ctx is cancelled, then stops accepting and
// waits for the requests in flight (bounded by WithDrainTimeout). A TCP
// listener must be on a loopback address and needs WithToken.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if err := s.Check(ln); err != nil {
		return err
	}
	hs := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		// Requests outlive a cancelled ctx: draining lets them finish.
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
		// Sessions belong to the identity of the peer that opened them.
		ConnContext: connContext,
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.drainLimit)
	defer cancel()
	err := hs.Shutdown(dctx)
	if errors.Is(err, context.DeadlineExceeded) {
		hs.Close()
		return fmt.Errorf("requests still in flight after %s: %w", s.opts.drainLimit, err)
	}
	if e := <-errc; e != nil && !errors.Is(e, http.ErrServerClosed) {
		return e
	}
	return err
}

// Check refuses a listener Serve would refuse: TCP on an address that is
// not loopback, or TCP without a token.
func (s *Server) Check(ln net.Listener) error {
	if tcp, ok := ln.Addr().(*net.TCPAddr); ok {
		if !tcp.IP.IsLoopback() {
			return fmt.Errorf("refusing to serve on %s: TCP only on a loopback address: %w", tcp, errdefs.ErrInvalidArgument)
		}
		if s.opts.token == "" {
			return fmt.Errorf("refusing to serve on %s without a bearer token (--token-file): %w", tcp, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

// decode reads r's body into v: one JSON object of known fields, within
// the size cap. On failure it has answered already.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	body := http.MaxBytesReader(w, r.Body, s.opts.maxBody)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, e := dec.Token(); e != io.EOF {
			err = errors.New("more than one JSON value in the body")
		}
	}
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			s.writeError(w, http.StatusRequestEntityTooLarge, api.ExitBadInput, fmt.Sprintf("request body is larger than %d bytes", s.opts.maxBody))
			return false
		}
		s.writeError(w, http.StatusBadRequest, api.ExitBadInput, fmt.Sprintf("request body of %s %s: %v", r.Method, r.URL.Path, err))
		return false
	}
	return true
}

// statusOf maps a CLI exit code to an HTTP status.
func statusOf(code int) int {
	switch code {
	case 0:
		return http.StatusOK
	case 2:
		return http.StatusBadRequest
	case 3:
		return http.StatusUnprocessableEntity
	case 4:
		return http.StatusNotFound
	case 75:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// answer writes an operation's document (or an error document when it has
// none) with the status of its exit code, and returns the exit code.
func (s *Server) answer(w http.ResponseWriter, doc any, err error) int {
	return s.answerStatus(w, doc, err, http.StatusOK)
}

// answerStatus is answer with ok as the status of an answer that worked;
// a refusal for want of resources (too many sessions) is 429.
func (s *Server) answerStatus(w http.ResponseWriter, doc any, err error, ok int) int {
	code := 0
	if err != nil {
		code = max(api.ExitCode(err), 1)
	}
	if isNil(doc) {
		if err == nil {
			doc = map[string]any{}
		} else {
			doc = api.ErrorDocument{Error: err.Error(), ExitCode: code}
		}
	}
	status := statusOf(code)
	switch {
	case code == 0:
		status = ok
	case errdefs.IsResourceExhausted(err):
		status = http.StatusTooManyRequests
	}
	writeJSON(w, status, code, doc)
	return code
}

func (s *Server) writeError(w http.ResponseWriter, status, code int, msg string) {
	writeJSON(w, status, code, api.ErrorDocument{Error: msg, ExitCode: code})
}

func writeJSON(w http.ResponseWriter, status, code int, doc any) {
	b, err := json.Marshal(doc)
	if err != nil {
		status, code = http.StatusInternalServerError, 1
		b, _ = json.Marshal(api.ErrorDocument{Error: "encode the answer: " + err.Error(), ExitCode: 1})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set(HeaderExitCode, strconv.Itoa(code))
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// handle registers an endpoint: the mux routes only what the route table
// (and so the OpenAPI document) holds.
func (s *Server) handle(pattern, summary string, request, document reflect.Type, h http.HandlerFunc) {
	s.handleStatus(pattern, 0, summary, request, document, h)
}

// handleStatus is handle for an endpoint whose answers that worked have
// status ok (0: 200).
func (s *Server) handleStatus(pattern string, ok int, summary string, request, document reflect.Type, h http.HandlerFunc) {
	s.routes = append(s.routes, route{pattern: pattern, summary: summary, request: request, document: document, ok: ok})
	s.mux.HandleFunc(pattern, h)
}

// okStatus is the status of an answer to r that worked.
func (s *Server) okStatus(r *http.Request) int {
	_, pattern := s.mux.Handler(r)
	for _, rt := range s.routes {
		if rt.pattern == pattern && rt.ok != 0 {
			return rt.ok
		}
	}
	return http.StatusOK
}

// op registers the endpoint of an operation (see endpoint); a GET takes
// no body.
func op[T, D any](s *Server, pattern, name, summary string, fn func(context.Context, T) (D, error)) {
	var request reflect.Type
	if !strings.HasPrefix(pattern, http.MethodGet+" ") {
		request = reflect.TypeFor[T]()
	}
	s.handle(pattern, summary, request, reflect.TypeFor[D](), endpoint(s, name, fn))
}

// list answers GET /v1/skills; the query's unpacked=true asks for the
// unpacked sizes.
func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	defer s.metrics.begin("list")()
	var req api.ListRequest
	if v := r.URL.Query().Get("unpacked"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			s.writeError(w, http.StatusBadRequest, api.ExitBadInput, fmt.Sprintf("query unpacked=%q: expected true or false", v))
			s.metrics.request("list", api.ExitBadInput)
			return
		}
		req.Unpacked = b
	}
	imgs, err := s.ops.List(r.Context(), req)
	if imgs == nil && err == nil {
		imgs = []api.SkillImage{}
	}
	s.metrics.request("list", s.answer(w, imgs, err))
}

// endpoint is the handler of an operation that takes a request body of
// type T and answers with a document of type D: it counts the request in
// flight, decodes the body, calls op and answers with its document.
func endpoint[T, D any](s *Server, name string, op func(context.Context, T) (D, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		defer s.metrics.begin(name)()
		var req T
		if r.Method != http.MethodGet && !s.decode(w, r, &req) {
			s.metrics.request(name, api.ExitBadInput)
			return
		}
		doc, err := op(r.Context(), req)
		s.metrics.request(name, s.answer(w, doc, err))
	}
}

// timedRun is Backend.Run, observed by the run latency histogram.
func (s *Server) timedRun(ctx context.Context, req api.RunRequest) (*api.RunResult, error) {
	start := time.Now()
	defer func() { s.metrics.run(time.Since(start)) }()
	return s.ops.Run(ctx, req)
}

// StreamEvent is one line of an install's NDJSON stream: progress events,
// then one line with the result document and its exit code.
type StreamEvent struct {
	Progress any  `json:"progress,omitempty"`
	Result   any  `json:"result,omitempty"`
	ExitCode *int `json:"exit_code,omitempty"`
}

func (s *Server) install(w http.ResponseWriter, r *http.Request) {
	defer s.metrics.begin("install")()
	var req api.InstallRequest
	if !s.decode(w, r, &req) {
		s.metrics.request("install", api.ExitBadInput)
		return
	}
	if !req.Progress {
		doc, err := s.ops.Install(r.Context(), req, nil)
		code := s.answer(w, doc, err)
		s.metrics.request("install", code)
		s.metrics.build(code)
		return
	}
	// Streamed: the status is 200 once the first line is out; the result
	// line carries the exit code.
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	var mu sync.Mutex
	enc := json.NewEncoder(w)
	emit := func(ev StreamEvent) {
		mu.Lock()
		defer mu.Unlock()
		enc.Encode(ev) //nolint:errcheck // a gone client: the build goes on, its result is logged by nobody
		if flusher != nil {
			flusher.Flush()
		}
	}
	res, err := s.ops.Install(r.Context(), req, func(ev any) { emit(StreamEvent{Progress: ev}) })
	var doc any = res
	code := 0
	if err != nil {
		code = max(api.ExitCode(err), 1)
		if res == nil {
			doc = api.ErrorDocument{Error: err.Error(), ExitCode: code}
		}
	}
	emit(StreamEvent{Result: doc, ExitCode: &code})
	s.metrics.request("install", code)
	s.metrics.build(code)
}

// isNil reports whether doc is nil, or a nil pointer or slice in an
// interface.
func isNil(doc any) bool {
	if doc == nil {
		return true
	}
	switch v := reflect.ValueOf(doc); v.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Map:
		return v.IsNil()
	}
	return false
}
