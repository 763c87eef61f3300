package main

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"
)

// report is everything one run measured.
type report struct {
	runs        int
	machine     []string
	setup       []string
	buildCols   []string
	builds      []buildRow // 10- and 20-distribution rows
	builds30    []buildRow // 30-distribution rows
	runOrder    []string
	runCells    map[string]*runCell
	runErr      error
	concurrency int
	latencyRuns int
	scans       []scanRow
	// resolveScans are -bin's and -compare-bin's scan -r rows.
	resolveScans []resolveScanRow
	goBench      string
	profile      string
	total        time.Duration
	only30       bool
	buildsOnly   bool   // -builds-only: no run table, no scans
	singleHow    string // where the single-layer column comes from
	serve        *serveReport
	registry     *registryRows
	rootless     string // the rootless section (rootless.go), if measured
	onlyRL       bool
	floors       *floorsReport // the floors section (floors.go), if measured
	onlyRuns     bool          // -only-runs or -only-floors
}

// warmupDists is the size of each tool's warm-up build.
const warmupDists = 3

// all sets the tools up, warms them, and measures every table.
func (b *bench) all(ctx context.Context) (*report, error) {
	rep := &report{runs: b.o.runs, concurrency: b.o.concurrency, latencyRuns: b.o.runLatency}
	rep.machine = b.machine(ctx)
	for _, l := range rep.machine {
		b.say("%s", l)
	}
	rep.setup = append(rep.setup,
		fmt.Sprintf("wheels: %d distinct generated pure-Python wheels (internal/pyindex), each with %d modules, %.0f KB of Python unpacked, served as a PEP 503 index on 127.0.0.1",
			b.index.count, modules, float64(b.index.unpacked)/1e3),
		"base: the Debian bookworm rootfs ("+b.o.rootfs+") imported into the private containerd with `skillbuild base import --rootfs` and into buildah/podman storage with `tar | podman import`",
		"every process gets PATH, HOME and LANG only (no PIP_* or proxy variables from the host)",
	)

	if b.o.onlyServe {
		rep.serve = b.serveTable(ctx)
		rep.machine = append(rep.machine, "- load average at end: "+loadAvg())
		return rep, nil
	}
	if b.o.onlyReg {
		rep.registry = b.registrySection(ctx)
		rep.machine = append(rep.machine, "- load average at end: "+loadAvg())
		return rep, nil
	}
	if b.o.onlyRuns || b.o.onlyFloors {
		rep.onlyRuns = true
		if b.o.onlyRuns {
			root, err := b.newRoot(ctx, "")
			if err != nil {
				return nil, err
			}
			b.say("run: print(1) latency over %d runs, then %d concurrent", b.o.runLatency, b.o.concurrency)
			rep.runCells, rep.runOrder, rep.runErr = b.runTable(ctx, root)
		}
		if b.o.floors || b.o.onlyFloors {
			rep.floors = b.floorsSection(ctx)
		}
		if b.o.compareBin != "" {
			rep.machine = append(rep.machine, "- rows marked [-compare-bin]: the skillbuild binary "+b.o.compareBin)
		}
		rep.machine = append(rep.machine, "- load average at end: "+loadAvg())
		return rep, nil
	}
	if b.o.onlyRL {
		rep.onlyRL, rep.rootless = true, b.rootlessRows(ctx)
		return rep, nil
	}
	rep.only30 = b.o.only30
	rep.buildsOnly = b.o.buildsOnly
	if !b.o.only30 && !b.o.buildsOnly {
		b.say("scan: go test -bench ./scan/")
		rep.goBench = b.goBench(ctx)
	}

	sb := &sbBuilder{b: b}
	tools := []builder{sb, &hostBuilder{b: b}}
	if !b.o.noSeedHost {
		tools = append(tools, &hostBuilder{b: b, seed: true})
	}
	if b.podman && (!b.o.only30 || b.o.buildah30) {
		tools = append(tools, &buildahBuilder{b: b}, &buildahBuilder{b: b, fast: true})
	}
	switch {
	case b.o.single != "":
		tools = append(tools, &sbBuilder{b: b, bin: b.o.single, col: colSingle})
		rep.singleHow = "a skillbuild binary from before per-distribution layers (`-single-layer-bin " + b.o.single + "`)"
	case b.o.withSingle && !b.o.noSingle && !b.o.skip30 && b.hasSingleLayerFlag(ctx):
		tools = append(tools, &sbBuilder{b: b, col: colSingle, flags: []string{"--single-layer"}})
		rep.singleHow = "the same skillbuild binary with its hidden `install --single-layer` flag (the whole lock in one pip step and one layer)"
	}
	if b.o.compareBin != "" {
		// Its own image repository: the two binaries share containerd,
		// and an image of the other would answer an unchanged skill.
		tools = append(tools, &sbBuilder{b: b, bin: b.o.compareBin, col: colCompare, flags: []string{"--repo", "sb-bench-compare"}})
	}
	for _, t := range tools {
		rep.buildCols = append(rep.buildCols, t.key())
	}
	// A warm-up loads each tool's binaries, interpreters and libraries
	// into the page cache; a small build does that as well as a big one.
	b.say("warm-up: one cold %d-distribution build per tool", warmupDists)
	for _, t := range tools {
		st, err := t.newState(ctx)
		if err != nil {
			return nil, err
		}
		s, err := t.build(ctx, st, "warmup", pins(core(warmupDists)), true)
		if err != nil {
			return nil, fmt.Errorf("warm-up of %s: %w", t.key(), err)
		}
		b.say("  %-28s %s", t.key(), s.wall.Round(time.Millisecond))
	}

	states := map[string]string{}
	for _, t := range tools {
		st, err := t.newState(ctx)
		if err != nil {
			return nil, err
		}
		states[t.key()] = st
	}
	ex := &extras{next: map[string]int{}}
	if !b.o.only30 {
		table := []scenario{coldScenario(10), cachedScenario(10), addOneScenario(20), secondScenario(10)}
		for _, sc := range table {
			if !b.wantRow(sc.key) {
				continue
			}
			sc.noSingle = true
			b.say("build: %s", sc.name)
			rep.builds = append(rep.builds, b.measureBuild(ctx, sc, tools, states, ex))
		}
	}
	if !b.o.skip30 {
		for _, sc := range []scenario{coldScenario(30), secondScenario(30), addOneScenario(30)} {
			if !b.wantRow(sc.key) {
				continue
			}
			sc.noBuildah = !b.o.buildah30
			b.say("build: %s", sc.name)
			rep.builds30 = append(rep.builds30, b.measureBuild(ctx, sc, tools, states, ex))
		}
	}

	if !b.o.only30 && b.wantRow("scan30") {
		b.say("scan: skillbuild scan -r, %d requirements resolved then scanned", resolveScanCount)
		bins, roots := []string{""}, []string{states[colSB]}
		if b.o.compareBin != "" {
			bins, roots = append(bins, b.o.compareBin), append(roots, states[colCompare])
		}
		rep.resolveScans = b.resolveScanTable(ctx, bins, roots)
	}

	if !b.o.only30 && !b.o.buildsOnly {
		b.say("run: print(1) latency over %d runs, then %d concurrent", b.o.runLatency, b.o.concurrency)
		rep.runCells, rep.runOrder, rep.runErr = b.runTable(ctx, states[colSB])
		if rep.runErr != nil {
			b.say("  run table failed: %v", rep.runErr)
		}

		if b.o.serve {
			rep.serve = b.serveTable(ctx)
		}
		if b.o.floors {
			rep.floors = b.floorsSection(ctx)
		}
		b.say("scan: skillbuild scan --no-resolve, 200 pins, whole process")
		rep.scans = b.scanTable(ctx, states[colSB])
	}

	if !b.o.only30 && !b.o.noRegistry {
		rep.registry = b.registrySection(ctx)
	}

	if b.o.rootless {
		rep.rootless = b.rootlessRows(ctx)
	}
	if !b.o.noProfile {
		b.say("profile: every build row that misses its target")
		rep.profile = b.profileMissed(ctx, rep, sb, states, ex)
	}
	rep.machine = append(rep.machine, "- load average at end: "+loadAvg())
	return rep, nil
}

