package skill

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"github.com/skillbuild/skillbuild/config"
	"github.com/skillbuild/skillbuild/runtime"
	"github.com/skillbuild/skillbuild/skill/api"
)

// Sessions bounds the sessions a server's callers open: how many at once,
// and how long each may stay idle and live (defaults and ceilings).
type Sessions struct {
	// Max is how many sessions may be open at once (0: none).
	Max int
	// Idle and Lifetime are a session's idle timeout and maximum lifetime
	// when its request names none.
	Idle, Lifetime time.Duration
	// MaxIdle and MaxLifetime are the most a request may ask for.
	MaxIdle, MaxLifetime time.Duration
}

// WithSessions lets callers open sessions, within c.
func WithSessions(c Sessions) Opt {
	return func(o *options) error {
		switch {
		case c.Max < 0:
			return fmt.Errorf("maximum sessions must not be negative, got %d: %w", c.Max, errdefs.ErrInvalidArgument)
		case c.Idle <= 0 || c.Lifetime <= 0:
			return fmt.Errorf("session idle timeout and lifetime must be positive, got %s and %s: %w", c.Idle, c.Lifetime, errdefs.ErrInvalidArgument)
		case c.MaxIdle < c.Idle || c.MaxLifetime < c.Lifetime:
			return fmt.Errorf("session idle timeout %s and lifetime %s must not pass their ceilings %s and %s: %w",
				c.Idle, c.Lifetime, c.MaxIdle, c.MaxLifetime, errdefs.ErrInvalidArgument)
		}
		o.sessions = &c
		return nil
	}
}

// endedKept bounds how many ended sessions, and for how long, are
// remembered so that a caller learns why its session ended.
const (
	endedKept    = 1000
	endedKeptFor = 10 * time.Minute
)

// closeTimeout bounds how long ending a session in the background (idle,
// lifetime) may take.
const closeTimeout = time.Minute

// sessionTable is the service's open sessions, by id, and why recent
// ones ended.
type sessionTable struct {
	mu       sync.Mutex
	live     map[string]*session
	opening  int
	ended    map[string]endedSession
	endOrder []string
	shutdown bool
}

// session is an open session: the runtime's, whose it is, and its timers.
type session struct {
	id, owner string
	rs        *runtime.Session
	doc       api.Session
	idle      time.Duration
	// busy counts calls in progress; the idle timer runs only at zero.
	busy      int
	idleTimer *time.Timer
	lifeTimer *time.Timer
}

type endedSession struct {
	owner, reason string
	at            time.Time
}

