package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

var (
	// onlyBurst measures the burst rows alone.
	onlyBurst = flag.Bool("only-burst", false, "measure only the serve burst rows: 5 warm-ups, then 21 back-to-back print(1) through a fresh server, -runs rounds, beside ctr run --rm (and -compare-bin's server); prints the rows, writes nothing")
	// burstMaxWarm is the servers' --max-warm in the burst rows.
	burstMaxWarm = flag.Int("burst-max-warm", 16, "--max-warm of the servers of the burst rows (the depth a burst can reach)")
)

// Sizes of the burst rows.
const (
	burstWarmups = 5
	burstRuns    = 21
)

// burstReport is the burst rows: per binary, print(1) sent back to back
// through a fresh server after a few warm-ups; ctr run --rm of the same
// image in the same rounds.
type burstReport struct {
	rows    []*burstRow
	ctr     []time.Duration
	maxWarm int
	load    string
}

// burstRow is one skillbuild binary's burst runs over every round.
type burstRow struct {
	name string
	bin  string   // empty: -bin
	args []string // serve's flags besides --max-warm
	lat  []time.Duration
	// ready is the warm containers ready when each round's burst began;
	// depth, the image's depth after it (-1: the server does not report
	// one).
	ready, depth []int
	// started is the containers each round started from the first run
	// of its burst until its pool was quiet again (replacements, and the
	// deepening); cpu is the CPU of that time per container started (its
	// start, its run, its removal): the server process, containerd with
	// its shims and runc, and the containers.
	started []int
	cpu     []time.Duration
	// wall is each round's burst, first run to last result.
	wall []time.Duration
	// again is a second burst once the pool is quiet after the first
	// (what a server that saw a burst keeps for the next one), and
	// readyAgain what was ready when it began.
	again      []time.Duration
	readyAgain []int
}

// burstOnly measures and prints the burst rows.
func (b *bench) burstOnly(ctx context.Context, stdout io.Writer) error {
	root, err := b.newRoot(ctx, "")
	if err != nil {
		return err
	}
	rep, err := b.measureBurst(ctx, root)
	if err != nil {
		return err
	}
	fmt.Fprint(stdout, rep.markdown())
	return nil
}

// measureBurst runs -runs rounds; each round starts a fresh server of each
// binary, sends it burstWarmups runs back to back, waits until its pool
// is quiet (nothing starting or being removed), then times burstRuns runs
// back to back, then burstRuns ctr run --rm.
func (b *bench) measureBurst(ctx context.Context, root string) (*burstReport, error) {
	rep := &burstReport{maxWarm: *burstMaxWarm}
	rep.rows = append(rep.rows, &burstRow{name: "`skillbuild serve` (depth from demand)"},
		&burstRow{name: fmt.Sprintf("`skillbuild serve --warm-per-skill %d` (a fixed depth: half the burst, and one)", burstRuns/2+1),
			args: []string{"--warm-per-skill", strconv.Itoa(burstRuns/2 + 1)}})
	if b.o.compareBin != "" {
		rep.rows = append(rep.rows, &burstRow{name: "`skillbuild serve` of -compare-bin", bin: b.o.compareBin})
	}
	meter, undo, err := b.newCPUMeter()
	if err != nil {
		b.say("  burst: no CPU meter: %v", err)
		meter = nil
	} else {
		defer undo()
	}
	ctr := &ctrRunner{b: b, ref: baseRef}
	if _, err := ctr.run(ctx); err != nil { // warm-up
		return nil, err
	}
	b.say("serve: burst of %d back-to-back print(1) after %d warm-ups, %d rounds, --max-warm %d", burstRuns, burstWarmups, b.o.runs, rep.maxWarm)
	for round := range b.o.runs {
		for i, row := range rep.rows {
			name := fmt.Sprintf("serve-burst-%d-%d", round, i)
			if err := b.burstRound(ctx, root, name, row, rep.maxWarm, meter); err != nil {
				return nil, fmt.Errorf("%s: %w", row.name, err)
			}
			n := len(row.ready) - 1
			var each []string
			for _, d := range row.lat[len(row.lat)-burstRuns:] {
				each = append(each, strconv.FormatInt(d.Milliseconds(), 10))
			}
			b.say("  %s round %d: %d ready at the start, depth %d after, wall %s, %d started, CPU per container started %s; each run (ms): %s", row.name, round+1,
				row.ready[n], row.depth[n], secs(row.wall[n]), row.started[n], secs(row.cpu[n]), strings.Join(each, " "))
		}
		for range burstRuns {
			r, err := ctr.run(ctx)
			if err != nil { // ctr run now and then loses a quick task's output: once more
				r, err = ctr.run(ctx)
			}
			if err != nil {
				return nil, err
			}
			rep.ctr = append(rep.ctr, r.wall)
		}
	}
	rep.load = loadAvg()
	for _, row := range rep.rows {
		b.say("  %s: p50 %s, p90 %s; ctr run --rm p50 %s", row.name, secs(median(row.lat)), secs(pct(row.lat, 90)), secs(median(rep.ctr)))
	}
	return rep, nil
}

