package runtime

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSharedViewName(t *testing.T) {
	t.Parallel()
	a, b := digest.FromString("a"), digest.FromString("b")
	n := sharedViewName("/var/lib/skillbuild/runs", a)
	assert.True(t, strings.HasPrefix(n, sharedViewPrefix))
	assert.Equal(t, n, sharedViewName("/var/lib/skillbuild/runs", a), "stable")
	assert.NotEqual(t, n, sharedViewName("/var/lib/skillbuild/runs", b), "one per root filesystem")
	assert.NotEqual(t, n, sharedViewName("/home/u/.skillbuild/runs", a), "state directories do not share: their locks are elsewhere")
	assert.False(t, strings.HasPrefix(n, idPrefix), "never taken for a run's own snapshot")
}

// TestFlockSharedWaitsForRemoval: a run waits while the view's last user
// holds it exclusively (removing it), gives up when its ctx ends, and
// shares it with other runs.
func TestFlockSharedWaitsForRemoval(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "view.lock")
	open := func() *os.File {
		f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
		require.NoError(t, err)
		t.Cleanup(func() { f.Close() })
		return f
	}
	remover, run, other := open(), open(), open()
	require.NoError(t, syscall.Flock(int(remover.Fd()), syscall.LOCK_EX))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	assert.ErrorIs(t, flockShared(ctx, run), context.DeadlineExceeded)

	go func() {
		time.Sleep(20 * time.Millisecond)
		syscall.Flock(int(remover.Fd()), syscall.LOCK_UN) //nolint:errcheck
	}()
	require.NoError(t, flockShared(context.Background(), run))
	require.NoError(t, flockShared(context.Background(), other), "shared between runs")
	assert.Error(t, syscall.Flock(int(remover.Fd()), syscall.LOCK_EX|syscall.LOCK_NB), "no removal while runs hold it")
}

// TestViewSweepDue: with an interval the snapshot walk (and, apart, the
// list of the run containers) is due at first, not again within the
// interval, and again once the last one is older; without one it is
// always due.
func TestViewSweepDue(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := &Runner{opts: options{stateDir: dir, viewSweepEvery: time.Minute}}
	now := time.Now()
	due := func(at time.Time) bool { return r.sweepDue(viewSweepStamp, r.opts.viewSweepEvery, at) }
	assert.True(t, due(now), "never walked")
	assert.False(t, due(now.Add(30*time.Second)), "walked half a minute ago")
	assert.True(t, due(now.Add(61*time.Second)), "walked over a minute ago")
	assert.False(t, due(now.Add(62*time.Second)), "the walk is stamped")
	assert.True(t, r.sweepDue(containerSweepStamp, time.Minute, now.Add(62*time.Second)), "the list has a stamp of its own")
	assert.False(t, r.sweepDue(containerSweepStamp, time.Minute, now.Add(63*time.Second)))

	always := &Runner{opts: options{stateDir: dir}}
	assert.True(t, always.sweepDue(viewSweepStamp, 0, now))
	assert.True(t, always.sweepDue(viewSweepStamp, 0, now))
}
