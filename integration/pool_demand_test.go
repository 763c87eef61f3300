package integration

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	sbruntime "github.com/skillbuild/skillbuild/runtime"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPoolDepthFollowsDemand drives runtime.Pool against the suite's
// containerd: a burst of back-to-back runs makes the image's depth rise
// above the per-image count, with its replacements started in parallel;
// once the runs stop, the janitor brings the depth (and the ready
// containers) back to the per-image count, then drops the set at the idle
// timeout; nothing is left.
func TestPoolDepthFollowsDemand(t *testing.T) {
	ctx := context.Background()
	c := ctdClient(t)
	r, err := sbruntime.New(ctx, c, sbruntime.WithStateDir(filepath.Join(env.root, "runs")))
	require.NoError(t, err)
	const perKey = 1
	// The janitor looks every quarter of the idle timeout; a few rounds
	// must pass between the burst and the drop for the depth to fall
	// back, however long a start takes on a busy machine.
	p, err := sbruntime.NewPool(ctx, r, sbruntime.WithWarmPerImage(perKey), sbruntime.WithMaxWarm(6), sbruntime.WithIdleTimeout(10*time.Second))
	require.NoError(t, err)
	closed := false
	t.Cleanup(func() {
		if !closed {
			p.Close(ctx)
		}
	})
	image := func() sbruntime.ImageStats { return p.Stats().Images[env.base] }
	run := func(i int) {
		t.Helper()
		res, err := p.Run(ctx, sbruntime.Request{Image: env.base, Code: []byte(fmt.Sprintf("print(%d)", i))})
		require.NoError(t, err)
		require.Nil(t, res.Error, "%+v", res.Error)
		assert.Equal(t, fmt.Sprintf("%d\n", i), res.Stdout)
	}

	run(0)
	eventually(t, time.Minute, func() bool { st := image(); return st.Ready == perKey && st.Starting == 0 },
		func() string { return fmt.Sprintf("the set did not fill: %+v", image()) })
	require.Equal(t, perKey, image().Target, "one run deepens nothing")

	// Watch how many are starting (or waiting for a start slot) at once
	// while the burst runs.
	var mu sync.Mutex
	maxStarting := 0
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			n := image().Starting
			mu.Lock()
			maxStarting = max(maxStarting, n)
			mu.Unlock()
		}
	}()
	const burst = 16
	for i := 1; i <= burst; i++ {
		run(i)
	}
	close(stop)
	<-watched
	st := image()
	assert.Greater(t, st.Target, perKey, "after %d back-to-back runs: %+v", burst, st)
	assert.Greater(t, maxStarting, 1, "replacements asked for one at a time")
	assert.Equal(t, int64(burst+1), st.Hits+st.Misses, "%+v", st)
	all := p.Stats()
	assert.Equal(t, all.Hits, st.Hits, "one image: its hits are the pool's")
	assert.Equal(t, all.Waited, st.Waited)
	t.Logf("after the burst: %+v, at most %d starting at once", st, maxStarting)

	// Idle: the depth falls back to the per-image count while the set
	// lives, the ready containers beyond it are destroyed, then the set
	// goes at the idle timeout.
	eventually(t, time.Minute, func() bool { st := image(); return st.Target == perKey && st.Ready+st.Starting == perKey },
		func() string { return fmt.Sprintf("the depth did not fall back to %d: %+v", perKey, image()) })
	eventually(t, time.Minute, func() bool { st := image(); return st.Target == 0 && st.Ready == 0 && st.Starting == 0 },
		func() string { return fmt.Sprintf("the idle set was not dropped: %+v", image()) })
	assert.Equal(t, 0, p.Stats().Warm)

	require.NoError(t, p.Close(ctx))
	closed = true
	assertNoRunLeftovers(t)
}

// TestServePoolDepthMetrics runs a burst through a real server: /metrics
// shows the image's depth rise above --warm-per-skill with the burst and
// fall back once the runs stop, and its per-image counters.
func TestServePoolDepthMetrics(t *testing.T) {
	s := startServe(t, "--warm-per-skill", "1", "--max-warm", "6", "--idle-timeout", "10s")
	// image is the value of the one sample of family (one image runs
	// here), or "" when there is none.
	image := func(family string) string {
		_, _, body := s.call(t, http.MethodGet, "/metrics", nil)
		value := ""
		for _, line := range strings.Split(string(body), "\n") {
			if v, ok := strings.CutPrefix(line, family+"{image="); ok {
				require.Empty(t, value, "one image, one sample of %s:\n%s", family, body)
				_, value, _ = strings.Cut(v, "} ")
				require.NotEmpty(t, value, line)
			}
		}
		return value
	}
	run := func(i int) {
		t.Helper()
		d := s.run(t, map[string]any{"skill_id": "depth", "image": env.base, "code": fmt.Sprintf("print(%d)", i)})
		require.Equal(t, fmt.Sprintf("%d\n", i), d.Stdout)
	}
	run(0)
	eventually(t, time.Minute, func() bool { return image("skillbuild_pool_image_ready") == "1" },
		func() string { return "the set did not fill: ready " + image("skillbuild_pool_image_ready") })
	assert.Equal(t, "1", image("skillbuild_pool_image_target"))

	const burst = 12
	for i := 1; i <= burst; i++ {
		run(i)
	}
	target, err := strconv.Atoi(image("skillbuild_pool_image_target"))
	require.NoError(t, err)
	assert.Greater(t, target, 1, "depth after %d back-to-back runs", burst)
	hits, _ := strconv.Atoi(image("skillbuild_pool_image_hits_total"))
	misses, _ := strconv.Atoi(image("skillbuild_pool_image_misses_total"))
	assert.Equal(t, burst+1, hits+misses, "every run counted for its image")

	eventually(t, time.Minute, func() bool { return image("skillbuild_pool_image_target") == "1" },
		func() string { return "the depth did not fall back to 1: " + image("skillbuild_pool_image_target") })
	s.stop(t)
}
