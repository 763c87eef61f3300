package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// profileMissed profiles every build row where skillbuild misses its
// target: one more run with BuildKit's rawjson progress (per-vertex start
// and completion times) and the build steps' CPU, and, for the row that
// misses by the most, one more under `perf record` (on-CPU samples of the
// skillbuild process and its children). It says where the time goes.
func (b *bench) profileMissed(ctx context.Context, rep *report, sb *sbBuilder, states map[string]string, ex *extras) string {
	type miss struct {
		row   *buildRow
		ratio float64
	}
	var misses []miss
	for _, rows := range [][]buildRow{rep.builds, rep.builds30} {
		for i := range rows {
			r := &rows[i]
			if r.sc.target == nil {
				continue
			}
			if ratio, met, ok := r.sc.target.check(*r); ok && (!met || b.o.profileAll) {
				misses = append(misses, miss{r, ratio})
			}
		}
	}
	if len(misses) == 0 {
		return "Every measured build row meets its target.\n"
	}
	sort.Slice(misses, func(i, j int) bool {
		return misses[i].ratio/misses[i].row.sc.target.factor > misses[j].ratio/misses[j].row.sc.target.factor
	})
	var out strings.Builder
	for i, m := range misses {
		tg := m.row.sc.target
		fmt.Fprintf(&out, "### %s\n\nskillbuild %s vs %s %s: %.2f× (goal ≤ %.1f×).\n\n", m.row.sc.name,
			secs(median(m.row.cells[colSB].walls())), tg.peer, secs(median(m.row.cells[tg.peer].walls())), m.ratio, tg.factor)
		out.WriteString(b.profileRow(ctx, m.row, tg.peer, sb, states, ex, i == 0))
		out.WriteString("\n")
	}
	return out.String()
}

// profileRow runs row once more with rawjson progress and, with perf, once
// more under perf record, and reports the timeline and the CPU.
func (b *bench) profileRow(ctx context.Context, worst *buildRow, worstPeer string, sb *sbBuilder, states map[string]string, ex *extras, withPerf bool) string {
	var out strings.Builder
	state := states[colSB]
	if worst.sc.cold {
		s, err := sb.newState(ctx)
		if err != nil {
			return out.String() + "profiling run failed: " + oneLine(err.Error()) + "\n"
		}
		state = s
	}

	// Two more runs: one with rawjson progress only, for the timeline (perf
	// would stretch the process's exit while it writes its data), and one
	// under perf for the skillbuild process's CPU.
	fresh := func() (string, error) {
		if worst.sc.cold {
			return sb.newState(ctx)
		}
		return states[colSB], nil
	}
	sb.progress = "rawjson"
	stepsCPU := watchStepsCPU(state)
	smp, err := worst.sc.run(ctx, sb, state, b.o.runs, ex.forTool(colSB))
	stepCPU, stepCPUOK := stepsCPU()
	sb.progress = ""
	if err != nil {
		fmt.Fprintf(&out, "profiling run failed: %s\n", oneLine(err.Error()))
		return out.String()
	}
	out.WriteString(vertexReport(smp))
	out.WriteString("\nCPU time, where the wall time is spent on a 2-core machine:\n\n")
	if stepCPUOK {
		fmt.Fprintf(&out, "- the build steps (every process in the containers BuildKit ran: pip, python; read from the cpuacct\n"+
			"  usage of skillbuild's build cgroup while it ran): **%s** of CPU\n", secs(stepCPU))
	} else {
		out.WriteString("- the build steps: not measured (skillbuild's build cgroup was not found)\n")
	}
	fmt.Fprintf(&out, "- the skillbuild process itself (rusage user+sys): %s\n", secs(smp.cpu))
	if peer := worst.cells[worstPeer]; peer != nil && len(peer.samples) > 0 {
		cpus := make([]time.Duration, len(peer.samples))
		for i, p := range peer.samples {
			cpus[i] = p.cpu
		}
		fmt.Fprintf(&out, "- %s doing the same row (rusage of its processes, median of its runs): %s\n", worstPeer, secs(median(cpus)))
	}
	if !withPerf {
		return out.String()
	}
	if _, err := exec.LookPath("perf"); err != nil {
		out.WriteString("\n(perf not installed: no CPU profile; `apt-get install linux-perf` adds it.)\n")
		return out.String()
	}
	data := filepath.Join(b.dir, "perf.data")
	pstate, err := fresh()
	if err == nil {
		sb.wrap = []string{"perf", "record", "-q", "-g", "-F", "499", "-o", data, "--"}
		var psmp sample
		psmp, err = worst.sc.run(ctx, sb, pstate, b.o.runs+1, ex.forTool(colSB))
		sb.wrap = nil
		if err == nil {
			fmt.Fprintf(&out, "\nOne more run under `perf record -g -F 499` samples the skillbuild process and what it forks (the\n"+
				"containers' processes are children of containerd's shims and do not appear): skillbuild's own CPU\n"+
				"(user+sys, rusage) was %s of that run's %s wall time.\n\n", secs(psmp.cpu), secs(psmp.wall))
		}
	}
	if err != nil {
		fmt.Fprintf(&out, "\nperf run failed: %s\n", oneLine(err.Error()))
		return out.String()
	}
	for _, rp := range []struct{ title, flags string }{
		{"self time by binary", "--no-children --sort dso --percent-limit 2"},
		{"self time by function", "--no-children --sort sym --percent-limit 2"},
		{"time including callees, skillbuild's and its libraries' functions only (Go frame pointers)", "--children --sort sym --percent-limit 3"},
	} {
		argv := append([]string{"perf", "report", "-i", data, "--stdio", "-g", "none"}, strings.Fields(rp.flags)...)
		r, err := b.exec(ctx, nil, argv)
		if err != nil {
			fmt.Fprintf(&out, "perf report %s failed: %s\n", rp.flags, oneLine(err.Error()))
			continue
		}
		lines := r.stdout
		if strings.HasPrefix(rp.flags, "--children") {
			lines = ownFrames(lines)
		}
		fmt.Fprintf(&out, "%s (`perf report %s`):\n\n```\n%s```\n\n", rp.title, rp.flags, perfLines(lines, 24))
	}
	return out.String()
}