func median(d []time.Duration) time.Duration { return pct(d, 50) }

// pct is the nearest-rank percentile of d.
func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration{}, d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if p == 50 && len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	k := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(0, min(k, len(s)-1))]
}

func minMax(d []time.Duration) (time.Duration, time.Duration) {
	lo, hi := d[0], d[0]
	for _, x := range d {
		lo, hi = min(lo, x), max(hi, x)
	}
	return lo, hi
}

func secs(d time.Duration) string {
	switch {
	case d >= 10*time.Second:
		return fmt.Sprintf("%.1f s", d.Seconds())
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	default:
		return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
	}
}

// cell renders "median (min–max)" and, for peers, the ratio to skillbuild.
func (rep *report) cell(s *series, ref *series, isRef bool) string {
	if s == nil {
		return "—"
	}
	if s.err != nil && len(s.samples) < rep.runs {
		return "failed: " + oneLine(s.err.Error())
	}
	w := s.walls()
	lo, hi := minMax(w)
	txt := fmt.Sprintf("%s (%s–%s)", secs(median(w)), secs(lo), secs(hi))
	if isRef {
		if s.samples[0].steps >= 0 {
			steps := make([]time.Duration, len(s.samples))
			for i, x := range s.samples {
				steps[i] = time.Duration(x.steps)
			}
			txt += fmt.Sprintf(", %d steps run", int(median(steps)))
		}
		unchanged := 0
		for _, x := range s.samples {
			if x.unchanged {
				unchanged++
			}
		}
		if unchanged == len(s.samples) {
			txt += ", unchanged (no BuildKit)"
		}
		return txt
	}
	if ref != nil && ref.err == nil && len(ref.samples) > 0 {
		txt += fmt.Sprintf(", **%.2f×**", median(w).Seconds()/median(ref.walls()).Seconds())
	}
	return txt
}

func oneLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 120 {
		s = s[:120] + "…"
	}
	return strings.ReplaceAll(s, "|", "/")
}

// tableHeader writes a Markdown table's header row (scenario + cols) and
// its separator row.
func tableHeader(sb *strings.Builder, cols []string) {
	sb.WriteString("| scenario |")
	for _, c := range cols {
		sb.WriteString(" " + c + " |")
	}
	sb.WriteString("\n|---|")
	for range cols {
		sb.WriteString("---|")
	}
	sb.WriteString("\n")
}

func (rep *report) buildTable(sb *strings.Builder, rows []buildRow) {
	tableHeader(sb, rep.buildCols)
	for _, r := range rows {
		fmt.Fprintf(sb, "| %s |", r.sc.name)
		ref := r.cells[colSB]
		for _, c := range rep.buildCols {
			fmt.Fprintf(sb, " %s |", rep.cell(r.cells[c], ref, c == colSB))
		}
		sb.WriteString("\n")
	}
}

func mib(kib int64) string { return fmt.Sprintf("%.0f MiB", float64(kib)/1024) }

// markdown renders BENCHMARKS.md.
func (rep *report) markdown() string {
	var sb strings.Builder
	if rep.onlyRL {
		sb.WriteString("# Benchmarks: rootless rows, separate run\n\nWritten by `go run ./hack/bench -only-rootless -skip-buildah -append` (see hack/bench/rootless.go).\n\n" +
			"## Machine\n\n" + strings.Join(rep.machine, "\n") + "\n" + rep.rootless)
		return sb.String()
	}
	if rep.onlyRuns {
		return rep.runsMarkdown()
	}
	onlyServe := rep.serve != nil && rep.runCells == nil && len(rep.builds)+len(rep.builds30) == 0
	switch {
	case onlyServe:
		sb.WriteString("# Benchmarks: serve rows, separate run (`go run ./hack/bench -only-serve -append`)\n\n")
	case rep.only30:
		sb.WriteString("# Benchmarks: 30-distribution rows, separate run\n\n")
	default:
		sb.WriteString("# Benchmarks\n\n")
	}
	sb.WriteString("Written by `make bench` (`go run ./hack/bench`); rerun it to refresh. Times are wall clock of the whole\n" +
		"command (process start to exit). Each cell is the median of " + fmt.Sprint(rep.runs) + " runs with (min–max); a peer's\n" +
		"**ratio** is its median divided by skillbuild's (above 1×: skillbuild is faster). The tools run interleaved,\n" +
		"run by run, after one warm-up each, so drift on a shared machine hits every column alike.\n\n")
	sb.WriteString("## Machine\n\n")
	for _, l := range rep.machine {
		sb.WriteString(l + "\n")
	}
	fmt.Fprintf(&sb, "- whole benchmark: %s\n\n", rep.total.Round(time.Second))
	if onlyServe {
		return sb.String() + rep.serve.markdown()
	}
	sb.WriteString("## Set-up\n\n")
	for _, l := range rep.setup {
		sb.WriteString("- " + l + "\n")
	}
	sb.WriteString("- skillbuild: `skillbuild install --json --progress quiet --base BASE --index-url URL ID REQ...` with its embedded BuildKit\n" +
		"  against a private containerd; cold runs get a fresh `--root` (fresh BuildKit cache, vulnerability database\n" +
		"  imported untimed); the vulnerability scan is on, as by default. \"steps run\" is the median length of `executed_steps`;\n" +
		"  \"unchanged\" means install answered from containerd's image store without starting BuildKit.\n" +
		"  The install steps that start together (a cold build's) run in one container; \"steps run\" counts one per distribution.\n" +
		"- host floor: `python3 -m venv --without-pip V` (when the skill's venv does not exist yet) and\n" +
		"  `python3 -m pip --python V/bin/python install --no-index --find-links WHEELHOUSE -r requirements.txt` on the host:\n" +
		"  no container, no image, no isolation, no pip bootstrapped into the venv — the least work the install takes.\n" +
		"  \"Add one\" installs into the existing venv.\n" +
		"- seed-style host: the same with `python3 -m venv V` (ensurepip installs pip into every venv) and `V/bin/pip install`.\n" +
		"- buildah bud, seed's Containerfile: `FROM base` / `RUN python3 -m venv /opt/venv` / `COPY requirements.txt` /\n" +
		"  `RUN /opt/venv/bin/pip install --index-url URL -r requirements.txt`; fastest Containerfile: `RUN python3 -m venv\n" +
		"  --without-pip /opt/venv` and `RUN python3 -m pip --python /opt/venv/bin/python install --index-url URL -r\n" +
		"  requirements.txt` (the base's pip). Both `buildah bud --layers --network host` (`--no-cache` for cold rows), runc,\n" +
		"  overlay storage in the work directory.\n" +
		"- \"add one\" and \"second skill\" runs each add a distribution that tool never installed before; their 20- or\n" +
		"  30-distribution predecessor was built untimed first (for \"add one\", before every run: each run adds one\n" +
		"  requirement to the same skill, not swaps the last run's for another).\n\n")

	if rep.registry != nil && len(rep.builds)+len(rep.builds30) == 0 {
		return sb.String() + "\n## Registry\n\n" + rep.registry.markdown()
	}
	if len(rep.builds) > 0 {
		sb.WriteString("## Build\n\n")
		rep.buildTable(&sb, rep.builds)
	}
	if len(rep.builds30) > 0 {
		sb.WriteString("\n## Build, 30 distributions\n\n")
		rep.buildTable(&sb, rep.builds30)
		if slices.Contains(rep.buildCols, colSingle) {
			sb.WriteString("\nThe single-layer column is " + rep.singleHow + ", run against the same containerd\n" +
				"and index with its own --root; its ratio is its median over skillbuild's (per-distribution layers).\n")
		} else {
			sb.WriteString("\n(For a column of the single-layer pipeline, run with `-single-layer`: the same binary's hidden\n" +
				"`install --single-layer` flag, the whole lock in one pip step and one layer.)\n")
		}
	}
	if rep.only30 || rep.buildsOnly {
		if len(rep.resolveScans) > 0 {
			sb.WriteString("\n## Scan with resolution\n")
			rep.resolveScanTable(&sb)
		}
		rep.targets(&sb)
		if rep.profile != "" {
			sb.WriteString("\n## Profiles of the rows that miss their target\n\n" + rep.profile)
		}
		return sb.String()
	}

	sb.WriteString("\n## Run\n\n")
	if rep.runErr != nil {
		fmt.Fprintf(&sb, "failed: %s\n", oneLine(rep.runErr.Error()))
	} else {
		rep.runTable(&sb)
	}
	if rep.serve != nil {
		sb.WriteString(rep.serve.markdown())
	}
	if rep.floors != nil {
		sb.WriteString(rep.floors.markdown())
	}

	sb.WriteString("\n## Scan: 200 pinned packages against the full database\n\n")
	sb.WriteString("`skillbuild scan --no-resolve --json PIN...` (whole process, database in --root):\n\n")
	sb.WriteString("| set | median (min–max) | findings |\n|---|---|---|\n")
	for _, r := range rep.scans {
		if r.err != nil {
			fmt.Fprintf(&sb, "| %s | failed: %s | |\n", r.name, oneLine(r.err.Error()))
			continue
		}
		lo, hi := minMax(r.walls)
		fmt.Fprintf(&sb, "| %s | %s (%s–%s) | %d |\n", r.name, secs(median(r.walls)), secs(lo), secs(hi), r.findings)
	}
	sb.WriteString("\nIn-process (`go test -run '^$' -bench . -benchtime 10x ./scan/`):\n\n```\n" + rep.goBench + "\n```\n")
	if len(rep.resolveScans) > 0 {
		sb.WriteString("\n## Scan with resolution\n")
		rep.resolveScanTable(&sb)
	}

	if rep.registry != nil {
		sb.WriteString("\n## Registry\n\n" + rep.registry.markdown())
	}

	sb.WriteString(rep.rootless)
	rep.targets(&sb)
	if rep.profile != "" {
		sb.WriteString("\n## Profiles of the rows that miss their target\n\n" + rep.profile)
	}
	return sb.String()
}

