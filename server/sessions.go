package server

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"reflect"

	"github.com/skillbuild/skillbuild/skill/api"
	"golang.org/x/sys/unix"
)

// Sessions is what the session endpoints ask of the backend (package
// skill's Service). owner is the caller's identity (see identity): a
// session is only ever usable by the owner that opened it.
type Sessions interface {
	OpenSession(ctx context.Context, owner string, req api.SessionRequest) (*api.Session, error)
	SessionRun(ctx context.Context, owner, id string, req api.SessionRunRequest) (*api.SessionRunResult, error)
	CloseSession(ctx context.Context, owner, id string) (*api.Session, error)
	ListSessions(ctx context.Context, owner string) (*api.SessionList, error)
	// OpenSessions counts the open sessions, all owners.
	OpenSessions() int
}

// sessionMetrics are the session gauges as samples.
func sessionMetrics(ops Sessions) []Metric {
	return []Metric{{Name: "skillbuild_sessions_open", Help: "Sessions open, all callers.", Value: float64(ops.OpenSessions())}}
}

// peerKey is the context key of the identity of a connection's peer.
type peerKey struct{}

// connIdentity is the identity of the peer of c: over a unix socket the
// peer's uid (SO_PEERCRED: the kernel's word, taken when it connected),
// "" otherwise.
func connIdentity(c net.Conn) string {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return ""
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return ""
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) { cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) }); err != nil || cerr != nil {
		return ""
	}
	return fmt.Sprintf("uid:%d", cred.Uid)
}

// connContext records the identity of a connection's peer in the context
// of its requests.
func connContext(ctx context.Context, c net.Conn) context.Context {
	if id := connIdentity(c); id != "" {
		return context.WithValue(ctx, peerKey{}, id)
	}
	return ctx
}

// identity is whom a request comes from, as sessions are bound to it: the
// uid of a unix socket's peer; over TCP, the holder of the bearer token
// (one token, one identity). A unix peer whose credentials could not be
// read gets an identity no other request has.
func identity(r *http.Request) string {
	if id, ok := r.Context().Value(peerKey{}).(string); ok {
		return id
	}
	if _, ok := r.Context().Value(http.LocalAddrContextKey).(*net.UnixAddr); ok {
		return "unix:unknown:" + r.RemoteAddr + fmt.Sprintf(":%p", r)
	}
	return "bearer"
}

// sessionRoutes registers the session endpoints.
func (s *Server) sessionRoutes(ops Sessions) {
	s.handleStatus("POST /v1/sessions", http.StatusCreated,
		"open a session: a container of a skill's image whose interpreter keeps its globals, modules and files between calls (answers 201; 429 when the server has its maximum of sessions open)",
		reflect.TypeFor[api.SessionRequest](), reflect.TypeFor[*api.Session](),
		sessionEndpoint(s, "session_open", func(ctx context.Context, owner string, _ *http.Request, req api.SessionRequest) (*api.Session, error) {
			return ops.OpenSession(ctx, owner, req)
		}))
	s.handle("GET /v1/sessions", "the caller's open sessions", nil, reflect.TypeFor[*api.SessionList](),
		sessionEndpoint(s, "session_list", func(ctx context.Context, owner string, _ *http.Request, _ struct{}) (*api.SessionList, error) {
			return ops.ListSessions(ctx, owner)
		}))
	s.handle("POST /v1/sessions/{id}/run", "run code in a session: `run --json`'s document and session_ended; 404 \"session ended: REASON\" on a session that ended, is unknown or is another caller's",
		reflect.TypeFor[api.SessionRunRequest](), reflect.TypeFor[*api.SessionRunResult](),
		sessionEndpoint(s, "session_run", func(ctx context.Context, owner string, r *http.Request, req api.SessionRunRequest) (*api.SessionRunResult, error) {
			return ops.SessionRun(ctx, owner, r.PathValue("id"), req)
		}))
	s.handle("DELETE /v1/sessions/{id}", "end a session and remove its container", nil, reflect.TypeFor[*api.Session](),
		sessionEndpoint(s, "session_close", func(ctx context.Context, owner string, r *http.Request, _ struct{}) (*api.Session, error) {
			return ops.CloseSession(ctx, owner, r.PathValue("id"))
		}))
}

// sessionEndpoint is endpoint for the session operations, which take the
// caller's identity and the request's path too. A POST takes a body.
func sessionEndpoint[T, D any](s *Server, name string, op func(context.Context, string, *http.Request, T) (D, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		defer s.metrics.begin(name)()
		var req T
		if r.Method == http.MethodPost && !s.decode(w, r, &req) {
			s.metrics.request(name, api.ExitBadInput)
			return
		}
		doc, err := op(r.Context(), identity(r), r, req)
		s.metrics.request(name, s.answerStatus(w, doc, err, s.okStatus(r)))
	}
}
