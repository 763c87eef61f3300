package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The CPU of a whole build, by where it is spent: on a 2-core machine
// shared by others, wall time is noisy and CPU is what a build takes from
// everyone. -only-build-cpu measures the cold 10-distribution row and
// add-one-to-20 for -bin, -compare-bin and -build-cpu-bins, interleaved
// run by run, and prints a table (BENCHMARKS.md is not written).

var (
	onlyBuildCPU = flag.Bool("only-build-cpu", false, "measure only the CPU of cold10 and add20 builds (skillbuild process, private containerd and its shims, build steps) of -bin, -compare-bin and -build-cpu-bins, interleaved; prints a table, writes nothing")
	buildCPUBins = flag.String("build-cpu-bins", "", "with -only-build-cpu: more skillbuild binaries to measure, comma-separated")
)

// buildCPUSample is one build's wall time and CPU: the skillbuild process
// and what it forks (a cpuacct cgroup of its own), the private containerd
// with its shims (its cgroup), and the build steps (the build cgroup).
type buildCPUSample struct {
	wall, cli, daemon, steps time.Duration
}

func (s buildCPUSample) total() time.Duration { return s.cli + s.daemon + s.steps }

// buildCPUOnly runs -only-build-cpu and writes its table to w.
func (b *bench) buildCPUOnly(ctx context.Context, w io.Writer) error {
	meter, undo, err := b.newCPUMeter()
	if err != nil {
		return err
	}
	defer undo()
	cliCg := filepath.Join(cpuacctRoot, fmt.Sprintf("sb-bench-cli-%d", os.Getpid()))
	if err := os.Mkdir(cliCg, 0o755); err != nil {
		return fmt.Errorf("cpuacct cgroup of the skillbuild process: %w", err)
	}
	defer os.Remove(cliCg)
	into := []string{"sh", "-c", `echo $$ > "$0/cgroup.procs" && exec "$@"`, cliCg}

	names := []string{b.o.bin}
	bins := []string{""}
	if b.o.compareBin != "" {
		names, bins = append(names, b.o.compareBin), append(bins, b.o.compareBin)
	}
	for _, p := range strings.Split(*buildCPUBins, ",") {
		if p = strings.TrimSpace(p); p != "" {
			abs, err := filepath.Abs(p)
			if err != nil {
				return err
			}
			names, bins = append(names, abs), append(bins, abs)
		}
	}
	tools := make([]*sbBuilder, len(bins))
	for i, bin := range bins {
		// Each binary tags under its own repository: another binary's image
		// of the same skill would answer the build unchanged.
		tools[i] = &sbBuilder{b: b, bin: bin, col: fmt.Sprintf("bin%d", i), wrap: into, flags: []string{"--repo", fmt.Sprintf("sb-bench-cpu%d", i)}}
	}
	ex := &extras{next: map[string]int{}}
	fmt.Fprintf(w, "\n## CPU of whole builds (median of %d, interleaved; load average at start %s)\n\n", b.o.runs, loadAvg())
	fmt.Fprintln(w, "| row | binary | wall | skillbuild process | containerd + shims | build steps | total CPU |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|")
	for _, sc := range []scenario{coldScenario(10), addOneScenario(20)} {
		b.say("build CPU: %s", sc.name)
		states := map[string]string{}
		if !sc.cold {
			for _, t := range tools {
				s, err := t.newState(ctx)
				if err != nil {
					return err
				}
				if err := sc.prep(ctx, t, s); err != nil {
					return fmt.Errorf("%s: prepare: %w", t.col, err)
				}
				states[t.col] = s
			}
		}
		got := make([][]buildCPUSample, len(tools))
		for i := range b.o.runs {
			for j, t := range tools {
				state := states[t.col]
				if sc.cold {
					s, err := t.newState(ctx)
					if err != nil {
						return err
					}
					state = s
				}
				d0, c0 := cgUsage(meter.daemonCg), cgUsage(cliCg)
				steps := watchStepsCPU(state)
				smp, err := sc.run(ctx, t, state, i, ex.forTool(t.col))
				st, _ := steps()
				if err != nil {
					return fmt.Errorf("%s run %d: %w", t.col, i+1, err)
				}
				s := buildCPUSample{wall: smp.wall, cli: cgUsage(cliCg) - c0, daemon: cgUsage(meter.daemonCg) - d0, steps: st}
				got[j] = append(got[j], s)
				b.say("  %s run %d: wall %s, cpu: skillbuild %s, containerd %s, steps %s, total %s", t.col, i+1,
					s.wall.Round(time.Millisecond), s.cli.Round(time.Millisecond), s.daemon.Round(time.Millisecond), s.steps.Round(time.Millisecond), s.total().Round(time.Millisecond))
			}
		}
		for j := range tools {
			col := func(f func(buildCPUSample) time.Duration) string {
				v := make([]time.Duration, len(got[j]))
				for k, s := range got[j] {
					v[k] = f(s)
				}
				return secs(median(v))
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s |\n", sc.name, names[j],
				col(func(s buildCPUSample) time.Duration { return s.wall }),
				col(func(s buildCPUSample) time.Duration { return s.cli }),
				col(func(s buildCPUSample) time.Duration { return s.daemon }),
				col(func(s buildCPUSample) time.Duration { return s.steps }),
				col(buildCPUSample.total))
		}
	}
	fmt.Fprintf(w, "\nload average at end: %s\n", loadAvg())
	return nil
}
