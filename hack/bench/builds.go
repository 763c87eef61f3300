package main

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/skillbuild/skillbuild/skill/api"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Column keys of the build table.
const (
	colSB       = "skillbuild"
	colSingle   = "skillbuild, single-layer pipeline"
	colHost     = "host floor: venv --without-pip + pip --python"
	colHostSeed = "seed-style host: venv with ensurepip + its pip"
	colBuildah  = "buildah bud, seed's Containerfile"
	colBuildahF = "buildah bud, fastest Containerfile"
	colCompare  = "skillbuild, -compare-bin"
)

// rowKeys name the build rows for -rows.
var rowKeys = []string{"cold10", "cached10", "add20", "second10", "cold30", "second30", "add30", "scan30"}

// checkRows refuses a -rows list naming a row that does not exist.
func checkRows(list string) error {
	if list == "" {
		return nil
	}
	for _, k := range strings.Split(list, ",") {
		if !slices.Contains(rowKeys, strings.TrimSpace(k)) {
			return fmt.Errorf("-rows: unknown row %q (rows: %s)", k, strings.Join(rowKeys, ","))
		}
	}
	return nil
}

// wantRow says whether -rows selects the row key (every row without -rows).
func (b *bench) wantRow(key string) bool {
	if b.o.rows == "" {
		return true
	}
	for _, k := range strings.Split(b.o.rows, ",") {
		if strings.TrimSpace(k) == key {
			return true
		}
	}
	return false
}

// sample is one timed build.
type sample struct {
	wall   time.Duration
	steps  int  // skillbuild: executed BuildKit steps
	cached bool // skillbuild: nothing executed
	// unchanged: skillbuild answered from the image store, no BuildKit.
	unchanged bool
	rss       int64 // KiB
	cpu       time.Duration
	start     time.Time
	stderr    []byte
}

// builder is one column of the build table: how a tool builds a skill's
// environment from scratch or on top of what a state already holds.
type builder interface {
	key() string
	// newState returns an empty state (untimed): a skillbuild --root, a
	// directory of host venvs, a buildah context directory.
	newState(ctx context.Context) (string, error)
	// build makes skill id with reqs in state; cold means no build cache.
	build(ctx context.Context, state, id string, reqs []string, cold bool) (sample, error)
}

// sbBuilder drives `skillbuild install`.
type sbBuilder struct {
	b        *bench
	bin      string   // another skillbuild binary (the single-layer column); empty: -bin
	col      string   // column key; empty: colSB
	flags    []string // extra install flags (--single-layer)
	progress string   // --progress mode
	wrap     []string // argv prefix (perf record)
}

func (s *sbBuilder) key() string {
	if s.col != "" {
		return s.col
	}
	return colSB
}

func (s *sbBuilder) newState(ctx context.Context) (string, error) { return s.b.newRoot(ctx, s.bin) }

func (s *sbBuilder) build(ctx context.Context, root, id string, reqs []string, _ bool) (sample, error) {
	progress := s.progress
	if progress == "" {
		progress = "quiet"
	}
	argv := s.b.sbArgsBin(s.bin, root, append([]string{"install", "--json", "--progress", progress,
		"--base", baseRef, "--index-url", s.b.index.srv.URL()}, append(append(append([]string{}, s.flags...), id), reqs...)...)...)
	r, err := s.b.execPeak(ctx, nil, append(append([]string{}, s.wrap...), argv...))
	if err != nil {
		return sample{}, err
	}
	var doc api.InstallResult
	if err := json.Unmarshal(r.stdout, &doc); err != nil {
		return sample{}, fmt.Errorf("install %s: --json output: %w", id, err)
	}
	if !doc.Success {
		return sample{}, fmt.Errorf("install %s: %s", id, doc.Error)
	}
	if len(doc.Packages) < len(reqs) {
		return sample{}, fmt.Errorf("install %s: %d packages in the image, want at least %d", id, len(doc.Packages), len(reqs))
	}
	return sample{wall: r.wall, steps: len(doc.Steps), cached: doc.Cached, unchanged: doc.Unchanged, rss: r.maxRSS, cpu: r.cpu, start: r.start, stderr: r.stderr}, nil
}