// OpenSession opens a session for owner (the caller's identity: only the
// same owner can use it). The skill, image, limits and user are resolved
// and checked as a run's, and the image is admitted as a run's is; the
// session then takes a warm container of the pool.
func (s *Service) OpenSession(ctx context.Context, owner string, req api.SessionRequest) (*api.Session, error) {
	cfg := s.opts.sessions
	pool := s.pool()
	if cfg == nil || cfg.Max == 0 || pool == nil {
		return nil, fmt.Errorf("sessions are not enabled on this server (serve --max-sessions): %w", errdefs.ErrFailedPrecondition)
	}
	idle, err := sessionDuration("idle_timeout", req.IdleTimeout, cfg.Idle, cfg.MaxIdle, "--max-session-idle")
	if err != nil {
		return nil, err
	}
	lifetime, err := sessionDuration("max_lifetime", req.MaxLifetime, cfg.Lifetime, cfg.MaxLifetime, "--max-session-lifetime")
	if err != nil {
		return nil, err
	}
	rr := req.RunRequest()
	skill, err := s.load(rr.Input())
	if err != nil {
		return nil, err
	}
	if err := s.checkCeilings(skill.Run, req.User); err != nil {
		return nil, err
	}
	doc := &api.Session{SkillID: skill.ID, Runtime: skill.Run.Runtime,
		Limits:      api.SessionLimits{MemoryBytes: skill.Run.MemoryBytes, CPUs: skill.Run.CPUs, Pids: skill.Run.Pids, TmpfsBytes: skill.Run.TmpfsBytes},
		IdleTimeout: idle.String(), MaxLifetime: lifetime.String()}
	rreq := runtime.Request{Limits: runtime.Limits(skill.Run), User: req.User, Preload: req.Preload}
	rreq.Image, doc.Image, err = runImage(skill, req.Image)
	if err != nil {
		return nil, err
	}
	policy, err := s.serverPolicy()
	if err != nil {
		return nil, err
	}
	opts := admitOpts{policy: policy, result: func(a *api.Admission) { doc.Admission = a }}

	t := &s.sessions
	if err := t.reserve(cfg.Max); err != nil {
		return nil, err
	}
	opened := false
	defer func() {
		if !opened {
			t.unreserve()
		}
	}()
	rreq, _, err = s.admitWarm(ctx, rreq, opts)
	if err != nil {
		return nil, s.runError(err, skill, req.Image, doc.Image)
	}
	rs, err := pool.OpenSession(ctx, rreq, lifetime)
	if err != nil {
		return nil, s.runError(err, skill, req.Image, doc.Image)
	}
	id, err := newSessionID()
	if err != nil {
		rs.Close(context.WithoutCancel(ctx), runtime.SessionEndedClosed) //nolint:errcheck // the error that matters is id's
		return nil, err
	}
	doc.SessionID = id
	doc.ExpiresAt = time.Now().Add(lifetime).UTC().Truncate(time.Second)
	ss := &session{id: id, owner: owner, rs: rs, doc: *doc, idle: idle}
	if !t.add(ss) {
		rs.Close(context.WithoutCancel(ctx), runtime.SessionEndedShutdown) //nolint:errcheck // shutting down: Close sweeps
		return nil, fmt.Errorf("the server is shutting down: %w", errdefs.ErrUnavailable)
	}
	opened = true
	ss.idleTimer = time.AfterFunc(idle, func() { s.expireSession(ss, runtime.SessionEndedIdle) })
	ss.lifeTimer = time.AfterFunc(lifetime, func() { s.expireSession(ss, runtime.SessionEndedLifetime) })
	return doc, nil
}

// sessionDuration is a session's duration field: def when empty, refused
// above ceiling.
func sessionDuration(field, v string, def, ceiling time.Duration, flag string) (time.Duration, error) {
	if v == "" {
		return def, nil
	}
	d, err := config.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%s %q: %v: %w", field, v, err, errdefs.ErrInvalidArgument)
	}
	if d <= 0 {
		return 0, fmt.Errorf("%s %q must be positive: %w", field, v, errdefs.ErrInvalidArgument)
	}
	if d > ceiling {
		return 0, fmt.Errorf("%s %s is above this server's ceiling of %s (serve %s): ask for less, or ask the operator to raise it: %w",
			field, d, ceiling, flag, errdefs.ErrInvalidArgument)
	}
	return d, nil
}