// targets lists every row that has a goal, with the measured ratio and
// whether it is met.
func (rep *report) targets(sb *strings.Builder) {
	sb.WriteString("\n## Targets\n\n| row | goal | measured | |\n|---|---|---|---|\n")
	verdict := func(met bool) string {
		if met {
			return "met"
		}
		return "**missed**"
	}
	for _, rows := range [][]buildRow{rep.builds, rep.builds30} {
		for _, r := range rows {
			if r.sc.target == nil {
				continue
			}
			goal := fmt.Sprintf("≤ %.1f× %s", r.sc.target.factor, r.sc.target.peer)
			ratio, met, ok := r.sc.target.check(r)
			if !ok {
				fmt.Fprintf(sb, "| %s | %s | not measured | |\n", r.sc.name, goal)
				continue
			}
			fmt.Fprintf(sb, "| %s | %s | %.2f× | %s |\n", r.sc.name, goal, ratio, verdict(met))
		}
	}
	if ratio, ok := rep.resolveScanRatio(); ok {
		fmt.Fprintf(sb, "| scan -r requirements.txt, %d requirements (resolve + scan) | ≤ 0.3× -compare-bin | %.2f× | %s |\n", resolveScanCount, ratio, verdict(ratio <= 0.3))
	}
	if rep.only30 {
		return
	}
	ref, ctr := rep.runCells[colSBRun], rep.runCells[colCtr]
	if rep.runErr == nil && ref != nil && ctr != nil && len(ref.latency) > 0 && len(ctr.latency) > 0 {
		ratio := pct(ref.latency, 50).Seconds() / pct(ctr.latency, 50).Seconds()
		fmt.Fprintf(sb, "| `print(1)` latency p50 | ≤ 0.7× %s | %.2f× | %s |\n", colCtr, ratio, verdict(ratio <= 0.7))
	}
	if rep.runErr == nil && ref != nil && ctr != nil && len(ref.throughput) > 0 && len(ctr.throughput) > 0 {
		m, _, _ := floatStats(ref.throughput)
		c, _, _ := floatStats(ctr.throughput)
		fmt.Fprintf(sb, "| %d concurrent runs, runs per second | ≥ 1× %s | %.2f× | %s |\n", rep.concurrency, colCtr, m/c, verdict(m >= c))
	}
	rep.floors.targetRows(sb, rep.concurrency)
	for _, r := range rep.scans {
		if r.err == nil && len(r.walls) > 0 {
			m := median(r.walls)
			fmt.Fprintf(sb, "| scan, %s | ≤ 50 ms | %s | %s |\n", r.name, secs(m), verdict(m <= 50*time.Millisecond))
		}
	}
	if all := rep.buildRSSSamples(); len(all) > 0 {
		peak := slices.Max(all)
		fmt.Fprintf(sb, "| peak RSS of a build | ≤ 150 MiB | %s | %s |\n", mib(peak), verdict(peak <= 150*1024))
	}
}