// hostBuilder installs on the host, from the local wheelhouse, no index,
// no container, no image. The floor creates the venv without pip and runs
// the host's pip into it with --python: the least work the install itself
// takes. The seed style creates the venv with ensurepip (seconds of
// bootstrapping pip into every venv) and runs the venv's pip.
type hostBuilder struct {
	b    *bench
	seed bool
}

func (h *hostBuilder) key() string {
	if h.seed {
		return colHostSeed
	}
	return colHost
}

func (h *hostBuilder) newState(context.Context) (string, error) {
	return os.MkdirTemp(h.b.dir, "host-")
}

// build creates the venv of skill id when it does not exist yet (that is
// part of the timed work, as it is for the other tools) and pip-installs
// reqs into it.
func (h *hostBuilder) build(ctx context.Context, state, id string, reqs []string, _ bool) (sample, error) {
	venv := filepath.Join(state, id)
	req := filepath.Join(state, id+".txt")
	if err := os.WriteFile(req, []byte(strings.Join(reqs, "\n")+"\n"), 0o644); err != nil {
		return sample{}, err
	}
	mkvenv := []string{"python3", "-m", "venv", "--without-pip", venv}
	pip := []string{"python3", "-m", "pip", "--python", filepath.Join(venv, "bin/python")}
	if h.seed {
		mkvenv = []string{"python3", "-m", "venv", venv}
		pip = []string{filepath.Join(venv, "bin/pip")}
	}
	t0 := time.Now()
	var rss int64
	var cpu time.Duration
	if _, err := os.Stat(venv); err != nil {
		r, err := h.b.exec(ctx, nil, mkvenv)
		if err != nil {
			return sample{}, err
		}
		rss, cpu = r.maxRSS, r.cpu
	}
	r, err := h.b.exec(ctx, nil, append(pip, "install", "--disable-pip-version-check",
		"--no-index", "--find-links", h.b.index.dir, "-r", req))
	if err != nil {
		return sample{}, err
	}
	return sample{wall: time.Since(t0), rss: max(rss, r.maxRSS), cpu: cpu + r.cpu}, nil
}

// buildahBuilder builds the skill's environment as a Containerfile with
// buildah: the seed's (a venv with ensurepip, then its pip), or the fastest
// one (a venv without pip, then the base's pip with --python).
type buildahBuilder struct {
	b    *bench
	fast bool
}

func (bb *buildahBuilder) key() string {
	if bb.fast {
		return colBuildahF
	}
	return colBuildah
}

func (bb *buildahBuilder) newState(context.Context) (string, error) {
	return os.MkdirTemp(bb.b.dir, "buildah-")
}

// tagPrefix keeps the two Containerfiles' images apart.
func (bb *buildahBuilder) tagPrefix() string {
	if bb.fast {
		return "fast-"
	}
	return "seed-"
}

// dockerfile is the seed's approach: a venv on the base and one pip install
// of the requirements file. The index is on the host's 127.0.0.1, hence
// --network host for the build.
func dockerfile(indexURL string) string {
	return "FROM " + baseRef + "\n" +
		"RUN python3 -m venv /opt/venv\n" +
		"COPY requirements.txt /requirements.txt\n" +
		"RUN /opt/venv/bin/pip install --disable-pip-version-check --index-url " + indexURL + " -r /requirements.txt\n"
}

// fastDockerfile skips bootstrapping pip into the venv: the base's own pip
// installs into it with --python.
func fastDockerfile(indexURL string) string {
	return "FROM " + baseRef + "\n" +
		"RUN python3 -m venv --without-pip /opt/venv\n" +
		"COPY requirements.txt /requirements.txt\n" +
		"RUN python3 -m pip --python /opt/venv/bin/python install --disable-pip-version-check --index-url " + indexURL + " -r /requirements.txt\n"
}

