package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skillbuild/skillbuild/internal/pyindex"
)

// BenchmarkBuilders measures the same builds on the three builders side by
// side: a new 10-distribution skill (no distribution of it built before,
// the base prepared), its fully cached rebuild, adding one requirement,
// and the sustained rate of new 10-distribution skills from 1 and 3
// concurrent clients. It prints a Markdown table (docs/scale.md) and
// never asserts on time.
//
//	go test ./integration -run '^$' -bench BenchmarkBuilders -benchtime 1x -timeout 60m
func BenchmarkBuilders(b *testing.B) {
	const runs, perSkill, concurrent, burst = 3, 10, 3, 6
	dir := b.TempDir()
	// Distinct wheels of about the benchmark's size (6 modules of Python).
	var wheels []pyindex.Wheel
	name := func(builder string, i int) string { return fmt.Sprintf("bb-%s-%03d", builder, i) }
	builders := []string{"embedded", "embedded-oci", "buildkitd"}
	perBuilder := runs*perSkill + runs + burst*perSkill*2 + 2*perSkill
	for _, bl := range builders {
		for i := 0; i < perBuilder; i++ {
			n := name(bl, i)
			pkg := strings.ReplaceAll(n, "-", "_")
			w := pyindex.Wheel{Name: n, Version: "1.0", Files: map[string]string{}}
			for m := 0; m < 6; m++ {
				w.Files[fmt.Sprintf("%s/m%d.py", pkg, m)] = strings.Repeat(fmt.Sprintf("def f_%d_%d(x):\n    return x + %d\n\n", i, m, i*m), 1500)
			}
			wheels = append(wheels, w)
		}
	}
	if _, err := pyindex.CopyDebianWheels(dir); err != nil {
		b.Fatal(err)
	}
	for _, w := range wheels {
		if _, err := pyindex.BuildWheel(dir, w); err != nil {
			b.Fatal(err)
		}
	}
	srv, err := pyindex.Serve(dir)
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()

	d := startBuildkitd(b, false)
	archive := baseArchive(b)
	globals := map[string]func() []string{
		"embedded": func() []string { return []string{"--root", newRoot(b)} },
		"embedded-oci": func() []string {
			return []string{"--root", newRoot(b), "--address", noContainerd, "--builder", "embedded-oci", "--base-archive", archive}
		},
		"buildkitd": func() []string {
			return append([]string{"--root", newRoot(b), "--base-archive", archive}, d.BuilderFlags()...)
		},
	}
	failed := map[string]int{}
	var tryBuild func(bl string, global []string, id string, reqs []string) error
	build := func(bl string, global []string, id string, reqs []string) (time.Duration, int) {
		args := append(append([]string{}, global...), "install", "--json", "--progress", "quiet", "--base", env.base, "--index-url", srv.URL())
		if bl != "embedded" {
			args = append(args, "--output", "oci-layout="+filepath.Join(dir, "out-"+id))
		}
		args = append(append(args, id), reqs...)
		cmd := sbCmd(args...)
		start := time.Now()
		out, err := cmd.Output()
		el := time.Since(start)
		if err != nil {
			b.Fatalf("%v: %v\n%s", args, err, out)
		}
		var doc installJSON
		if err := json.Unmarshal(out, &doc); err != nil {
			b.Fatalf("%v: %v\n%s", args, err, out)
		}
		return el, len(installSteps(doc.Steps))
	}
	tryBuild = func(bl string, global []string, id string, reqs []string) error {
		args := append(append([]string{}, global...), "install", "--json", "--progress", "quiet", "--base", env.base, "--index-url", srv.URL())
		if bl != "embedded" {
			args = append(args, "--output", "oci-layout="+filepath.Join(dir, "out-"+id))
		}
		out, err := sbCmd(append(append(args, id), reqs...)...).Output()
		if err != nil {
			return fmt.Errorf("%v: %v\n%s", args, err, out)
		}
		return nil
	}
	reqs := func(bl string, from, n int) []string {
		var r []string
		for i := from; i < from+n; i++ {
			r = append(r, name(bl, i)+"==1.0")
		}
		return r
	}
	type row struct{ cold, cached, addOne []time.Duration }
	rows := map[string]*row{}
	rates := map[string][2]float64{}
	for _, bl := range builders {
		r := &row{}
		rows[bl] = r
		g := globals[bl]()
		// Warm-up: the base unpacked and the venv built on this builder.
		build(bl, g, bl+"-warm", nil)
		next := 0
		for i := 0; i < runs; i++ {
			id := fmt.Sprintf("%s-cold-%d", bl, i)
			skill := reqs(bl, next, perSkill)
			next += perSkill
			el, _ := build(bl, g, id, skill)
			r.cold = append(r.cold, el)
			el, _ = build(bl, g, id, skill)
			r.cached = append(r.cached, el)
			el, _ = build(bl, g, id, append(skill, name(bl, next)+"==1.0"))
			next++
			r.addOne = append(r.addOne, el)
		}
		// Sustained rate of new skills: burst builds, from 1 client, then
		// from `concurrent` clients (own roots; the embedded builder has
		// one engine per root and shares containerd).
		var rate [2]float64
		for k, clients := range []int{1, concurrent} {
			gs := make([][]string, clients)
			for c := range gs {
				gs[c] = g
				if c > 0 {
					gs[c] = globals[bl]()
				}
			}
			var wg sync.WaitGroup
			var mu sync.Mutex
			jobs := make(chan int)
			start := time.Now()
			for c := 0; c < clients; c++ {
				wg.Add(1)
				go func(c int) {
					defer wg.Done()
					for j := range jobs {
						mu.Lock()
						skill := reqs(bl, next+j*perSkill, perSkill)
						mu.Unlock()
						if err := tryBuild(bl, gs[c], fmt.Sprintf("%s-rate-%d-%d", bl, k, j), skill); err != nil {
							b.Error(err) // from a goroutine: record, do not stop
							mu.Lock()
							failed[bl]++
							mu.Unlock()
						}
					}
				}(c)
			}
			for j := 0; j < burst; j++ {
				jobs <- j
			}
			close(jobs)
			wg.Wait()
			rate[k] = float64(burst) / time.Since(start).Hours()
			next += burst * perSkill
		}
		rates[bl] = rate
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "| builder | new 10-distribution skill | fully cached rebuild | add one requirement | new skills/hour, 1 client | new skills/hour, %d clients | failed builds |\n|---|---|---|---|---|---|---|\n", concurrent)
	for _, bl := range builders {
		r := rows[bl]
		fmt.Fprintf(&sb, "| %s | %s | %s | %s | %.0f | %.0f | %d |\n", bl, medianRange(r.cold), medianRange(r.cached), medianRange(r.addOne), rates[bl][0], rates[bl][1], failed[bl])
	}
	b.Logf("\n%s", sb.String())
	fmt.Fprintln(os.Stderr, sb.String())
}

func medianRange(ds []time.Duration) string {
	s := append([]time.Duration{}, ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	r := func(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }
	return fmt.Sprintf("%s (%s–%s)", r(s[len(s)/2]), r(s[0]), r(s[len(s)-1]))
}
