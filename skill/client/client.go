package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/skillbuild/skillbuild/skill/api"
)

// HeaderExitCode carries the CLI exit code of every answer of the server.
const HeaderExitCode = "X-Skillbuild-Exit-Code"

// maxAnswer bounds an answer (a document, or one line of a stream): build
// logs can be long, but not this long.
const maxAnswer = 64 << 20

// Client talks to one server. Create it with New; it is safe for
// concurrent use.
type Client struct {
	host  string // as given, for messages
	base  string // the URL requests go to
	token string
	http  *http.Client
}

type options struct {
	token string
}

// Opt configures a Client.
type Opt func(*options) error

// WithToken sends "Authorization: Bearer TOKEN" (the token of the server's
// --token-file; surrounding white space is dropped). A server on TCP
// requires it.
func WithToken(token string) Opt {
	return func(o *options) error {
		o.token = strings.TrimSpace(token)
		return nil
	}
}

// New returns a client of the server at host: unix:///PATH (its socket)
// or tcp://HOST:PORT (which needs WithToken). It connects to nothing yet.
func New(host string, opts ...Opt) (*Client, error) {
	var o options
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	u, err := url.Parse(host)
	if err != nil {
		return nil, fmt.Errorf("server address %q: %v: %w", host, err, errdefs.ErrInvalidArgument)
	}
	// No proxy: the server is on this host, and proxy variables are for
	// the world outside.
	tr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 16}
	c := &Client{host: host, token: o.token, http: &http.Client{Transport: tr}}
	switch {
	case u.Scheme == "unix" && u.Host == "" && u.Path != "":
		sock := u.Path
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}
		c.base = "http://skillbuild"
	case u.Scheme == "tcp" && u.Host != "" && u.Port() != "" && (u.Path == "" || u.Path == "/"):
		if o.token == "" {
			return nil, fmt.Errorf("server %s is on TCP, which takes a bearer token, and none was given: %w", host, errdefs.ErrInvalidArgument)
		}
		c.base = "http://" + u.Host
	default:
		return nil, fmt.Errorf("server address %q: expected unix:///PATH or tcp://HOST:PORT: %w", host, errdefs.ErrInvalidArgument)
	}
	return c, nil
}

// Close lets go of idle connections.
func (c *Client) Close(context.Context) error {
	c.http.CloseIdleConnections()
	return nil
}

// Error is a failure the server reported: its message, the exit code the
// command line gives it, and the HTTP status. It unwraps to the errdefs
// class of the exit code, or for a refusal (exit code 3) to an
// *api.VulnerableError with the findings, so that api.ExitCode is Code.
type Error struct {
	Message string
	Code    int
	Status  int
	cause   error
}

func (e *Error) Error() string { return e.Message }

func (e *Error) Unwrap() error { return e.cause }

// classOf is the error an exit code stands for.
func classOf(code int, findings []api.Finding) error {
	switch code {
	case api.ExitBadInput:
		return errdefs.ErrInvalidArgument
	case api.ExitVulnerable:
		return &api.VulnerableError{Findings: findings}
	case api.ExitNotFound:
		return errdefs.ErrNotFound
	case api.ExitTempFail:
		return errdefs.ErrUnavailable
	case api.ExitInterrupted:
		return context.Canceled
	}
	return nil
}

// Install asks the server to build (or reuse) a skill's image. With
// progress, the build's progress events (BuildKit's SolveStatus as JSON,
// each a json.RawMessage) reach it as they come.
func (c *Client) Install(ctx context.Context, req api.InstallRequest, progress func(event any)) (*api.InstallResult, error) {
	l := req.Local
	if err := stays(map[string]bool{"Input": l.Input != nil, "Outputs": len(l.Outputs) > 0, "Load": l.Load, "CacheFrom": len(l.CacheFrom) > 0,
		"CacheTo": l.CacheTo != "", "Push": l.Push != "", "SignKey": l.SignKey != "", "MaxLayers": l.MaxLayers != 0, "SingleLayer": l.SingleLayer}); err != nil {
		return nil, err
	}
	req.Progress = progress != nil
	var out api.InstallResult
	ok, err := c.call(ctx, http.MethodPost, "/v1/install", req, &out, progress)
	return docOf(&out, ok), err
}

