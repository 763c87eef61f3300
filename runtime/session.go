package runtime

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	"github.com/skillbuild/skillbuild/runtime/pid1"
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

// sessionEndedError is the error of Call on an ended session.
type sessionEndedError struct{ reason string }

func (e *sessionEndedError) Error() string { return "session ended: " + e.reason }
func (e *sessionEndedError) Unwrap() error { return ErrSessionEnded }

// A Session is one container whose interpreter serves a sequence of calls,
// keeping its globals, imported modules and files between them. Safe for
// concurrent use; calls run one at a time (a second waits for the first).
type Session struct {
	p        *Pool
	sb       *Sandbox
	lifetime time.Duration
	opened   time.Time
	stdout   *markSplitter
	stderr   *markSplitter

	// call is held by a call, and by the end of the session.
	call sync.Mutex

	mu      sync.Mutex
	ended   string // why the session ended
	closing string // the reason Close gave while a call ran
	removed bool   // the container is gone
	rmErr   error

	exited chan struct{} // closed when the container's init exited
	exit   client.ExitStatus

	// inFiles are the sizes of the files under InDir, by name (guarded
	// by call).
	inFiles map[string]int64
}

// Bounds of what a session's InDir holds, over all its calls.
const (
	maxSessionInFiles = 4 * MaxInFiles
	maxSessionInBytes = 4 * MaxInBytes
)

// addInFiles checks that files fit in the session's InDir beside those
// of earlier calls (a name replaces the same name; none is the directory
// of another) and counts them in. The caller holds s.call and writes them
// after.
func (s *Session) addInFiles(files map[string][]byte) error {
	if len(files) == 0 {
		return nil
	}
	next := maps.Clone(s.inFiles)
	if next == nil {
		next = map[string]int64{}
	}
	for name, data := range files {
		next[name] = int64(len(data))
	}
	var total int64
	for name, size := range next {
		if dir := fileUnder(name, next); dir != "" {
			return fmt.Errorf("file %q: %q is a file of the session, not a directory: %w", name, dir, errdefs.ErrInvalidArgument)
		}
		total += size
	}
	if len(next) > maxSessionInFiles || total > maxSessionInBytes {
		return fmt.Errorf("the session's files would be %d files of %d bytes, more than the %d files of %d bytes a session may hold: %w", len(next), total, maxSessionInFiles, maxSessionInBytes, errdefs.ErrInvalidArgument)
	}
	s.inFiles = next
	return nil
}

// OpenSession starts a session for req's image, limits (Limits.Timeout and
// OutputLimitBytes are per call and ignored here), user, preload list and
// runtime, from a warm container of the pool when one is ready (else it
// starts one: never a cold single-use run). Its memory, cpus and pids limits
// hold for its whole life; lifetime (> 0) bounds it: the container's init
// kills it then, host or not. req.Code, Inputs, Files, Stdout and Stderr are
// ignored.
func (p *Pool) OpenSession(ctx context.Context, req Request, lifetime time.Duration) (*Session, error) {
	ctx = p.r.namespaced(ctx)
	if lifetime <= 0 {
		return nil, fmt.Errorf("session lifetime must be positive, got %s: %w", lifetime, errdefs.ErrInvalidArgument)
	}
	limits, dg, done, err := p.begin(ctx, req)
	if err != nil {
		return nil, err
	}
	defer done()
	key := keyOf(req, limits)
	w, err := p.takeForSession(ctx, key, dg)
	if err != nil {
		return nil, err
	}
	s, err := p.startSession(ctx, w, lifetime)
	if err != nil {
		return nil, errors.Join(err, p.destroy(w))
	}
	return s, nil
}

// takeForSession takes a warm container of key as Pool.Run does, out of the
// pool's accounting, or starts one through the pool's own start path.
func (p *Pool) takeForSession(ctx context.Context, key poolKey, dg digest.Digest) (*warmContainer, error) {
	for {
		w, wait := p.take(key, dg)
		if wait != nil {
			p.count(func(s *PoolStats) { s.Waited++ })
			var err error
			if w, err = p.await(ctx, key, wait); err != nil {
				return nil, err
			}
		}
		if w == nil {
			break
		}
		if w.alive() {
			p.count(func(s *PoolStats) { s.Hits++ })
			return w, nil
		}
		p.destroyLater(w)
	}
	p.count(func(s *PoolStats) { s.Misses++ })
	p.mu.Lock()
	set := p.sets[key]
	if set == nil || set.digest != dg {
		set = &warmSet{key: key, digest: dg}
	}
	p.mu.Unlock()
	return p.start(ctx, set)
}

