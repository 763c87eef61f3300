package runtime

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestDepthFor(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name            string
		rate            float64
		start           time.Duration
		perKey, maxWarm int
		want            int
	}{
		{"no runs yet: the per-image count", 0, 200 * time.Millisecond, 2, 8, 2},
		{"one run a second: one start covers it", 1, 200 * time.Millisecond, 2, 8, 2},
		{"back to back: the runs of one start, plus one", 15, 300 * time.Millisecond, 2, 16, 6},
		{"rounded to the nearest, up", 10, 260 * time.Millisecond, 1, 16, 4},
		{"rounded to the nearest, down", 10, 210 * time.Millisecond, 1, 16, 3},
		{"rare runs keep one", 0.1, 300 * time.Millisecond, 1, 16, 1},
		{"slow starts ask for more", 15, time.Second, 2, 32, 16},
		{"bounded by the pool's maximum", 100, time.Second, 2, 8, 8},
		{"maximum below the per-image count", 0, time.Second, 4, 3, 3},
		{"no warm containers at all", 50, time.Second, 2, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tc.want, depthFor(tc.rate, tc.start, tc.perKey, tc.maxWarm))
		})
	}
}

// TestDemandFollowsRuns drives the estimate with made-up times: a burst of
// back-to-back runs deepens the set, janitor rounds without runs bring it
// back to the per-image count.
func TestDemandFollowsRuns(t *testing.T) {
	t.Parallel()
	var d demand
	now := time.Unix(1e9, 0)
	assert.Equal(t, 2, d.depth(2, 16), "before any run")
	d.started(300 * time.Millisecond)
	assert.Equal(t, 300*time.Millisecond, d.startLatency())

	// Runs 2 s apart: one start (0.3 s) sees no other run.
	for range 5 {
		d.arrive(now)
		now = now.Add(2 * time.Second)
	}
	assert.Equal(t, 2, d.depth(2, 16), "runs 2 s apart")

	// A burst: a run every 50 ms (20/s). The rate moves most of the way
	// in a few runs; the depth ends at 20/s × 0.3 s + 1.
	depths := []int{}
	for range 21 {
		d.arrive(now)
		depths = append(depths, d.depth(2, 16))
		now = now.Add(50 * time.Millisecond)
	}
	assert.Greater(t, depths[4], 2, "after 5 back-to-back runs: %v", depths)
	assert.IsNonDecreasing(t, depths)
	assert.Equal(t, 7, depths[len(depths)-1], "%v", depths)
	assert.Equal(t, 2, d.depth(2, 2), "the pool's maximum bounds it")

	// A round with runs keeps the depth; the next one without any
	// sees the time since the last and lowers it.
	assert.False(t, d.idle(now), "runs came since the last round")
	assert.Equal(t, 7, d.depth(2, 16), "a round with runs")
	now = now.Add(time.Second)
	assert.True(t, d.idle(now), "no run since the last round")
	assert.Equal(t, 2, d.depth(2, 16), "a round a second after the last run")

	// Coincident runs count as minGap apart: two of them do not make
	// the set as deep as the pool allows.
	var c demand
	c.arrive(now)
	c.arrive(now)
	assert.Less(t, c.depth(2, 64), 64)

	// Start latencies: the newest counts for a quarter.
	d.started(700 * time.Millisecond)
	assert.Equal(t, 400*time.Millisecond, d.startLatency())
}