func (rep *report) runTable(sb *strings.Builder) {
	tableHeader(sb, rep.runOrder)
	ref := rep.runCells[colSBRun]
	fmt.Fprintf(sb, "| `print(1)` latency p50 / p95 (%d runs, create → result → cleanup) |", rep.latencyRuns)
	for _, c := range rep.runOrder {
		cell := rep.runCells[c]
		if cell.err != nil && len(cell.latency) < rep.latencyRuns {
			fmt.Fprintf(sb, " failed: %s |", oneLine(cell.err.Error()))
			continue
		}
		txt := fmt.Sprintf("%s / %s", secs(pct(cell.latency, 50)), secs(pct(cell.latency, 95)))
		if c != colSBRun && ref.err == nil && len(ref.latency) > 0 {
			txt += fmt.Sprintf(", **%.2f×**", pct(cell.latency, 50).Seconds()/pct(ref.latency, 50).Seconds())
		}
		fmt.Fprintf(sb, " %s |", txt)
	}
	fmt.Fprintf(sb, "\n| %d concurrent runs: runs per second (%d started together, first start to last exit; median (min–max) of %d batches) |", rep.concurrency, rep.concurrency, rep.runs)
	for _, c := range rep.runOrder {
		cell := rep.runCells[c]
		if len(cell.throughput) == 0 {
			msg := "not measured"
			if cell.err != nil {
				msg = "failed: " + oneLine(cell.err.Error())
			}
			fmt.Fprintf(sb, " %s |", msg)
			continue
		}
		m, lo, hi := floatStats(cell.throughput)
		txt := fmt.Sprintf("%.2f (%.2f–%.2f)", m, lo, hi)
		if c != colSBRun && len(ref.throughput) > 0 {
			rm, _, _ := floatStats(ref.throughput)
			txt += fmt.Sprintf(", **%.2f×**", m/rm)
		}
		fmt.Fprintf(sb, " %s |", txt)
	}
	sb.WriteString("\n| peak RSS of the skillbuild process itself (hack/peakrss; builds: every sample, whose time includes peakrss's ~2 ms start; run: 3 untimed runs): median / max |")
	for i, c := range rep.runOrder {
		if i > 0 {
			sb.WriteString(" — |")
			continue
		}
		_ = c
		fmt.Fprintf(sb, " build (all %d-run build rows): %s; run: %s |", rep.runs, rep.buildRSS(), rssStats(ref.rss))
	}
	sb.WriteString("\n\nRun ratios: the peer's p50 over skillbuild's (above 1×: skillbuild is faster); for throughput the peer's\n" +
		"rate over skillbuild's (below 1×: skillbuild does more runs per second). All three run the same skill image\n" +
		"(`ctr images export` → `podman load`) as its non-root USER; podman with `--runtime runc --ulimit\n" +
		"nofile=1024:1024 --ulimit nproc=1024:1024 --cgroup-manager cgroupfs`. skillbuild run also applies its hardened\n" +
		"spec (memory/CPU/pids limits, seccomp, no capabilities, tmpfs /tmp, loopback-only netns) and its runner protocol.\n")
	rep.runNotes(sb)
}

