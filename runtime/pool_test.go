package runtime

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPoolOptions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		opt  PoolOpt
		ok   bool
	}{
		{"per image 1", WithWarmPerImage(1), true},
		{"per image 0", WithWarmPerImage(0), false},
		{"max warm 0 keeps none", WithMaxWarm(0), true},
		{"max warm negative", WithMaxWarm(-1), false},
		{"budget", WithMemoryBudget(1 << 30), true},
		{"budget negative", WithMemoryBudget(-1), false},
		{"idle", WithIdleTimeout(time.Second), true},
		{"idle zero", WithIdleTimeout(0), false},
	} {
		var o poolOptions
		err := tc.opt(&o)
		if tc.ok {
			assert.NoError(t, err, tc.name)
		} else {
			assert.ErrorIs(t, err, errdefs.ErrInvalidArgument, tc.name)
		}
	}
	assert.NoError(t, CheckPoolOpts(WithMaxWarm(0), WithWarmPerImage(1)))
	assert.ErrorIs(t, CheckPoolOpts(WithMaxWarm(1), WithIdleTimeout(-time.Second)), errdefs.ErrInvalidArgument)
	_, err := NewPool(context.Background(), nil)
	assert.ErrorIs(t, err, errdefs.ErrInvalidArgument)
}

// TestCappedBufferBind: a warm sandbox's buffers get their limit and
// writer when the job comes.
func TestCappedBufferBind(t *testing.T) {
	t.Parallel()
	b := newCappedBuffer(1<<20, nil)
	var tee bytes.Buffer
	b.bind(3, &tee)
	_, err := b.Write([]byte("abcdef"))
	require.NoError(t, err)
	require.NoError(t, b.flush(context.Background()))
	assert.Equal(t, "abc", string(b.Bytes()))
	assert.Equal(t, "abc", tee.String())
	assert.True(t, b.Truncated())
}

// TestPoolKeyIgnoresPerRunLimits: the timeout and the output limit apply
// per run, so runs differing only in them share warm containers; anything
// baked into the spec does not.
func TestPoolKeyIgnoresPerRunLimits(t *testing.T) {
	t.Parallel()
	a, err := withDefaults(Limits{Timeout: time.Second, OutputLimitBytes: 10})
	require.NoError(t, err)
	b, err := withDefaults(Limits{Timeout: time.Minute})
	require.NoError(t, err)
	c, err := withDefaults(Limits{MemoryBytes: 64 << 20})
	require.NoError(t, err)
	img := Request{Image: "img"}
	assert.Equal(t, keyOf(img, a), keyOf(img, b))
	assert.NotEqual(t, keyOf(img, a), keyOf(img, c))
	assert.NotEqual(t, keyOf(img, a), keyOf(Request{Image: "img", User: "0"}, a))
	pre := Request{Image: "img", Preload: []string{"numpy", "pandas.core"}}
	assert.NotEqual(t, keyOf(img, a), keyOf(pre, a), "preloaded modules are part of the warm container")
	assert.Equal(t, pre.Preload, keyOf(pre, a).request().Preload, "the key gives back the modules")
	assert.Nil(t, keyOf(img, a).request().Preload)
	g := a
	g.Runtime = RuntimeGVisor
	assert.NotEqual(t, keyOf(img, a), keyOf(img, g), "a warm container runs under one runtime")
	assert.Equal(t, RuntimeGVisor, keyOf(img, g).request().Limits.Runtime, "the key gives back the runtime")
}

func TestCheckPreload(t *testing.T) {
	t.Parallel()
	assert.NoError(t, checkPreload([]string{"numpy", "pandas.core", "_x1"}))
	for _, bad := range []string{"", "os; import x", "-m", "a..b", "a.", "../x", "x,y"} {
		assert.ErrorIs(t, checkPreload([]string{bad}), errdefs.ErrInvalidArgument, bad)
	}
}

// TestSweepPoolOwners: the owner file of a pool whose process is gone
// (its lock is free) is removed; a live pool's stays.
func TestSweepPoolOwners(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	live, err := lockedFile(filepath.Join(dir, "pool-live.lock"))
	require.NoError(t, err)
	defer live.Close()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "pool-dead.lock"), nil, 0o600))
	sweepPoolOwners(dir)
	assert.FileExists(t, filepath.Join(dir, "pool-live.lock"))
	assert.NoFileExists(t, filepath.Join(dir, "pool-dead.lock"))
}
