package main

import (
	"archive/zip"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"github.com/skillbuild/skillbuild/skill/api"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// scanRow is one timed `skillbuild scan --no-resolve` of 200 pins.
type scanRow struct {
	name     string
	walls    []time.Duration
	findings int
	err      error
}

var plainVersion = regexp.MustCompile(`^[0-9]+(\.[0-9]+)*$`)

// scanSets reads the OSV export and returns two sets of 200 pins: the 200
// packages with the most advisories, each at a version listed as affected
// (many findings to merge, the worst case), and 200 packages at a version
// above every advisory (the common case).
func scanSets(db string) (vulnerable, clean []string, err error) {
	zr, err := zip.OpenReader(db)
	if err != nil {
		return nil, nil, fmt.Errorf("open %s: %w", db, err)
	}
	defer zr.Close()
	count := map[string]int{}
	affected := map[string]string{}
	for _, f := range zr.File {
		if !strings.HasSuffix(f.Name, ".json") {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			return nil, nil, err
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return nil, nil, err
		}
		var rec struct {
			Affected []struct {
				Package struct {
					Ecosystem string `json:"ecosystem"`
					Name      string `json:"name"`
				} `json:"package"`
				Versions []string `json:"versions"`
			} `json:"affected"`
		}
		if json.Unmarshal(data, &rec) != nil {
			continue
		}
		for _, a := range rec.Affected {
			if a.Package.Ecosystem != "PyPI" || a.Package.Name == "" {
				continue
			}
			n := strings.ToLower(a.Package.Name)
			count[n]++
			for i := len(a.Versions) - 1; i >= 0; i-- {
				if plainVersion.MatchString(a.Versions[i]) {
					affected[n] = a.Versions[i]
					break
				}
			}
		}
	}
	var names []string
	for n := range affected {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		if count[names[i]] != count[names[j]] {
			return count[names[i]] > count[names[j]]
		}
		return names[i] < names[j]
	})
	if len(names) < 200 {
		return nil, nil, fmt.Errorf("%s: only %d packages with a listed affected version", db, len(names))
	}
	for _, n := range names[:200] {
		vulnerable = append(vulnerable, n+"=="+affected[n])
	}
	all := make([]string, 0, len(count))
	for n := range count {
		all = append(all, n)
	}
	sort.Strings(all)
	for _, n := range all[:200] {
		clean = append(clean, n+"==99999.0")
	}
	return vulnerable, clean, nil
}

// Flags of the scan section alone (see runScanOnly).
var (
	scanOnly     = flag.Bool("scan-only", false, "measure only the scan rows (no containerd, no root): import -db into a fresh root and print the table; BENCHMARKS.md is not written")
	scanBaseline = flag.String("scan-baseline", "", "with -scan-only: also time this skillbuild binary (its own root, same export), interleaved, and check that it reports the same findings")
)

// scanSetsOf are the two measured sets, named as in the report.
func scanSetsOf(db string) ([]scanSet, error) {
	vuln, clean, err := scanSets(db)
	if err != nil {
		return nil, err
	}
	return []scanSet{
		{"200 pins, each at an affected version (exit 3)", vuln},
		{"200 pins above every advisory", clean},
	}, nil
}

// scanSet is one timed command: `scan --no-resolve --json` of pins, or
// `--version` when pins is nil.
type scanSet struct {
	name string
	pins []string
}

// scanTable times `skillbuild scan --no-resolve` of both sets, whole
// process, against the full database imported into root.
func (b *bench) scanTable(ctx context.Context, root string) []scanRow {
	sets, err := scanSetsOf(b.o.db)
	if err != nil {
		return []scanRow{{name: "200 pins", err: err}}
	}
	rows, _ := b.timeScans(ctx, sets, []string{""}, []string{root})
	return rows[0]
}

