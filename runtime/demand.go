package runtime

import (
	"math"
	"time"
)

// demand is what a warm set knows of its recent runs: how often they come
// and how long a replacement takes to be ready. Its depth (target) is the
// number of runs that come while one replacement starts, plus one
// (Little's law: the containers in the pipe are the arrival rate times the
// time each one spends in it); see depthFor.
type demand struct {
	// rate is an exponentially weighted mean of the runs per second, each
	// sample the inverse of the gap since the run before (0: no gap seen).
	rate float64
	// last is when the last run came; zero before the first.
	last time.Time
	// start is an exponentially weighted mean of the time a container of
	// the set took from its start to ready (0: none measured yet).
	start time.Duration
	// arrived says a run came since the janitor's last look.
	arrived bool
}

const (
	// demandWeight is the weight of the newest sample in both means:
	// a burst of a few back-to-back runs moves the rate most of the way.
	demandWeight = 0.25
	// minGap bounds one sample of the rate (runs that come together count
	// as this far apart), so that two coincident runs do not make the set
	// as deep as the pool allows.
	minGap = 10 * time.Millisecond
	// defaultStart is the start latency assumed before one was measured:
	// a runc container of the python base, ready, on an idle machine.
	defaultStart = 200 * time.Millisecond
)

// arrive records a run at now.
func (d *demand) arrive(now time.Time) {
	if !d.last.IsZero() {
		gap := max(now.Sub(d.last), minGap)
		d.rate += demandWeight * (1/gap.Seconds() - d.rate)
	}
	d.last = now
	d.arrived = true
}

// started records that a container took took from its start to ready.
func (d *demand) started(took time.Duration) {
	if d.start == 0 {
		d.start = took
		return
	}
	d.start += time.Duration(demandWeight * float64(took-d.start))
}

// idle is the janitor's look at now. It reports whether no run came since
// the last look; such a set has a rate of at most one run per time since
// its last one, so its depth falls as it stays idle.
func (d *demand) idle(now time.Time) bool {
	if d.arrived {
		d.arrived = false
		return false
	}
	if since := now.Sub(d.last); !d.last.IsZero() && since > 0 {
		d.rate = min(d.rate, 1/since.Seconds())
	}
	return true
}

// startLatency is the measured start latency, or defaultStart.
func (d *demand) startLatency() time.Duration {
	if d.start == 0 {
		return defaultStart
	}
	return d.start
}

// depth is the set's target for its demand, within [perKey, maxWarm].
func (d *demand) depth(perKey, maxWarm int) int {
	return depthFor(d.rate, d.startLatency(), perKey, maxWarm)
}

// depthFor is the number of containers a set keeps ready or starting for
// runs that come rate times a second when a replacement takes start to be
// ready: the runs that come during one start, rounded to the nearest, plus
// one for the run that comes next (a set whose runs come much less often
// than a start takes keeps one); never below perKey nor above maxWarm (maxWarm
// wins).
func depthFor(rate float64, start time.Duration, perKey, maxWarm int) int {
	want := 1.0
	if rate > 0 && start > 0 {
		want += math.Round(rate * start.Seconds())
	}
	n := perKey
	if want > float64(n) {
		n = int(min(want, float64(maxWarm)))
	}
	return max(0, min(n, maxWarm))
}