// Scan asks the server to check requirements against its vulnerability
// database. The API sends no progress of the resolve: progress gets no
// events.
func (c *Client) Scan(ctx context.Context, req api.ScanRequest, _ func(event any)) (*api.ScanResult, error) {
	if err := stays(map[string]bool{"Input": req.Local.Input != nil, "DB": req.Local.DB != ""}); err != nil {
		return nil, err
	}
	var out api.ScanResult
	ok, err := c.call(ctx, http.MethodPost, "/v1/scan", req, &out, nil)
	return docOf(&out, ok), err
}

// List lists the server's skill images.
func (c *Client) List(ctx context.Context, req api.ListRequest) ([]api.SkillImage, error) {
	path := "/v1/skills"
	if req.Unpacked {
		path += "?unpacked=true"
	}
	var out []api.SkillImage
	_, err := c.call(ctx, http.MethodGet, path, nil, &out, nil)
	return out, err
}

// Remove removes a skill's image tags on the server.
func (c *Client) Remove(ctx context.Context, req api.RemoveRequest) (*api.RemoveResult, error) {
	var out api.RemoveResult
	ok, err := c.call(ctx, http.MethodPost, "/v1/remove", req, &out, nil)
	return docOf(&out, ok), err
}

// Run runs code on the server. The code's output is in the document, and
// goes to the request's Stdout and Stderr (when set) once the run is over.
func (c *Client) Run(ctx context.Context, req api.RunRequest) (*api.RunResult, error) {
	l := req.Local
	if err := stays(map[string]bool{"Input": l.Input != nil, "Pull": l.Pull != "", "AllowUnscanned": l.AllowUnscanned, "AcceptRlimits": l.AcceptRlimits}); err != nil {
		return nil, err
	}
	if len(req.Inputs) > 0 && !json.Valid(req.Inputs) {
		// What the runtime says of them; they could not even be sent.
		return nil, fmt.Errorf("inputs must be one JSON object: %w", errdefs.ErrInvalidArgument)
	}
	var out api.RunResult
	ok, err := c.call(ctx, http.MethodPost, "/v1/run", req, &out, nil)
	if !ok {
		return nil, err
	}
	out.Result = orNil(out.Result)
	for _, w := range []struct {
		to   io.Writer
		text string
	}{{l.Stdout, out.Stdout}, {l.Stderr, out.Stderr}} {
		if w.to != nil && w.text != "" {
			if _, werr := io.WriteString(w.to, w.text); werr != nil && err == nil {
				err = werr
			}
		}
	}
	return &out, err
}

// OpenSession opens a session on the server: a container of a skill's
// image whose interpreter keeps its globals, modules and files between
// the calls of SessionRun. Only this client's identity (its unix uid, or
// its token) can use it; CloseSession ends it.
func (c *Client) OpenSession(ctx context.Context, req api.SessionRequest) (*api.Session, error) {
	var out api.Session
	ok, err := c.call(ctx, http.MethodPost, "/v1/sessions", req, &out, nil)
	return docOf(&out, ok), err
}

// SessionRun runs code in session id's interpreter. The document is a
// run's, with SessionEnded set when the call ended the session (a timeout,
// the memory limit, the interpreter's exit). A call on a session that has
// ended is an *Error of exit code 4 whose message says why (EndedReason).
func (c *Client) SessionRun(ctx context.Context, id string, req api.SessionRunRequest) (*api.SessionRunResult, error) {
	if len(req.Inputs) > 0 && !json.Valid(req.Inputs) {
		return nil, fmt.Errorf("inputs must be one JSON object: %w", errdefs.ErrInvalidArgument)
	}
	var out api.SessionRunResult
	ok, err := c.call(ctx, http.MethodPost, "/v1/sessions/"+url.PathEscape(id)+"/run", req, &out, nil)
	if ok {
		out.Result = orNil(out.Result)
	}
	return docOf(&out, ok), err
}