func (bb *buildahBuilder) build(ctx context.Context, state, id string, reqs []string, cold bool) (sample, error) {
	dir := filepath.Join(state, id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return sample{}, err
	}
	if err := os.WriteFile(filepath.Join(dir, "requirements.txt"), []byte(strings.Join(reqs, "\n")+"\n"), 0o644); err != nil {
		return sample{}, err
	}
	df := dockerfile(bb.b.index.srv.URL())
	if bb.fast {
		df = fastDockerfile(bb.b.index.srv.URL())
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644); err != nil {
		return sample{}, err
	}
	args := []string{"bud", "--layers", "--pull=never", "--network", "host", "--isolation", "oci", "--runtime", "runc",
		"-t", "localhost/sb-bench/" + bb.tagPrefix() + id, "-f", filepath.Join(dir, "Dockerfile")}
	if cold {
		args = append(args, "--no-cache")
	}
	r, err := bb.b.exec(ctx, nil, bb.b.buildahArgs(append(args, dir)...))
	if err != nil {
		return sample{}, err
	}
	return sample{wall: r.wall, rss: r.maxRSS, cpu: r.cpu}, nil
}

// scenario is one row of a build table.
type scenario struct {
	name string
	key  string // for -rows
	// target is the row's goal for skillbuild, if it has one.
	target *target
	// cold gives every run a new empty state; otherwise the runs share one
	// state that prep filled (untimed).
	cold bool
	prep func(ctx context.Context, t builder, state string) error
	// run is the timed build of run i; extra hands out a distribution the
	// tool never installed before.
	run func(ctx context.Context, t builder, state string, i int, extra func() (string, error)) (sample, error)
	// noHost: the host columns do not apply.
	noHost bool
	// noBuildah: leave the buildah columns out (the 30-distribution rows
	// compare with the host only, and the whole bench must fit in 20
	// minutes).
	noBuildah bool
	// noSingle: leave the single-layer skillbuild column out.
	noSingle bool
}

// target is a row's goal for skillbuild: its median at most factor times
// the median of the peer column.
type target struct {
	peer   string
	factor float64
}

// check returns skillbuild's median over the peer's and whether that meets
// the target; ok is false when either cell has no samples.
func (t target) check(row buildRow) (ratio float64, met, ok bool) {
	sb, peer := row.cells[colSB], row.cells[t.peer]
	if sb == nil || peer == nil || len(sb.samples) == 0 || len(peer.samples) == 0 {
		return 0, false, false
	}
	ratio = median(sb.walls()).Seconds() / median(peer.walls()).Seconds()
	return ratio, ratio <= t.factor, true
}

// series is one cell: the samples of one tool in one scenario.
type series struct {
	samples []sample
	err     error
}

func (s *series) walls() []time.Duration {
	out := make([]time.Duration, len(s.samples))
	for i, x := range s.samples {
		out[i] = x.wall
	}
	return out
}

// buildRow is a measured scenario.
type buildRow struct {
	sc    scenario
	cells map[string]*series
}

func coldScenario(n int) scenario {
	var tg *target
	if n <= 10 {
		tg = &target{peer: colHost, factor: 1.0}
	}
	return scenario{
		target: tg,
		key:    fmt.Sprintf("cold%d", n),
		name:   fmt.Sprintf("cold build, %d-distribution skill, base prepared", n),
		cold:   true,
		run: func(ctx context.Context, t builder, state string, i int, _ func() (string, error)) (sample, error) {
			return t.build(ctx, state, fmt.Sprintf("cold%d-r%d", n, i), pins(core(n)), true)
		},
	}
}

func cachedScenario(n int) scenario {
	id := fmt.Sprintf("cached%d", n)
	return scenario{
		name:   fmt.Sprintf("unchanged skill installed again (%d distributions), whole process", n),
		key:    fmt.Sprintf("cached%d", n),
		target: &target{peer: colBuildah, factor: 0.3},
		noHost: true,
		prep: func(ctx context.Context, t builder, state string) error {
			_, err := t.build(ctx, state, id, pins(core(n)), false)
			return err
		},
		run: func(ctx context.Context, t builder, state string, _ int, _ func() (string, error)) (sample, error) {
			return t.build(ctx, state, id, pins(core(n)), false)
		},
	}
}