// startSession hands w its session job: the init's job line with the
// lifetime, then the runner's "session" line.
func (p *Pool) startSession(ctx context.Context, w *warmContainer, lifetime time.Duration) (*Session, error) {
	sb := w.sb
	// Another process's Sweep must not take the session for an orphan.
	until := time.Now().Add(lifetime)
	if err := sb.setLabels(ctx, map[string]string{LabelDeadline: deadlineLabel(until.Add(startMargin))}); err != nil {
		return nil, fmt.Errorf("label the session's deadline: %w", err)
	}
	s := &Session{p: p, sb: sb, lifetime: lifetime, exited: make(chan struct{})}
	s.stdout, s.stderr = newMarkSplitter(), newMarkSplitter()
	sb.stdout.divertTo(s.stdout)
	sb.stderr.divertTo(s.stderr)
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, fmt.Errorf("run pool is shut down: %w", errdefs.ErrUnavailable)
	}
	if p.sessions == nil {
		p.sessions = map[*Session]struct{}{}
	}
	p.sessions[s] = struct{}{}
	p.mu.Unlock()
	s.opened = time.Now()
	sb.start = s.opened
	job := pid1.SessionJob + lifetime.String() + "\nsession\n"
	if _, err := sb.job.Write([]byte(job)); err != nil {
		p.forget(s)
		return nil, fmt.Errorf("hand the session to %s: %w", sb.id, err)
	}
	go s.watch(sb.exitC)
	return s, nil
}

// forget takes s out of the pool's open sessions.
func (p *Pool) forget(s *Session) {
	p.mu.Lock()
	delete(p.sessions, s)
	p.mu.Unlock()
}

// closeSessions ends every open session of the pool (Pool.Close).
func (p *Pool) closeSessions(ctx context.Context) error {
	p.mu.Lock()
	open := slices.Collect(maps.Keys(p.sessions))
	p.mu.Unlock()
	var errs []error
	for _, s := range open {
		errs = append(errs, s.Close(ctx, SessionEndedShutdown))
	}
	return errors.Join(errs...)
}

// watch waits for the container's init to exit. Between calls, the
// session ends there and its container goes (a call in progress sees
// the exit itself).
func (s *Session) watch(exitC <-chan client.ExitStatus) {
	st := <-exitC
	s.mu.Lock()
	s.exit = st
	s.mu.Unlock()
	close(s.exited)
	if s.call.TryLock() {
		defer s.call.Unlock()
		_ = s.end(s.exitReason()) // a failure leaves it to the sweeps
	}
}

// exitReason is why the session's init exited: at its lifetime, or
// because the runner did. Close's reason comes first.
func (s *Session) exitReason() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing != "" {
		return s.closing
	}
	if int(s.exit.ExitCode()) == pid1.DeadlineStatus {
		at := s.exit.ExitTime()
		if at.IsZero() {
			at = time.Now()
		}
		if at.Sub(s.opened) >= s.lifetime {
			return SessionEndedLifetime
		}
	}
	return SessionEndedExited
}

// ID is the session's container ID (sbrun-…).
func (s *Session) ID() string { return s.sb.id }

// Ended says why the session ended; "" while it goes on.
func (s *Session) Ended() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ended
}

// isExited reports whether the container's init exited.
func (s *Session) isExited() bool {
	select {
	case <-s.exited:
		return true
	default:
		return false
	}
}

// kill kills every process of the container and waits for the init's
// exit (bounded).
func (s *Session) kill() error {
	if s.isExited() {
		return nil
	}
	cctx, cancel := s.sb.cleanupContext()
	defer cancel()
	err := s.sb.task.Kill(cctx, syscall.SIGKILL, s.sb.r.opts.killOpts()...)
	if err != nil && errdefs.IsNotFound(err) {
		err = nil
	}
	select {
	case <-s.exited:
		return nil
	case <-cctx.Done():
		return errors.Join(err, fmt.Errorf("session %s did not exit after SIGKILL: %w", s.sb.id, cctx.Err()))
	case <-time.After(killRaceWait):
		if err != nil {
			return fmt.Errorf("kill session %s: %w", s.sb.id, err)
		}
		select {
		case <-s.exited:
			return nil
		case <-cctx.Done():
			return fmt.Errorf("session %s did not exit after SIGKILL: %w", s.sb.id, cctx.Err())
		}
	}
}