func (rep *report) buildRSS() string { return rssStats(rep.buildRSSSamples()) }

// buildRSSSamples is the peak RSS (KiB) of every skillbuild build run.
func (rep *report) buildRSSSamples() []int64 {
	var all []int64
	for _, rows := range [][]buildRow{rep.builds, rep.builds30} {
		for _, r := range rows {
			if c := r.cells[colSB]; c != nil {
				for _, s := range c.samples {
					all = append(all, s.rss)
				}
			}
		}
	}
	return all
}

func rssStats(k []int64) string {
	if len(k) == 0 {
		return "n/a"
	}
	s := append([]int64{}, k...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return fmt.Sprintf("%s / %s", mib(s[len(s)/2]), mib(s[len(s)-1]))
}

func floatStats(f []float64) (med, lo, hi float64) {
	s := append([]float64{}, f...)
	sort.Float64s(s)
	med = s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return med, s[0], s[len(s)-1]
}

// resolveScanTable writes the scan-with-resolution rows.
func (rep *report) resolveScanTable(sb *strings.Builder) {
	if len(rep.resolveScans) == 0 {
		return
	}
	fmt.Fprintf(sb, "\n`skillbuild scan --json -r requirements.txt` of %d requirements by name (29 core distributions and one more,\n"+
		"another each run, so no build cache has the answer): resolve against the index for the base image, then scan the\n"+
		"lock; whole process, database in --root.\n\n", resolveScanCount)
	sb.WriteString("| binary | median (min–max) | packages | ratio |\n|---|---|---|---|\n")
	ref := rep.resolveScans[0]
	for i, r := range rep.resolveScans {
		if r.err != nil {
			fmt.Fprintf(sb, "| %s | failed: %s | | |\n", r.bin, oneLine(r.err.Error()))
			continue
		}
		lo, hi := minMax(r.walls)
		ratio := ""
		if i > 0 && ref.err == nil && len(ref.walls) > 0 {
			ratio = fmt.Sprintf("**%.2f×**", median(r.walls).Seconds()/median(ref.walls).Seconds())
		}
		fmt.Fprintf(sb, "| %s | %s (%s–%s) | %d | %s |\n", r.bin, secs(median(r.walls)), secs(lo), secs(hi), r.packages, ratio)
	}
}

// resolveScanRatio is -bin's scan -r median over -compare-bin's.
func (rep *report) resolveScanRatio() (float64, bool) {
	if len(rep.resolveScans) < 2 {
		return 0, false
	}
	a, c := rep.resolveScans[0], rep.resolveScans[1]
	if a.err != nil || c.err != nil || len(a.walls) == 0 || len(c.walls) == 0 {
		return 0, false
	}
	return median(a.walls).Seconds() / median(c.walls).Seconds(), true
}