// timeScans times every set with every binary (bins[i] with the database
// in roots[i]; "" is -bin), interleaved run by run so that load changes
// hit them alike. rows[i][j] is binary i on set j; docs[i][j] its last
// `vulnerabilities` array.
func (b *bench) timeScans(ctx context.Context, sets []scanSet, bins, roots []string) (rows [][]scanRow, docs [][]string) {
	rows = make([][]scanRow, len(bins))
	docs = make([][]string, len(bins))
	for i := range bins {
		for _, set := range sets {
			rows[i] = append(rows[i], scanRow{name: set.name})
		}
		docs[i] = make([]string, len(sets))
	}
	for run := range b.o.runs + 1 { // the first is the warm-up
		for j, set := range sets {
			for i, bin := range bins {
				row := &rows[i][j]
				if row.err != nil {
					continue
				}
				args := append([]string{"scan", "--no-resolve", "--json"}, set.pins...)
				if set.pins == nil {
					args = []string{"--version"}
				}
				r, err := b.exec(ctx, nil, b.sbArgsBin(bin, roots[i], args...), 3)
				if err != nil {
					row.err = err
					continue
				}
				if set.pins == nil {
					if run > 0 {
						row.walls = append(row.walls, r.wall)
					}
					continue
				}
				var doc api.ScanResult
				if err := json.Unmarshal(r.stdout, &doc); err != nil {
					row.err = fmt.Errorf("scan --json output: %w", err)
					continue
				}
				row.findings = len(doc.Findings)
				vs, _ := json.Marshal(doc.Findings)
				docs[i][j] = string(vs)
				if run > 0 {
					row.walls = append(row.walls, r.wall)
				}
			}
		}
	}
	load := loadAvg()
	for i := range rows {
		for j := range rows[i] {
			if r := rows[i][j]; r.err == nil {
				lo, hi := minMax(r.walls)
				b.say("  scan %s %s: median %s (%s–%s), %d findings, load average %s", orBin(bins[i], b.o.bin), r.name,
					median(r.walls).Round(time.Millisecond), lo.Round(time.Millisecond), hi.Round(time.Millisecond), r.findings, load)
			}
		}
	}
	return rows, docs
}

func orBin(bin, def string) string {
	if bin == "" {
		return def
	}
	return bin
}

// runScanOnly is `bench -scan-only`: the scan rows alone, for iterating
// on the scanner. It needs neither root nor containerd: the export is
// imported into a fresh root per binary, and with -scan-baseline the other
// binary is timed in the same loop and must report the same findings.
func runScanOnly(ctx context.Context, o options, stdout io.Writer) error {
	var err error
	if o.bin, err = filepath.Abs(o.bin); err != nil {
		return err
	}
	if o.db, err = filepath.Abs(o.db); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "sb-bench-scan-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	b := &bench{o: o, out: stdout, dir: dir}
	if b.logf, err = os.Create(filepath.Join(dir, "bench.log")); err != nil {
		return err
	}
	defer b.logf.Close()
	bins := []string{""}
	if *scanBaseline != "" {
		base, err := filepath.Abs(*scanBaseline)
		if err != nil {
			return err
		}
		bins = append(bins, base)
	}
	var roots []string
	for i, bin := range bins {
		root := filepath.Join(dir, fmt.Sprintf("root%d", i))
		if _, err := b.exec(ctx, nil, b.sbArgsBin(bin, root, "db", "import", o.db)); err != nil {
			return fmt.Errorf("db import with %s: %w", orBin(bin, o.bin), err)
		}
		roots = append(roots, root)
	}
	sets, err := scanSetsOf(o.db)
	if err != nil {
		return err
	}
	// The floor under both: starting the process (package init) and
	// printing the version.
	sets = append(sets, scanSet{name: "process start and exit (`--version`)"})
	b.say("scan: %d runs of each set with each binary, interleaved", o.runs)
	rows, docs := b.timeScans(ctx, sets, bins, roots)
	fmt.Fprintf(stdout, "\n| set | binary | median (min–max) | findings |\n|---|---|---|---|\n")
	for j := range sets {
		for i := range bins {
			r := rows[i][j]
			if r.err != nil {
				fmt.Fprintf(stdout, "| %s | %s | failed: %s | |\n", r.name, orBin(bins[i], o.bin), oneLine(r.err.Error()))
				continue
			}
			lo, hi := minMax(r.walls)
			cell := fmt.Sprintf("%s (%s–%s)", secs(median(r.walls)), secs(lo), secs(hi))
			if i > 0 && rows[0][j].err == nil {
				cell += fmt.Sprintf(", **%.2f×**", float64(median(r.walls))/float64(median(rows[0][j].walls)))
			}
			fmt.Fprintf(stdout, "| %s | %s | %s | %d |\n", r.name, orBin(bins[i], o.bin), cell, r.findings)
		}
	}
	fmt.Fprintf(stdout, "\nload average at end: %s\n", loadAvg())
	for i := 1; i < len(bins); i++ {
		for j := range sets {
			if docs[i][j] != docs[0][j] {
				return fmt.Errorf("%s and %s report different findings for %q", o.bin, bins[i], sets[j].name)
			}
		}
	}
	return nil
}