// end ends the session with reason (the first reason stays) and removes
// its container, once. The caller holds s.call.
func (s *Session) end(reason string) error {
	s.mu.Lock()
	if s.ended == "" {
		s.ended = reason
	}
	if s.removed {
		err := s.rmErr
		s.mu.Unlock()
		return err
	}
	s.removed = true
	s.mu.Unlock()
	kerr := s.kill()
	s.stdout.end()
	s.stderr.end()
	cerr := s.sb.Close(s.sb.ctx)
	s.p.forget(s)
	err := errors.Join(kerr, cerr)
	s.mu.Lock()
	s.rmErr = err
	s.mu.Unlock()
	return err
}

// Close ends the session with reason (one of SessionEnded*; "" means
// Closed) and removes its container, task, view and state files.
// Idempotent; a call in progress ends with SessionEnded = reason.
func (s *Session) Close(ctx context.Context, reason string) error {
	if reason == "" {
		reason = SessionEndedClosed
	}
	s.mu.Lock()
	if s.ended == "" && s.closing == "" {
		s.closing = reason
	}
	s.mu.Unlock()
	kerr := s.kill() // a call in progress sees the exit and returns
	s.call.Lock()
	defer s.call.Unlock()
	return errors.Join(kerr, s.end(reason))
}

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
	res := Result{UID: s.sb.user.UID, GID: s.sb.user.GID, LimitsEnforced: s.sb.r.opts.limitMode.enforced()}
	limits, err := withDefaults(Limits{Timeout: req.Limits.Timeout, OutputLimitBytes: req.Limits.OutputLimitBytes})
	if err != nil {
		return res, err
	}
	inputs, err := normalizeInputs(req.Inputs)
	if err != nil {
		return res, err
	}
	if err := CheckFiles(req.Files); err != nil {
		return res, err
	}
	s.call.Lock()
	defer s.call.Unlock()
	if ended := s.Ended(); ended != "" {
		return res, &sessionEndedError{ended}
	}
	if s.isExited() {
		reason := s.exitReason()
		return res, errors.Join(&sessionEndedError{reason}, s.end(reason))
	}
	// A call given up before it began leaves the session as it was.
	if err := cancelled(ctx); err != nil {
		return res, err
	}
	if err := s.addInFiles(req.Files); err != nil {
		return res, err
	}
	return s.call1(ctx, req, limits, inputs, res)
}