// newSessionID is 128 random bits in hex.
func newSessionID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("session id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// SessionRun runs a call of owner's session id. A call that ends the
// session (timeout, OOM kill, the interpreter died, its lifetime) says so
// in the document's session_ended; a call on a session that ended fails
// with an error that says why ("session ended: timeout"), and so does a
// call on one that is unknown or another owner's (with the same words as
// an unknown one).
func (s *Service) SessionRun(ctx context.Context, owner, id string, req api.SessionRunRequest) (*api.SessionRunResult, error) {
	out := &api.SessionRunResult{}
	fail := func(err error) (*api.SessionRunResult, error) {
		fillRun(&out.RunResult, runtime.Result{}, err)
		return out, err
	}
	files, err := inFiles(req.Files)
	if err != nil {
		return fail(err)
	}
	ss, err := s.sessions.use(owner, id)
	if err != nil {
		return nil, err
	}
	out.SkillID, out.ImageTag = ss.doc.SkillID, ss.doc.Image
	ended := ""
	defer func() { s.sessions.done(ss, ended, s.expireSession) }()
	limits, err := s.callLimits(ss, req)
	if err != nil {
		return fail(err)
	}
	res, err := ss.rs.Call(ctx, runtime.Request{Code: []byte(req.Code), Inputs: req.Inputs, Files: files, Limits: limits})
	if errors.Is(err, runtime.ErrSessionEnded) {
		ended = ss.rs.Ended()
		if ended == "" {
			ended = runtime.SessionEndedExited
		}
		return nil, &sessionEndedError{reason: ended}
	}
	ended = res.SessionEnded
	if err != nil && ended == "" {
		ended = ss.rs.Ended()
	}
	fillRun(&out.RunResult, res, err)
	out.SessionEnded = ended
	return out, err
}

// callLimits are the timeout and output limit of a call: the request's,
// or the defaults of a run, within the ceilings.
func (s *Service) callLimits(ss *session, req api.SessionRunRequest) (runtime.Limits, error) {
	var l config.RunLimits
	var err error
	if l.Timeout, err = config.ParseDuration(orDefault(req.Timeout, config.DefaultRunTimeout)); err != nil || l.Timeout <= 0 {
		return runtime.Limits{}, fmt.Errorf("timeout %q: expected a positive duration (30s): %w", req.Timeout, errdefs.ErrInvalidArgument)
	}
	if l.OutputLimitBytes, err = config.ParseSize(orDefault(req.OutputLimit, config.DefaultRunOutputLimit)); err != nil || l.OutputLimitBytes <= 0 {
		return runtime.Limits{}, fmt.Errorf("output_limit %q: expected a positive size (1m): %w", req.OutputLimit, errdefs.ErrInvalidArgument)
	}
	l.Runtime = ss.doc.Runtime
	if err := s.checkCeilings(l, ""); err != nil {
		return runtime.Limits{}, err
	}
	return runtime.Limits{Timeout: l.Timeout, OutputLimitBytes: l.OutputLimitBytes}, nil
}

// CloseSession ends owner's session id and removes its container.
func (s *Service) CloseSession(ctx context.Context, owner, id string) (*api.Session, error) {
	ss, err := s.sessions.take(owner, id, runtime.SessionEndedClosed)
	if err != nil {
		return nil, err
	}
	doc := ss.doc
	doc.Ended = runtime.SessionEndedClosed
	return &doc, ss.rs.Close(ctx, runtime.SessionEndedClosed)
}

// ListSessions lists owner's open sessions, oldest first.
func (s *Service) ListSessions(_ context.Context, owner string) (*api.SessionList, error) {
	t := &s.sessions
	t.mu.Lock()
	defer t.mu.Unlock()
	out := &api.SessionList{Sessions: []api.Session{}}
	for _, ss := range t.live {
		if ss.owner == owner {
			out.Sessions = append(out.Sessions, ss.doc)
		}
	}
	sort.Slice(out.Sessions, func(i, j int) bool {
		a, b := out.Sessions[i], out.Sessions[j]
		return a.ExpiresAt.Before(b.ExpiresAt) || (a.ExpiresAt.Equal(b.ExpiresAt) && a.SessionID < b.SessionID)
	})
	return out, nil
}

// OpenSessions counts the open sessions (for metrics).
func (s *Service) OpenSessions() int {
	t := &s.sessions
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.live)
}

// expireSession ends ss for reason (idle: only when no call is in
// progress; the end of a call re-arms the timer).
func (s *Service) expireSession(ss *session, reason string) {
	t := &s.sessions
	t.mu.Lock()
	if t.live[ss.id] != ss || (reason == runtime.SessionEndedIdle && ss.busy > 0) {
		t.mu.Unlock()
		return
	}
	t.endLocked(ss, reason)
	t.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	if err := ss.rs.Close(ctx, reason); err != nil {
		fmt.Fprintf(s.opts.log, "skillbuild: warning: ending session %s (%s): %v\n", ss.id, reason, err)
	}
}

// closeSessions ends every session (the service is closing) and refuses
// new ones.
func (s *Service) closeSessions(ctx context.Context) error {
	t := &s.sessions
	t.mu.Lock()
	t.shutdown = true
	var all []*session
	for _, ss := range t.live {
		all = append(all, ss)
		t.endLocked(ss, runtime.SessionEndedShutdown)
	}
	t.mu.Unlock()
	var errs []error
	for _, ss := range all {
		if err := ss.rs.Close(ctx, runtime.SessionEndedShutdown); err != nil {
			errs = append(errs, fmt.Errorf("session %s: %w", ss.id, err))
		}
	}
	return errors.Join(errs...)
}

