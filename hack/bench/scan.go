package main

import (
	"archive/zip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
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

// scanTable times `skillbuild scan --no-resolve` of both sets, whole
// process, against the full database imported into root.
func (b *bench) scanTable(ctx context.Context, root string) []scanRow {
	vuln, clean, err := scanSets(b.o.db)
	if err != nil {
		return []scanRow{{name: "200 pins", err: err}}
	}
	var rows []scanRow
	for _, set := range []struct {
		name string
		pins []string
	}{
		{"200 pins, each at an affected version (exit 3)", vuln},
		{"200 pins above every advisory", clean},
	} {
		row := scanRow{name: set.name}
		argv := b.sbArgs(root, append([]string{"scan", "--no-resolve", "--json"}, set.pins...)...)
		for i := range b.o.runs + 1 {
			r, err := b.exec(ctx, nil, argv, 3)
			if err != nil {
				row.err = err
				break
			}
			var doc struct {
				Vulnerabilities []json.RawMessage `json:"vulnerabilities"`
			}
			if err := json.Unmarshal(r.stdout, &doc); err != nil {
				row.err = fmt.Errorf("scan --json output: %w", err)
				break
			}
			row.findings = len(doc.Vulnerabilities)
			if i > 0 { // the first is the warm-up
				row.walls = append(row.walls, r.wall)
			}
		}
		if row.err == nil {
			b.say("  scan %s: median %s, %d findings", set.name, median(row.walls).Round(time.Millisecond), row.findings)
		}
		rows = append(rows, row)
	}
	return rows
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