// call1 is one call; the caller holds s.call.
func (s *Session) call1(ctx context.Context, req Request, limits Limits, inputs []byte, res Result) (_ Result, retErr error) {
	sb := s.sb
	cctx, cancel := sb.cleanupContext()
	defer cancel()
	oomBefore, oomErr := s.oomCount(cctx)
	if err := writeInFiles(filepath.Join(sb.r.opts.stateDir, sb.id, inName), req.Files); err != nil {
		return res, err
	}
	if err := writeCode(filepath.Join(sb.r.opts.stateDir, sb.id, "box"), req.Code); err != nil {
		return res, err
	}
	mark := strings.TrimPrefix(newID(), idPrefix) + strings.TrimPrefix(newID(), idPrefix)
	stdout, outFound := s.stdout.begin(limits.OutputLimitBytes, req.Stdout, callMarker(mark))
	stderr, errFound := s.stderr.begin(limits.OutputLimitBytes, req.Stderr, callMarker(mark))
	defer func() {
		s.stdout.end()
		s.stderr.end()
		stdout.flush(ctx) //nolint:errcheck // the writer's own error is its owner's to see
		stderr.flush(ctx) //nolint:errcheck
	}()
	line, err := json.Marshal(struct {
		Inputs json.RawMessage `json:"inputs"`
		Mark   string          `json:"mark"`
	}{json.RawMessage(bytes.TrimSpace(inputs)), mark})
	if err != nil {
		return res, err
	}
	start := time.Now()
	if _, err := sb.job.Write(append(line, '\n')); err != nil {
		reason := s.exitReason()
		return res, errors.Join(fmt.Errorf("hand the call to session %s: %w", sb.id, err), &sessionEndedError{reason}, s.end(reason))
	}
	timer := time.NewTimer(limits.Timeout)
	defer timer.Stop()

	// The call's end: its report, or the end of the container.
	var rep *runnerReport
	var repErr error
	var cancelErr error
	ended := ""
wait:
	for {
		if l, ok := sb.report.take(); ok {
			if l.err != nil {
				repErr = l.err
			} else {
				rep, repErr = decodeReport(l.data)
			}
			break
		}
		select {
		case <-sb.report.more:
		case <-s.exited:
			// The report may have come just before.
			if l, ok := sb.report.take(); ok && l.err == nil {
				rep, repErr = decodeReport(l.data)
			}
			ended = s.exitReason()
			break wait
		case <-timer.C:
			res.TimedOut = true
			ended = SessionEndedTimeout
			break wait
		case <-ctx.Done():
			ended = SessionEndedClosed
			cancelErr = cancelled(ctx)
			break wait
		}
	}
	res.Duration = time.Since(start)
	if ended == "" {
		if n, err := s.oomCount(cctx); err == nil && oomErr == nil && n > oomBefore {
			res.OOMKilled, ended = true, SessionEndedOOM
		}
	}
	if ended != "" {
		s.mu.Lock()
		if s.closing != "" {
			ended = s.closing
		}
		s.mu.Unlock()
		// Every process goes: the output ends with them.
		if err := s.kill(); err != nil {
			retErr = err
		}
		if ended != SessionEndedOOM && !res.OOMKilled {
			if n, err := s.oomCount(cctx); err == nil && oomErr == nil && n > oomBefore {
				res.OOMKilled = true
				if ended == SessionEndedExited {
					ended = SessionEndedOOM
				}
			}
		}
		waitOutput(sb, outputEndTimeout)
	} else {
		waitMarks(outputEndTimeout, outFound, errFound)
	}
	s.stdout.end()
	s.stderr.end()
	if ended != "" && rep == nil {
		res.ExitCode = int(s.exitStatus().ExitCode())
	}
	if rep != nil {
		res.ExitCode = rep.ExitCode
		res.Files, res.FilesOmitted = checkOutFiles(rep.Files, rep.FilesOmitted)
	}
	res.Stdout = toValidUTF8(stdout.Bytes())
	res.Stderr = toValidUTF8(stderr.Bytes())
	res.Truncated = stdout.Truncated() || stderr.Truncated()
	res.Result, res.Error = interpret(res, limits, rep, repErr, sb.r.opts.maxResultBytes)
	if ended == SessionEndedLifetime {
		res.Error = &CodeError{Type: ErrorTimeout, Message: fmt.Sprintf("the session reached its %s lifetime; every process was killed", s.lifetime)}
	}
	if ended != "" {
		res.SessionEnded = ended
		if err := s.end(ended); err != nil {
			retErr = errors.Join(retErr, err)
		}
	}
	return res, errors.Join(cancelErr, retErr)
}

// exitStatus is how the container's init exited.
func (s *Session) exitStatus() client.ExitStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.exit
}

// oomCount reads the container's OOM-kill counter.
func (s *Session) oomCount(ctx context.Context) (uint64, error) {
	if s.sb.r.opts.limitMode != cgroupLimits {
		return 0, errors.New("no memory cgroup")
	}
	return oomKillCounter(ctx, s.sb.task, s.sb.cgroupsPath)
}

// waitMarks waits for the channels to close, at most d.
func waitMarks(d time.Duration, found ...<-chan struct{}) {
	t := time.NewTimer(d)
	defer t.Stop()
	for _, f := range found {
		select {
		case <-f:
		case <-t.C:
			return
		}
	}
}

// waitOutput waits, at most d, for the end of the exited container's
// output (the shim closes it once every process is gone).
func waitOutput(sb *Sandbox, d time.Duration) {
	ended := make(chan struct{})
	go func() {
		if io := sb.task.IO(); io != nil {
			io.Wait()
		}
		close(ended)
	}()
	select {
	case <-ended:
	case <-time.After(d):
	}
}

// writeCode puts code in place as the code file of the sandbox directory
// box: complete before the runner may read it (renamed into place).
func writeCode(box string, code []byte) error {
	tmp := filepath.Join(box, ".code")
	if err := os.WriteFile(tmp, code, 0o444); err != nil {
		return fmt.Errorf("write code: %w", err)
	}
	if err := os.Chmod(tmp, 0o444); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(box, codeName)); err != nil {
		return fmt.Errorf("write code: %w", err)
	}
	return nil
}