// CloseSession ends session id and removes its container; the document's
// Ended is "closed".
func (c *Client) CloseSession(ctx context.Context, id string) (*api.Session, error) {
	var out api.Session
	ok, err := c.call(ctx, http.MethodDelete, "/v1/sessions/"+url.PathEscape(id), nil, &out, nil)
	return docOf(&out, ok), err
}

// ListSessions lists this client's open sessions.
func (c *Client) ListSessions(ctx context.Context) ([]api.Session, error) {
	var out api.SessionList
	if _, err := c.call(ctx, http.MethodGet, "/v1/sessions", nil, &out, nil); err != nil {
		return nil, err
	}
	return out.Sessions, nil
}

// EndedReason is why the session ended when err is the server's answer to
// a call on a session that has ended ("timeout", "oom", "exited",
// "lifetime", "idle", "closed", "shutdown"), and "" for any other error.
// An unknown id, or another caller's, is not one (it is ErrNotFound).
func EndedReason(err error) string {
	var e *Error
	if errors.As(err, &e) && e.Code == api.ExitNotFound {
		if reason, ok := strings.CutPrefix(e.Message, api.SessionEndedPrefix); ok {
			return reason
		}
	}
	return ""
}

// Inspect describes an image the server has (or its registry).
func (c *Client) Inspect(ctx context.Context, req api.InspectRequest) (*api.InspectResult, error) {
	var out api.InspectResult
	ok, err := c.call(ctx, http.MethodPost, "/v1/inspect", req, &out, nil)
	out.SBOM, out.Verdict = orNil(out.SBOM), orNil(out.Verdict)
	return docOf(&out, ok), err
}

// orNil is raw, or nil for JSON's null: the document as the service made
// it (a json.RawMessage decodes null as the bytes "null").
func orNil(raw json.RawMessage) json.RawMessage {
	if string(raw) == "null" {
		return nil
	}
	return raw
}

// Health is the server's health document.
func (c *Client) Health(ctx context.Context) (*api.Health, error) {
	var out api.Health
	ok, err := c.call(ctx, http.MethodGet, "/v1/health", nil, &out, nil)
	return docOf(&out, ok), err
}

// docOf is doc when the answer filled it, else nil.
func docOf[D any](doc *D, ok bool) *D {
	if !ok {
		return nil
	}
	return doc
}

// stays refuses a request whose Local part sets something (the names of
// the fields set), which would not reach the server.
func stays(set map[string]bool) error {
	var names []string
	for name, on := range set {
		if on {
			names = append(names, "Local."+name)
		}
	}
	if len(names) == 0 {
		return nil
	}
	return fmt.Errorf("the request sets %s, which is of the caller's host and cannot go to a server: %w", strings.Join(names, ", "), errdefs.ErrInvalidArgument)
}

// call sends body (JSON) to the server and decodes the answer into doc;
// ok says whether doc holds the operation's document (a failed operation
// may have one too). A stream of progress events (NDJSON) goes to
// progress, its last line being the answer.
func (c *Client) call(ctx context.Context, method, path string, body, doc any, progress func(any)) (ok bool, err error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return false, fmt.Errorf("encode the request: %v: %w", err, errdefs.ErrInvalidArgument)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return false, fmt.Errorf("%s %s: %v: %w", method, path, err, errdefs.ErrInvalidArgument)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if cerr := context.Cause(ctx); cerr != nil {
			return false, fmt.Errorf("%s %s: %w", method, path, cerr)
		}
		return false, fmt.Errorf("cannot reach skillbuild serve at %s (is it running?): %v: %w", c.host, unwrapURL(err), errdefs.ErrUnavailable)
	}
	defer resp.Body.Close()
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/x-ndjson") {
		return c.stream(ctx, resp, doc, progress)
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return false, c.lost(ctx, err)
	}
	code, known := exitCodeOf(resp)
	if !known {
		code = api.ExitFailed
		if resp.StatusCode < 300 {
			code = api.ExitOK
		}
	}
	return c.answer(resp.StatusCode, code, raw, doc)
}

