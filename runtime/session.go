package runtime

import (
	"context"
	"fmt"
	"time"

	"github.com/containerd/errdefs"
)

// Why a session ended (Result.SessionEnded, Session.Ended).
const (
	SessionEndedTimeout  = "timeout"  // a call reached its timeout: the container was killed
	SessionEndedOOM      = "oom"      // the memory cgroup's OOM killer killed a process during a call
	SessionEndedExited   = "exited"   // the interpreter exited or died (os._exit, a signal, a crash)
	SessionEndedLifetime = "lifetime" // the session reached its maximum lifetime
	SessionEndedIdle     = "idle"     // (given by the caller to Close) no call within the idle timeout
	SessionEndedClosed   = "closed"   // (given by the caller to Close) ended on request
	SessionEndedShutdown = "shutdown" // (given by the caller to Close) the pool or server shut down
)

// ErrSessionEnded: Call on a session that has ended. The wrapping error says
// why ("session ended: timeout").
var ErrSessionEnded = fmt.Errorf("session ended: %w", errdefs.ErrNotFound)

// A Session is one container whose interpreter serves a sequence of calls,
// keeping its globals, imported modules and files between them. Safe for
// concurrent use; calls run one at a time (a second waits for the first).
type Session struct {
	id string
}

// OpenSession starts a session for req's image, limits (Limits.Timeout and
// OutputLimitBytes are per call and ignored here), user, preload list and
// runtime, from a warm container of the pool when one is ready (else it
// starts one: never a cold single-use run). Its memory, cpus and pids limits
// hold for its whole life; lifetime (> 0) bounds it: the container's init
// kills it then, host or not. req.Code, Inputs, Files, Stdout and Stderr are
// ignored.
func (p *Pool) OpenSession(ctx context.Context, req Request, lifetime time.Duration) (*Session, error) {
	return nil, fmt.Errorf("session: %w", errdefs.ErrNotImplemented)
}

// ID is the session's container ID (sbrun-…).
func (s *Session) ID() string { return s.id }

// Ended says why the session ended; "" while it goes on.
func (s *Session) Ended() string { return "" }

// Call runs req.Code in the session's interpreter with req.Inputs as the
// global `inputs`, req.Files added under InDir (kept for later calls, same
// name replaced), within req.Limits.Timeout and OutputLimitBytes (defaults
// as for a run), output to req.Stdout/req.Stderr as it comes.
// Result.Stdout/Stderr are this call's output only; Result.Result this
// call's global `result` (unset before each call); Result.Files what this
// call created or changed under OutDir. A call that times out, is
// OOM-killed or whose interpreter dies returns its Result with TimedOut /
// OOMKilled / Error as a run would, and SessionEnded set; the container is
// then removed. Call on an ended session returns an error wrapping
// ErrSessionEnded. Image, Limits other than Timeout/OutputLimitBytes, User,
// Preload are ignored.
func (s *Session) Call(ctx context.Context, req Request) (Result, error) {
	return Result{}, fmt.Errorf("session call: %w", errdefs.ErrNotImplemented)
}

// Close ends the session with reason (one of SessionEnded*; "" means
// Closed) and removes its container, task, view and state files.
// Idempotent; a call in progress ends with SessionEnded = reason.
func (s *Session) Close(ctx context.Context, reason string) error {
	return nil
}
