package skill

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/skillbuild/skillbuild/runtime"
	"github.com/skillbuild/skillbuild/skill/api"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// openFake records a session of owner in t as OpenSession does, without
// a container (the table's rules never touch it).
func openFake(t *testing.T, tab *sessionTable, owner string) *session {
	t.Helper()
	require.NoError(t, tab.reserve(100))
	id, err := newSessionID()
	require.NoError(t, err)
	ss := &session{id: id, owner: owner, idle: time.Hour,
		idleTimer: time.AfterFunc(time.Hour, func() {}), lifeTimer: time.AfterFunc(time.Hour, func() {})}
	require.True(t, tab.add(ss))
	return ss
}

// TestSessionOwner: a session is usable by its owner only; another
// identity gets the words of an unknown id, before and after it ended;
// its owner learns why it ended.
func TestSessionOwner(t *testing.T) {
	t.Parallel()
	var tab sessionTable
	a := openFake(t, &tab, "uid:1000")

	got, err := tab.use("uid:1000", a.id)
	require.NoError(t, err)
	assert.Same(t, a, got)
	tab.done(a, "", nil)

	unknown := func(id string) string {
		_, err := tab.use("uid:1000", id)
		require.Error(t, err)
		return strings.ReplaceAll(err.Error(), id, "ID")
	}
	other := func() error {
		_, err := tab.use("uid:1001", a.id)
		return err
	}
	err = other()
	require.Error(t, err)
	assert.True(t, errdefs.IsNotFound(err))
	assert.Equal(t, unknown("0123456789abcdef0123456789abcdef"), strings.ReplaceAll(err.Error(), a.id, "ID"), "another identity: as if unknown")
	_, err = tab.take("uid:1001", a.id, runtime.SessionEndedClosed)
	assert.True(t, errdefs.IsNotFound(err), "another identity cannot end it")

	_, err = tab.take("uid:1000", a.id, runtime.SessionEndedTimeout)
	require.NoError(t, err)
	_, err = tab.use("uid:1000", a.id)
	require.Error(t, err)
	assert.Equal(t, "session ended: timeout", err.Error())
	assert.True(t, errors.Is(err, runtime.ErrSessionEnded))
	assert.True(t, errdefs.IsNotFound(err))
	assert.Equal(t, api.ExitNotFound, api.ExitCode(err))
	err = other()
	assert.NotContains(t, err.Error(), "timeout", "another identity does not learn why it ended")
}

// TestSessionMax: the Max+1th session is refused as a temporary lack of
// resources, and an ended one frees its place.
func TestSessionMax(t *testing.T) {
	t.Parallel()
	var tab sessionTable
	require.NoError(t, tab.reserve(2))
	require.NoError(t, tab.reserve(2))
	err := tab.reserve(2)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "too many sessions")
	assert.True(t, errdefs.IsResourceExhausted(err))
	assert.Equal(t, api.ExitTempFail, api.ExitCode(err))
	tab.unreserve()
	require.NoError(t, tab.reserve(2), "a failed open gives its place back")
}

// TestSessionIdleWaitsForCalls: the idle timer does not end a session
// with a call in progress; the end of the call arms it again.
func TestSessionIdleWaitsForCalls(t *testing.T) {
	t.Parallel()
	s := &Service{}
	ss := openFake(t, &s.sessions, "o")
	_, err := s.sessions.use("o", ss.id)
	require.NoError(t, err)
	s.expireSession(ss, runtime.SessionEndedIdle) // fired during the call
	assert.Equal(t, 1, s.OpenSessions(), "a busy session is not idle")
	fired := make(chan struct{})
	ss.idleTimer = time.AfterFunc(time.Hour, func() { close(fired) })
	ss.idle = time.Millisecond
	s.sessions.done(ss, "", nil)
	select {
	case <-fired:
	case <-time.After(time.Minute):
		t.Fatal("the end of the call did not arm the idle timer")
	}
}

// TestEndedKept: the reasons of ended sessions are kept for the last
// endedKept only.
func TestEndedKept(t *testing.T) {
	t.Parallel()
	var tab sessionTable
	first := openFake(t, &tab, "o")
	_, err := tab.take("o", first.id, runtime.SessionEndedClosed)
	require.NoError(t, err)
	for range endedKept {
		ss := openFake(t, &tab, "o")
		_, err := tab.take("o", ss.id, runtime.SessionEndedClosed)
		require.NoError(t, err)
	}
	assert.Len(t, tab.ended, endedKept)
	assert.Len(t, tab.endOrder, endedKept)
	_, err = tab.use("o", first.id)
	assert.Contains(t, err.Error(), "not found", "the oldest reason was dropped")
}

func TestSessionDurations(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		v    string
		want time.Duration
		err  string
	}{
		{"", 5 * time.Minute, ""},
		{"90s", 90 * time.Second, ""},
		{"2h", 0, "above this server's ceiling of 1h0m0s (serve --max-session-idle)"},
		{"-1s", 0, "idle_timeout"},
		{"soon", 0, `idle_timeout "soon"`},
	} {
		d, err := sessionDuration("idle_timeout", tc.v, 5*time.Minute, time.Hour, "--max-session-idle")
		if tc.err != "" {
			require.Error(t, err, tc.v)
			assert.Contains(t, err.Error(), tc.err)
			assert.True(t, errdefs.IsInvalidArgument(err))
			continue
		}
		require.NoError(t, err, tc.v)
		assert.Equal(t, tc.want, d)
	}
}

func TestWithSessions(t *testing.T) {
	t.Parallel()
	ok := Sessions{Max: 2, Idle: time.Minute, Lifetime: time.Hour, MaxIdle: time.Minute, MaxLifetime: time.Hour}
	_, err := New(WithSessions(ok))
	require.NoError(t, err)
	for _, bad := range []Sessions{
		{Max: -1, Idle: time.Minute, Lifetime: time.Hour, MaxIdle: time.Minute, MaxLifetime: time.Hour},
		{Max: 1, Idle: 0, Lifetime: time.Hour, MaxIdle: time.Minute, MaxLifetime: time.Hour},
		{Max: 1, Idle: time.Hour, Lifetime: time.Hour, MaxIdle: time.Minute, MaxLifetime: time.Hour},
	} {
		_, err := New(WithSessions(bad))
		assert.True(t, errdefs.IsInvalidArgument(err), fmt.Sprint(bad))
	}
	// Without a pool (a command, not a server), no sessions.
	s, err := New(WithSessions(ok))
	require.NoError(t, err)
	_, err = s.OpenSession(context.Background(), "o", api.SessionRequest{SkillID: "a"})
	assert.True(t, errdefs.IsFailedPrecondition(err), "%v", err)
}