// stream reads an install's NDJSON answer: progress events, then the
// result and its exit code.
func (c *Client) stream(ctx context.Context, resp *http.Response, doc any, progress func(any)) (bool, error) {
	rd := bufio.NewReader(io.LimitReader(resp.Body, 16*maxAnswer))
	for {
		line, err := rd.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			var ev struct {
				Progress json.RawMessage `json:"progress"`
				Result   json.RawMessage `json:"result"`
				ExitCode *int            `json:"exit_code"`
			}
			if jerr := json.Unmarshal(line, &ev); jerr != nil {
				return false, fmt.Errorf("the server's progress stream: %v", jerr)
			}
			if ev.ExitCode != nil {
				return c.answer(resp.StatusCode, *ev.ExitCode, ev.Result, doc)
			}
			if progress != nil && len(ev.Progress) > 0 {
				progress(ev.Progress)
			}
		}
		if err != nil {
			if err == io.EOF {
				err = errors.New("the server ended the stream before the result")
			}
			return false, c.lost(ctx, err)
		}
	}
}

// answer decodes the document raw of an answer with exit code code.
func (c *Client) answer(status, code int, raw []byte, doc any) (bool, error) {
	if code == api.ExitOK {
		if err := json.Unmarshal(raw, doc); err != nil {
			return false, fmt.Errorf("the server's answer: %v", err)
		}
		return true, nil
	}
	// A failure answers with the operation's document, or with an error
	// document when it had none.
	var ed api.ErrorDocument
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if dec.Decode(&ed) == nil && ed.Error != "" {
		msg := ed.Error
		if status == http.StatusUnauthorized {
			msg = fmt.Sprintf("skillbuild serve at %s refused the bearer token: %s", c.host, msg)
		}
		return false, &Error{Message: msg, Code: code, Status: status, cause: classOf(code, nil)}
	}
	ok := json.Unmarshal(raw, doc) == nil
	var what struct {
		Error    json.RawMessage `json:"error"`
		Findings []api.Finding   `json:"vulnerabilities"`
	}
	json.Unmarshal(raw, &what) //nolint:errcheck // a document without these keys says less, that is all
	e := &Error{Code: code, Status: status, cause: classOf(code, what.Findings)}
	switch e.Message = messageOf(what.Error); {
	case code == api.ExitVulnerable:
		// The document says "vulnerabilities detected"; the refusal
		// itself names what was refused, as it does where it happened.
		e.Message = e.cause.Error()
	case e.Message == "":
		e.Message = fmt.Sprintf("the server answered %d (exit code %d)", status, code)
	}
	return ok, e
}

// messageOf is the message of a document's "error": a string, or a run's
// {"type", "message"}.
func messageOf(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var ce api.CodeError
	if json.Unmarshal(raw, &ce) == nil {
		return ce.Message
	}
	return ""
}

// exitCodeOf is the exit code the answer's header reports.
func exitCodeOf(resp *http.Response) (int, bool) {
	n, err := strconv.Atoi(resp.Header.Get(HeaderExitCode))
	return n, err == nil
}

// lost is the error of an answer cut short: the caller's cancellation, or
// a server that went away (try again).
func (c *Client) lost(ctx context.Context, err error) error {
	if cerr := context.Cause(ctx); cerr != nil {
		return cerr
	}
	return fmt.Errorf("skillbuild serve at %s: reading the answer: %v: %w", c.host, err, errdefs.ErrUnavailable)
}

// unwrapURL drops net/http's "Post "http://skillbuild/v1/run": " prefix,
// which names the fake host of a unix socket.
func unwrapURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