func addOneScenario(n int) scenario {
	id := fmt.Sprintf("add%d", n)
	return scenario{
		name:   fmt.Sprintf("add one requirement to a %d-distribution skill", n),
		key:    fmt.Sprintf("add%d", n),
		target: &target{peer: colHost, factor: 1.0},
		prep: func(ctx context.Context, t builder, state string) error {
			_, err := t.build(ctx, state, id, pins(core(n)), false)
			return err
		},
		// Each timed run adds its own new distribution to the n-distribution
		// skill, rebuilt (untimed, a cache hit) first: the run before added
		// another one, and going from that skill to this one would replace
		// a requirement, not add one.
		run: func(ctx context.Context, t builder, state string, _ int, extra func() (string, error)) (sample, error) {
			if _, err := t.build(ctx, state, id, pins(core(n)), false); err != nil {
				return sample{}, fmt.Errorf("rebuild the %d-distribution skill: %w", n, err)
			}
			e, err := extra()
			if err != nil {
				return sample{}, err
			}
			return t.build(ctx, state, id, pins(append(core(n), e)), false)
		},
	}
}

func secondScenario(n int) scenario {
	return scenario{
		name: fmt.Sprintf("second skill sharing %d of its %d distributions with a built one", n-1, n),
		key:  fmt.Sprintf("second%d", n),
		prep: func(ctx context.Context, t builder, state string) error {
			_, err := t.build(ctx, state, fmt.Sprintf("first%d", n), pins(core(n)), false)
			return err
		},
		run: func(ctx context.Context, t builder, state string, i int, extra func() (string, error)) (sample, error) {
			e, err := extra()
			if err != nil {
				return sample{}, err
			}
			return t.build(ctx, state, fmt.Sprintf("second%d-r%d", n, i), pins(append(core(n-1), e)), false)
		},
	}
}

// extras hands each tool its own sequence of never-installed distributions.
type extras struct {
	next map[string]int
}

func (e *extras) forTool(key string) func() (string, error) {
	return func() (string, error) {
		i := e.next[key]
		if i >= extraCount {
			return "", fmt.Errorf("out of extra distributions (%d): lower -runs", extraCount)
		}
		e.next[key]++
		return extraName(i), nil
	}
}

// measureBuild runs a scenario for every tool, interleaving the tools run by
// run so that drift on a shared machine hits every column alike. Warm
// states (non-cold scenarios) come from states, one per tool, shared by
// the warm scenarios of a table.
func (b *bench) measureBuild(ctx context.Context, sc scenario, tools []builder, states map[string]string, ex *extras) buildRow {
	row := buildRow{sc: sc, cells: map[string]*series{}}
	active := []builder{}
	for _, t := range tools {
		host := t.key() == colHost || t.key() == colHostSeed
		buildah := t.key() == colBuildah || t.key() == colBuildahF
		if (sc.noHost && host) || (sc.noBuildah && buildah) || (sc.noSingle && t.key() == colSingle) {
			continue
		}
		row.cells[t.key()] = &series{}
		if !sc.cold && sc.prep != nil {
			if err := sc.prep(ctx, t, states[t.key()]); err != nil {
				row.cells[t.key()].err = fmt.Errorf("prepare: %w", err)
				b.say("  %s: prepare failed: %v", t.key(), err)
				continue
			}
		}
		active = append(active, t)
	}
	for i := range b.o.runs {
		for _, t := range active {
			cell := row.cells[t.key()]
			if cell.err != nil {
				continue
			}
			state := states[t.key()]
			if sc.cold {
				s, err := t.newState(ctx)
				if err != nil {
					cell.err = err
					continue
				}
				state = s
			}
			smp, err := sc.run(ctx, t, state, i, ex.forTool(t.key()))
			if err != nil {
				cell.err = err
				b.say("  %s run %d failed: %v", t.key(), i+1, err)
				continue
			}
			smp.stderr = nil
			cell.samples = append(cell.samples, smp)
			extra := fmt.Sprintf(" (cpu %s)", smp.cpu.Round(time.Millisecond))
			if t.key() == colSB || t.key() == colSingle || t.key() == colCompare {
				extra = fmt.Sprintf(" (%d steps executed, cached=%v, unchanged=%v, maxrss %d MiB, cpu %s)", smp.steps, smp.cached, smp.unchanged, smp.rss/1024, smp.cpu.Round(time.Millisecond))
			}
			b.say("  %-28s run %d: %s%s", t.key(), i+1, smp.wall.Round(time.Millisecond), extra)
		}
	}
	return row
}