// reserve takes a place for a session being opened, within max.
func (t *sessionTable) reserve(max int) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.shutdown {
		return fmt.Errorf("the server is shutting down: %w", errdefs.ErrUnavailable)
	}
	if len(t.live)+t.opening >= max {
		return fmt.Errorf("too many sessions: %d are open, this server's maximum (serve --max-sessions); end one (DELETE /v1/sessions/ID) or try again later: %w",
			max, errdefs.ErrResourceExhausted)
	}
	t.opening++
	return nil
}

func (t *sessionTable) unreserve() {
	t.mu.Lock()
	t.opening--
	t.mu.Unlock()
}

// add records an opened session in its reserved place; false when the
// service is closing.
func (t *sessionTable) add(ss *session) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.shutdown {
		return false
	}
	t.opening--
	if t.live == nil {
		t.live = map[string]*session{}
	}
	t.live[ss.id] = ss
	return true
}

// lookupLocked is owner's open session id, or the error a caller gets:
// why it ended, or that it is not known (another owner's included).
func (t *sessionTable) lookupLocked(owner, id string) (*session, error) {
	if ss := t.live[id]; ss != nil && ss.owner == owner {
		return ss, nil
	}
	if e, ok := t.ended[id]; ok && e.owner == owner {
		return nil, &sessionEndedError{reason: e.reason}
	}
	return nil, &notFoundError{msg: fmt.Sprintf("session %s not found: it is not open on this server, or ended more than %s ago; open a new one (POST /v1/sessions)", id, endedKeptFor)}
}

// sessionEndedError is a call on a session that ended: it says why
// ("session ended: timeout") and is a runtime.ErrSessionEnded (so a not
// found).
type sessionEndedError struct{ reason string }

func (e *sessionEndedError) Error() string { return api.SessionEndedPrefix + e.reason }
func (e *sessionEndedError) Unwrap() error { return runtime.ErrSessionEnded }

// use marks a call of owner's session id in progress (done ends it).
func (t *sessionTable) use(owner, id string) (*session, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ss, err := t.lookupLocked(owner, id)
	if err != nil {
		return nil, err
	}
	ss.busy++
	ss.idleTimer.Stop()
	return ss, nil
}

// done ends a call of ss: when ended is not "", the call ended the
// session (whose container the runtime removes; expire makes sure);
// otherwise the idle timer starts again once no call is in progress.
func (t *sessionTable) done(ss *session, ended string, expire func(*session, string)) {
	t.mu.Lock()
	ss.busy--
	live := t.live[ss.id] == ss
	if live && ended == "" && ss.busy == 0 {
		ss.idleTimer.Reset(ss.idle)
	}
	t.mu.Unlock()
	if live && ended != "" {
		expire(ss, ended)
	}
}

// take removes owner's session id from the open ones, for reason.
func (t *sessionTable) take(owner, id, reason string) (*session, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ss, err := t.lookupLocked(owner, id)
	if err != nil {
		return nil, err
	}
	t.endLocked(ss, reason)
	return ss, nil
}

// endLocked moves ss from the open sessions to the ended ones, which
// keep the last endedKept for endedKeptFor.
func (t *sessionTable) endLocked(ss *session, reason string) {
	delete(t.live, ss.id)
	ss.idleTimer.Stop()
	ss.lifeTimer.Stop()
	now := time.Now()
	if t.ended == nil {
		t.ended = map[string]endedSession{}
	}
	t.ended[ss.id] = endedSession{owner: ss.owner, reason: reason, at: now}
	t.endOrder = append(t.endOrder, ss.id)
	drop := 0
	for drop < len(t.endOrder) && (len(t.endOrder)-drop > endedKept || now.Sub(t.ended[t.endOrder[drop]].at) > endedKeptFor) {
		delete(t.ended, t.endOrder[drop])
		drop++
	}
	t.endOrder = append([]string(nil), t.endOrder[drop:]...)
}
