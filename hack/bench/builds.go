package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Column keys of the build table.
const (
	colSB      = "skillbuild"
	colSingle  = "skillbuild, single-layer pipeline"
	colHost    = "host venv + pip --no-index"
	colBuildah = "buildah bud"
)

// sample is one timed build.
type sample struct {
	wall   time.Duration
	steps  int   // skillbuild: executed BuildKit steps
	cached bool  // skillbuild: nothing executed
	rss    int64 // KiB
	cpu    time.Duration
	start  time.Time
	stderr []byte
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

// installJSON is the part of `skillbuild install --json` the bench reads.
type installJSON struct {
	Success  bool     `json:"success"`
	Cached   bool     `json:"cached"`
	Steps    []string `json:"executed_steps"`
	Packages []struct {
		Name string `json:"name"`
	} `json:"packages"`
	ImageTag string `json:"image_tag"`
	Error    string `json:"error"`
}

func (s *sbBuilder) build(ctx context.Context, root, id string, reqs []string, _ bool) (sample, error) {
	progress := s.progress
	if progress == "" {
		progress = "quiet"
	}
	argv := s.b.sbArgsBin(s.bin, root, append([]string{"install", "--json", "--progress", progress,
		"--base", baseRef, "--index-url", s.b.index.srv.URL()}, append(append(append([]string{}, s.flags...), id), reqs...)...)...)
	r, err := s.b.exec(ctx, nil, append(append([]string{}, s.wrap...), argv...))
	if err != nil {
		return sample{}, err
	}
	var doc installJSON
	if err := json.Unmarshal(r.stdout, &doc); err != nil {
		return sample{}, fmt.Errorf("install %s: --json output: %w", id, err)
	}
	if !doc.Success {
		return sample{}, fmt.Errorf("install %s: %s", id, doc.Error)
	}
	if len(doc.Packages) < len(reqs) {
		return sample{}, fmt.Errorf("install %s: %d packages in the image, want at least %d", id, len(doc.Packages), len(reqs))
	}
	return sample{wall: r.wall, steps: len(doc.Steps), cached: doc.Cached, rss: r.maxRSS, cpu: r.cpu, start: r.start, stderr: r.stderr}, nil
}

// hostBuilder is the lower bound: a venv on the host and pip installing
// from the local wheelhouse, no index, no container.
type hostBuilder struct{ b *bench }

func (h *hostBuilder) key() string { return colHost }

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
	t0 := time.Now()
	var rss int64
	var cpu time.Duration
	if _, err := os.Stat(venv); err != nil {
		r, err := h.b.exec(ctx, nil, []string{"python3", "-m", "venv", venv})
		if err != nil {
			return sample{}, err
		}
		rss, cpu = r.maxRSS, r.cpu
	}
	r, err := h.b.exec(ctx, nil, []string{filepath.Join(venv, "bin/pip"), "install", "--disable-pip-version-check",
		"--no-index", "--find-links", h.b.index.dir, "-r", req})
	if err != nil {
		return sample{}, err
	}
	return sample{wall: time.Since(t0), rss: max(rss, r.maxRSS), cpu: cpu + r.cpu}, nil
}

// buildahBuilder is the seed's Dockerfile approach, built with buildah.
type buildahBuilder struct{ b *bench }

func (bb *buildahBuilder) key() string { return colBuildah }

func (bb *buildahBuilder) newState(context.Context) (string, error) {
	return os.MkdirTemp(bb.b.dir, "buildah-")
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

func (bb *buildahBuilder) build(ctx context.Context, state, id string, reqs []string, cold bool) (sample, error) {
	dir := filepath.Join(state, id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return sample{}, err
	}
	if err := os.WriteFile(filepath.Join(dir, "requirements.txt"), []byte(strings.Join(reqs, "\n")+"\n"), 0o644); err != nil {
		return sample{}, err
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile(bb.b.index.srv.URL())), 0o644); err != nil {
		return sample{}, err
	}
	args := []string{"bud", "--layers", "--pull=never", "--network", "host", "--isolation", "oci", "--runtime", "runc",
		"-t", "localhost/sb-bench/" + id, "-f", filepath.Join(dir, "Dockerfile")}
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
	name  string
	issue string
	// cold gives every run a new empty state; otherwise the runs share one
	// state that prep filled (untimed).
	cold bool
	prep func(ctx context.Context, t builder, state string) error
	// run is the timed build of run i; extra hands out a distribution the
	// tool never installed before.
	run func(ctx context.Context, t builder, state string, i int, extra func() (string, error)) (sample, error)
	// noHost: the host column does not apply.
	noHost bool
	// noBuildah: leave the buildah column out (issue 5's rows compare with
	// the host only, and the whole bench must fit in 20 minutes).
	noBuildah bool
	// noSingle: leave the single-layer skillbuild column out.
	noSingle bool
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

func coldScenario(n int, issue string) scenario {
	return scenario{
		name:  fmt.Sprintf("cold build, %d-distribution skill, base prepared", n),
		issue: issue,
		cold:  true,
		run: func(ctx context.Context, t builder, state string, i int, _ func() (string, error)) (sample, error) {
			return t.build(ctx, state, fmt.Sprintf("cold%d-r%d", n, i), pins(core(n)), true)
		},
	}
}

func cachedScenario(n int, issue string) scenario {
	id := fmt.Sprintf("cached%d", n)
	return scenario{
		name:   fmt.Sprintf("fully cached rebuild of the %d-distribution skill, whole process", n),
		issue:  issue,
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

func addOneScenario(n int, issue string) scenario {
	id := fmt.Sprintf("add%d", n)
	return scenario{
		name:  fmt.Sprintf("add one requirement to a %d-distribution skill", n),
		issue: issue,
		prep: func(ctx context.Context, t builder, state string) error {
			_, err := t.build(ctx, state, id, pins(core(n)), false)
			return err
		},
		run: func(ctx context.Context, t builder, state string, _ int, extra func() (string, error)) (sample, error) {
			e, err := extra()
			if err != nil {
				return sample{}, err
			}
			return t.build(ctx, state, id, pins(append(core(n), e)), false)
		},
	}
}

func secondScenario(n int, issue string) scenario {
	return scenario{
		name:  fmt.Sprintf("second skill sharing %d of its %d distributions with a built one", n-1, n),
		issue: issue,
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
		if (sc.noHost && t.key() == colHost) || (sc.noBuildah && t.key() == colBuildah) || (sc.noSingle && t.key() == colSingle) {
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
			extra := ""
			if t.key() == colSB || t.key() == colSingle {
				extra = fmt.Sprintf(" (%d steps executed, cached=%v, maxrss %d MiB)", smp.steps, smp.cached, smp.rss/1024)
			}
			b.say("  %-28s run %d: %s%s", t.key(), i+1, smp.wall.Round(time.Millisecond), extra)
		}
	}
	return row
}