// goBench runs the scan package's Go benchmarks (in-process: load and
// Check of 200 pins) and returns their result lines.
func (b *bench) goBench(ctx context.Context) string {
	wd, err := os.Getwd()
	if err != nil {
		return err.Error()
	}
	cmd := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-bench", ".", "-benchtime", "10x", "./scan/")
	cmd.Dir = wd
	// Go's own caches, and nothing else from the host.
	cmd.Env = []string{"PATH=" + os.Getenv("PATH") + ":" + sysPath, "HOME=" + os.Getenv("HOME")}
	for _, k := range []string{"GOPATH", "GOCACHE", "GOMODCACHE", "GOFLAGS", "GOTOOLCHAIN", "GOPROXY"} {
		if v, ok := os.LookupEnv(k); ok {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	out, err := cmd.CombinedOutput()
	var keep []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "Benchmark") || strings.HasPrefix(l, "cpu:") {
			keep = append(keep, strings.Join(strings.Fields(l), " "))
		}
	}
	if err != nil {
		keep = append(keep, fmt.Sprintf("go test failed: %v", err))
	}
	return strings.Join(keep, "\n")
}

// resolveScanCount is how many requirements the scan-with-resolution row
// resolves: the core distributions, by name.
const resolveScanCount = 30

// resolveScanRow is `skillbuild scan -r requirements.txt` of one binary:
// resolve the requirements against the bench's index in the base image,
// then scan the lock (the engine started, the database in its root).
type resolveScanRow struct {
	bin      string
	walls    []time.Duration
	packages int
	err      error
}

// resolveScanTable times scan -r of resolveScanCount requirements with
// -bin and, given one, -compare-bin (each with its own root: roots[i]),
// interleaved run by run after a warm-up each. Every run resolves a set
// its root never resolved (29 core distributions and one of the last
// extra ones, another each run), so no build cache answers it: a user
// scanning a new requirements file. With a -compare-bin from before the
// builtin resolver, the ratio is the builtin resolver against pip's
// resolve step.
func (b *bench) resolveScanTable(ctx context.Context, bins, roots []string) []resolveScanRow {
	rows := make([]resolveScanRow, len(bins))
	for i := range bins {
		rows[i].bin = orBin(bins[i], b.o.bin)
	}
	for run := range b.o.runs + 1 {
		req := filepath.Join(b.dir, fmt.Sprintf("scan-resolve-%d.txt", run))
		set := append(core(resolveScanCount-1), extraName(extraCount-1-run))
		if err := os.WriteFile(req, []byte(strings.Join(set, "\n")+"\n"), 0o644); err != nil {
			return []resolveScanRow{{err: err}}
		}
		for i, bin := range bins {
			row := &rows[i]
			if row.err != nil {
				continue
			}
			args := []string{"scan", "--json", "--progress", "quiet", "--base", baseRef, "--index-url", b.index.srv.URL(), "-r", req}
			r, err := b.exec(ctx, nil, b.sbArgsBin(bin, roots[i], args...), 3)
			if err != nil {
				row.err = err
				continue
			}
			var doc struct {
				Packages []json.RawMessage `json:"packages"`
			}
			if err := json.Unmarshal(r.stdout, &doc); err != nil {
				row.err = fmt.Errorf("scan --json output: %w", err)
				continue
			}
			row.packages = len(doc.Packages)
			if row.packages < resolveScanCount {
				row.err = fmt.Errorf("scan resolved %d packages, want %d", row.packages, resolveScanCount)
				continue
			}
			if run > 0 {
				row.walls = append(row.walls, r.wall)
			}
		}
	}
	for _, r := range rows {
		if r.err == nil {
			lo, hi := minMax(r.walls)
			b.say("  scan -r %s: median %s (%s–%s), %d packages, load average %s", r.bin, median(r.walls).Round(time.Millisecond),
				lo.Round(time.Millisecond), hi.Round(time.Millisecond), r.packages, loadAvg())
		} else {
			b.say("  scan -r %s failed: %v", r.bin, r.err)
		}
	}
	return rows
}