// perfLines keeps the sample lines of a perf report.
func perfLines(out []byte, n int) string {
	var keep []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "#") || strings.TrimSpace(l) == "" {
			if strings.HasPrefix(l, "# Samples") || strings.HasPrefix(l, "# Event count") {
				keep = append(keep, l)
			}
			continue
		}
		keep = append(keep, l)
		if len(keep) >= n {
			break
		}
	}
	return strings.Join(keep, "\n") + "\n"
}

// vertex is the part of a BuildKit progress vertex the profile reads.
type vertex struct {
	Digest    string     `json:"digest"`
	Name      string     `json:"name"`
	Started   *time.Time `json:"started"`
	Completed *time.Time `json:"completed"`
	Cached    bool       `json:"cached"`
}

type span struct {
	name       string
	start, end time.Time
	cached     bool
}

// vertexReport turns a rawjson progress stream into a timeline: time
// before the first vertex (process and engine start), inside vertices by
// kind, gaps between them, and after the last (export bookkeeping, exit).
func vertexReport(s sample) string {
	spans := map[string]*span{}
	sc := bufio.NewScanner(bytes.NewReader(s.stderr))
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var st struct {
			Vertexes []vertex `json:"vertexes"`
		}
		if json.Unmarshal(sc.Bytes(), &st) != nil {
			continue
		}
		for _, v := range st.Vertexes {
			sp := spans[v.Digest]
			if sp == nil {
				sp = &span{name: v.Name}
				spans[v.Digest] = sp
			}
			if v.Started != nil && (sp.start.IsZero() || v.Started.Before(sp.start)) {
				sp.start = *v.Started
			}
			if v.Completed != nil && v.Completed.After(sp.end) {
				sp.end = *v.Completed
			}
			sp.cached = sp.cached || v.Cached
		}
	}
	var list []*span
	for _, sp := range spans {
		if !sp.start.IsZero() && !sp.end.IsZero() {
			list = append(list, sp)
		}
	}
	if len(list) == 0 {
		return fmt.Sprintf("One more run with `--progress rawjson`: no vertex at all (answered without BuildKit): wall %s,\n"+
			"skillbuild process CPU (user+sys) %s.\n", secs(s.wall), secs(s.cpu))
	}
	sort.Slice(list, func(i, j int) bool { return list[i].start.Before(list[j].start) })
	end := s.start.Add(s.wall)
	first, last := list[0].start, list[0].end
	var busy, gaps time.Duration
	curStart, curEnd := list[0].start, list[0].end
	for _, sp := range list[1:] {
		last = maxTime(last, sp.end)
		if sp.start.After(curEnd) {
			busy += curEnd.Sub(curStart)
			gaps += sp.start.Sub(curEnd)
			curStart, curEnd = sp.start, sp.end
			continue
		}
		curEnd = maxTime(curEnd, sp.end)
	}
	busy += curEnd.Sub(curStart)

	type group struct {
		n, cached int
		sum, max  time.Duration
	}
	groups := map[string]*group{}
	for _, sp := range list {
		k := kind(sp.name)
		g := groups[k]
		if g == nil {
			g = &group{}
			groups[k] = g
		}
		g.n++
		if sp.cached {
			g.cached++
		}
		d := sp.end.Sub(sp.start)
		g.sum += d
		g.max = max(g.max, d)
	}
	var kinds []string
	for k := range groups {
		kinds = append(kinds, k)
	}
	sort.Slice(kinds, func(i, j int) bool { return groups[kinds[i]].sum > groups[kinds[j]].sum })

	var out strings.Builder
	fmt.Fprintf(&out, "One more run with `--progress rawjson` (BuildKit's per-vertex start/completion): wall %s, skillbuild\n"+
		"process CPU (user+sys) %s, %d vertices (%d executed steps reported).\n\n", secs(s.wall), secs(s.cpu), len(list), s.steps)
	out.WriteString("| part of the wall time | time |\n|---|---|\n")
	fmt.Fprintf(&out, "| process start → first vertex (exec, image-store check, lock, BuildKit engine start) | %s |\n", secs(first.Sub(s.start)))
	fmt.Fprintf(&out, "| inside vertices (union of their intervals) | %s |\n", secs(busy))
	fmt.Fprintf(&out, "| gaps between vertices (between solves: reading the report, scan, planning) | %s |\n", secs(gaps))
	fmt.Fprintf(&out, "| last vertex → exit (export bookkeeping, tag, engine shutdown) | %s |\n\n", secs(end.Sub(last)))
	out.WriteString("Vertices by kind (sums overlap when BuildKit runs them in parallel):\n\n| kind | count (cached) | sum | longest |\n|---|---|---|---|\n")
	for _, k := range kinds {
		g := groups[k]
		fmt.Fprintf(&out, "| %s | %d (%d) | %s | %s |\n", k, g.n, g.cached, secs(g.sum), secs(g.max))
	}
	sort.Slice(list, func(i, j int) bool { return list[i].end.Sub(list[i].start) > list[j].end.Sub(list[j].start) })
	out.WriteString("\nLongest vertices:\n\n| vertex | start (from process start) | duration |\n|---|---|---|\n")
	for _, sp := range list[:min(8, len(list))] {
		fmt.Fprintf(&out, "| %s | +%s | %s |\n", strings.ReplaceAll(oneLine(sp.name), "`", "'"), secs(sp.start.Sub(s.start)), secs(sp.end.Sub(sp.start)))
	}
	return out.String()
}

