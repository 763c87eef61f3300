package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	sbruntime "github.com/skillbuild/skillbuild/runtime"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPoolWarmRuns drives runtime.Pool against the suite's containerd:
// runs get warm containers that are never reused, concurrent runs get
// their own results, the deadline counts from the hand-over (not from the
// container's start), and Close leaves nothing behind.
func TestPoolWarmRuns(t *testing.T) {
	ctx := context.Background()
	c := ctdClient(t)
	r, err := sbruntime.New(ctx, c, sbruntime.WithStateDir(filepath.Join(env.root, "runs")))
	require.NoError(t, err)
	p, err := sbruntime.NewPool(ctx, r, sbruntime.WithWarmPerImage(2), sbruntime.WithMaxWarm(4))
	require.NoError(t, err)
	closed := false
	t.Cleanup(func() {
		if !closed {
			p.Close(ctx)
		}
	})

	run := func(code string, inputs string, limits sbruntime.Limits) sbruntime.Result {
		t.Helper()
		res, err := p.Run(ctx, sbruntime.Request{Image: env.base, Code: []byte(code), Inputs: json.RawMessage(inputs), Limits: limits})
		require.NoError(t, err)
		return res
	}
	first := run("result = {'x': inputs['x']}", `{"x": 1}`, sbruntime.Limits{})
	require.Nil(t, first.Error)
	assert.JSONEq(t, `{"x": 1}`, string(first.Result))

	// Wait for the background refill, then a run is a hit.
	require.Eventually(t, func() bool { return p.Stats().Warm == 2 }, 60*time.Second, 50*time.Millisecond)
	// Let the warm containers sit longer than the run's timeout: the
	// deadline counts from the hand-over.
	time.Sleep(1500 * time.Millisecond)
	res := run("import os, time\ntime.sleep(0.2)\nopen('/tmp/mark', 'w').write('x')\nresult = os.path.exists('/tmp/mark')", "", sbruntime.Limits{Timeout: time.Second})
	require.Nil(t, res.Error, "%+v", res.Error)
	assert.False(t, res.TimedOut)
	assert.Equal(t, "true", string(res.Result))
	// The first run waited for the first container started (no run of
	// its own beside the pool's starts); the second found one ready.
	st := p.Stats()
	assert.Equal(t, int64(2), st.Hits)
	assert.Equal(t, int64(1), st.Waited)
	assert.Equal(t, int64(0), st.Misses)

	// A container is never reused: the next run does not see the mark.
	require.Eventually(t, func() bool { return p.Stats().Warm == 2 }, 60*time.Second, 50*time.Millisecond)
	res = run("import os\nresult = os.path.exists('/tmp/mark')", "", sbruntime.Limits{})
	assert.Equal(t, "false", string(res.Result))

	// Concurrent runs: each gets its own result and its own output.
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := p.Run(ctx, sbruntime.Request{Image: env.base,
				Code:   []byte("print(inputs['i'])\nresult = inputs['i'] * 2"),
				Inputs: json.RawMessage(fmt.Sprintf(`{"i": %d}`, i))})
			if assert.NoError(t, err) {
				assert.Equal(t, fmt.Sprint(i*2), string(res.Result))
				assert.Equal(t, fmt.Sprintf("%d\n", i), res.Stdout)
			}
		}()
	}
	wg.Wait()

	// A timeout through a warm container.
	res = run("import time\ntime.sleep(3600)", "", sbruntime.Limits{Timeout: time.Second})
	assert.True(t, res.TimedOut)
	require.NotNil(t, res.Error)
	assert.Equal(t, sbruntime.ErrorTimeout, res.Error.Type)

	require.NoError(t, p.Close(ctx))
	closed = true
	_, err = p.Run(ctx, sbruntime.Request{Image: env.base, Code: []byte("pass")})
	assert.Error(t, err, "a closed pool runs nothing")
	assertNoRunLeftovers(t)
}
