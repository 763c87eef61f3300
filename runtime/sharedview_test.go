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

// TestViewSweepDue: with an interval the snapshot walk is due at first,
// not again within the interval, and again once the last walk is older;
// without one it is always due.
func TestViewSweepDue(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(dir, "images"), 0o700))
	r := &Runner{opts: options{stateDir: dir, viewSweepEvery: time.Minute}}
	now := time.Now()
	assert.True(t, r.viewSweepDue(now), "never walked")
	assert.False(t, r.viewSweepDue(now.Add(30*time.Second)), "walked half a minute ago")
	assert.True(t, r.viewSweepDue(now.Add(61*time.Second)), "walked over a minute ago")
	assert.False(t, r.viewSweepDue(now.Add(62*time.Second)), "the walk is stamped")

	always := &Runner{opts: options{stateDir: dir}}
	assert.True(t, always.viewSweepDue(now))
	assert.True(t, always.viewSweepDue(now))
}