// kind groups vertex names: "install sbbench-core-001==1.0.0" → "install".
func kind(name string) string {
	name = strings.TrimPrefix(name, "[internal] ")
	f := strings.Fields(name)
	if len(f) == 0 {
		return "(unnamed)"
	}
	if len(f) > 1 && (f[0] == "exporting" || f[0] == "resolve" || f[0] == "copy") {
		return f[0] + " " + f[1]
	}
	return f[0]
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// watchStepsCPU polls the CPU usage of skillbuild's build cgroup for state
// root (the parent of every build step: build.newBuildCgroup names it
// skillbuild-<first 12 hex of sha256(root)>) until the returned function
// is called, and returns the last value seen. cgroup v1 cpuacct and v2
// cpu.stat both charge a child's usage to its parents, so the parent's
// counter is the sum over all steps; skillbuild removes the parent on
// exit, hence the polling.
func watchStepsCPU(root string) func() (time.Duration, bool) {
	sum := sha256.Sum256([]byte(root))
	name := "skillbuild-" + hex.EncodeToString(sum[:])[:12]
	read := func() (time.Duration, bool) {
		if data, err := os.ReadFile(filepath.Join("/sys/fs/cgroup/cpuacct", name, "cpuacct.usage")); err == nil {
			ns, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
			return time.Duration(ns), err == nil
		}
		if data, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", name, "cpu.stat")); err == nil {
			for _, l := range strings.Split(string(data), "\n") {
				if v, ok := strings.CutPrefix(l, "usage_usec "); ok {
					us, err := strconv.ParseInt(v, 10, 64)
					return time.Duration(us) * time.Microsecond, err == nil
				}
			}
		}
		return 0, false
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	var last time.Duration
	var seen bool
	go func() {
		defer close(done)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			if v, ok := read(); ok && v >= last {
				last, seen = v, true
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	return func() (time.Duration, bool) {
		close(stop)
		<-done
		return last, seen
	}
}

// ownFrames keeps the report lines of skillbuild's own and its libraries'
// functions, dropping the runtime, syscall and scheduling wrappers that
// every goroutine sits under.
func ownFrames(report []byte) []byte {
	var keep [][]byte
	for _, l := range bytes.Split(report, []byte("\n")) {
		s := string(l)
		if strings.HasPrefix(s, "#") || (strings.Contains(s, "github.com/") && !strings.Contains(s, "flightcontrol") &&
			!strings.Contains(s, "errgroup") && !strings.Contains(s, "sync.(*Once)")) {
			keep = append(keep, l)
		}
	}
	return bytes.Join(keep, []byte("\n"))
}