// burstRound is one round of row: a fresh server, the warm-ups, the burst.
func (b *bench) burstRound(ctx context.Context, root, name string, row *burstRow, maxWarm int, meter *cpuMeter) error {
	s, err := b.startServeBin(ctx, row.bin, root, name, append([]string{"--max-warm", strconv.Itoa(maxWarm)}, row.args...)...)
	if err != nil {
		return err
	}
	defer s.stop()
	for range burstWarmups {
		if err := s.print1(); err != nil {
			return err
		}
	}
	s.quiet(0)
	h, err := s.health()
	if err != nil {
		return err
	}
	row.ready = append(row.ready, h.Warm)
	cpu := func() time.Duration {
		if meter == nil {
			return 0
		}
		m := meter.sample()
		return procCPU(s.cmd.Process.Pid) + m.daemonCg + m.inside
	}
	c0 := cpu()
	t0 := time.Now()
	for range burstRuns {
		t := time.Now()
		if err := s.print1(); err != nil {
			return err
		}
		row.lat = append(row.lat, time.Since(t))
	}
	row.wall = append(row.wall, time.Since(t0))
	row.depth = append(row.depth, s.depth(baseRef))
	s.quiet(0)
	after, err := s.health()
	if err != nil {
		return err
	}
	started := burstRuns + after.Warm - h.Warm
	row.started = append(row.started, started)
	row.cpu = append(row.cpu, (cpu()-c0)/time.Duration(max(1, started)))

	row.readyAgain = append(row.readyAgain, after.Warm)
	for range burstRuns {
		t := time.Now()
		if err := s.print1(); err != nil {
			return err
		}
		row.again = append(row.again, time.Since(t))
	}
	return nil
}

// depth is image's depth as the server's /metrics reports it
// (skillbuild_pool_image_target), or -1 when it reports none.
func (s *serveProc) depth(image string) int {
	resp, err := s.http.Get("http://skillbuild/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok || !strings.HasPrefix(name, "skillbuild_pool_image_target{") || !strings.Contains(name, strconv.Quote(image)) {
			continue
		}
		if f, err := strconv.ParseFloat(value, 64); err == nil {
			return int(f)
		}
	}
	return -1
}

// markdown is the burst rows, with their target.
func (r *burstReport) markdown() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "\nBurst: a fresh `skillbuild serve --max-warm %d` (2 warm per skill unless the row says otherwise), %d print(1) runs back to back as warm-ups, "+
		"then, once its pool is quiet, %d print(1) runs back to back through the API, timed one by one, and as many again once "+
		"the pool is quiet after them (the second burst finds the depth the first one built); %d rounds; "+
		"`ctr run --rm` print(1) %d times after each round. Load average at the end: %s.\n\n",
		r.maxWarm, burstWarmups, burstRuns, len(r.ctr)/max(1, burstRuns), burstRuns, r.load)
	sb.WriteString("| row | p50 | p90 | ratio to ctr run --rm (p50) | ready at the burst's start | depth after | burst wall | containers started | CPU per container started (start, run, removal) |\n|---|---|---|---|---|---|---|---|---|\n")
	ints := func(v []int) string {
		var s []string
		for _, x := range v {
			if x < 0 {
				s = append(s, "n/a")
				continue
			}
			s = append(s, strconv.Itoa(x))
		}
		return strings.Join(s, ", ")
	}
	durs := func(v []time.Duration) string {
		var s []string
		for _, d := range v {
			s = append(s, secs(d))
		}
		return strings.Join(s, ", ")
	}
	for _, row := range r.rows {
		fmt.Fprintf(&sb, "| %s | %s | %s | %.2f× | %s | %s | %s | %s | %s |\n", row.name, secs(median(row.lat)), secs(pct(row.lat, 90)),
			ratio(median(row.lat), median(r.ctr)), ints(row.ready), ints(row.depth), durs(row.wall), ints(row.started), durs(row.cpu))
	}
	for _, row := range r.rows {
		fmt.Fprintf(&sb, "| %s, second burst once the pool is quiet | %s | %s | %.2f× | %s | | | | |\n", row.name, secs(median(row.again)), secs(pct(row.again, 90)),
			ratio(median(row.again), median(r.ctr)), ints(row.readyAgain))
	}
	fmt.Fprintf(&sb, "| `ctr run --rm` | %s | %s | 1.00× | | | | | |\n", secs(median(r.ctr)), secs(pct(r.ctr, 90)))
	if len(r.rows) > 0 {
		sb.WriteString(r.bound(r.rows[0]))
		got := ratio(median(r.rows[0].lat), median(r.ctr))
		verdict := "met"
		if got > 0.2 {
			verdict = "**missed**"
		}
		fmt.Fprintf(&sb, "\n| target | goal | measured | |\n|---|---|---|---|\n| burst print(1) p50 | ≤ 0.2× ctr run --rm | %.2f× | %s |\n", got, verdict)
	}
	return sb.String()
}

// bound says what a burst can reach on this machine: a run past the ones
// that were ready waits for a replacement, and the cores make at most one
// every CPU-per-run / cores, however deep the pool is by then. So the p50
// of a burst is fast only when more than half of its runs found one ready.
func (r *burstReport) bound(row *burstRow) string {
	if len(row.cpu) == 0 || len(row.ready) == 0 {
		return ""
	}
	cores := goruntime.NumCPU()
	cpu := median(row.cpu)
	if cpu == 0 {
		return ""
	}
	readyMed := slices.Sorted(slices.Values(row.ready))[len(row.ready)/2]
	every := cpu / time.Duration(cores)
	return fmt.Sprintf("\nWhy: past the containers ready when it began, each run of a burst waits for a replacement, and %d cores "+
		"make one at most every %s (CPU per container started, %s, over the cores), however deep the pool is by then; "+
		"that is %.2f× ctr run --rm's p50 here. A p50 within 0.2× needs at least %d of the %d runs to find one ready: "+
		"a pool that deep before the burst (median here: %d ready).\n",
		cores, secs(every), secs(cpu), ratio(every, median(r.ctr)), burstRuns/2+1, burstRuns, readyMed)
}
