// Command testreport runs `go test -json` and prints what plain `go test`
// would, then the slowest tests.
//
//	testreport [-slowest N] -- go test -json [flags] [packages]
//
// The output is go test's in package-list mode: "ok" for a package that
// passed, and for one that failed what its tests printed, the failed tests'
// reports with their logs (subtests indented under their parent), and the
// FAIL lines; build errors go to stderr. Then the N slowest tests and
// subtests, with their times. testreport exits as the command did, so a
// pipeline reading its status or its "ok"/"FAIL"/"--- FAIL" lines sees go
// test's.
//
// Plain go test does not say where the time of a suite goes; go test -json
// does, in a form meant for programs. This is the small program between
// them that `make test` and CI use.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"
)

func main() {
	slowest := flag.Int("slowest", 10, "how many of the slowest tests to list (0: none)")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: testreport [-slowest N] -- go test -json [flags] [packages]")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	os.Exit(run(flag.Args(), *slowest, os.Stdout, os.Stderr))
}

// run runs argv, reports its test events on stdout (build output on
// stderr) and returns its exit status.
func run(argv []string, slowest int, stdout, stderr io.Writer) int {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stderr = stderr
	events, err := cmd.StdoutPipe()
	if err != nil {
		fmt.Fprintln(stderr, "testreport:", err)
		return 1
	}
	// Ctrl-C reaches the whole process group: go test stops and reports,
	// and this process reports what it got and exits as go test did.
	signal.Ignore(syscall.SIGINT, syscall.SIGTERM)
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(stderr, "testreport:", err)
		return 1
	}
	r := newReport(stdout, stderr)
	readErr := r.read(events)
	waitErr := cmd.Wait()
	if readErr != nil {
		fmt.Fprintln(stderr, "testreport: reading the test events:", readErr)
	}
	r.finish(slowest)
	var ee *exec.ExitError
	switch {
	case errors.As(waitErr, &ee) && ee.ExitCode() >= 0:
		return ee.ExitCode()
	case waitErr != nil:
		fmt.Fprintln(stderr, "testreport:", waitErr)
		return 1
	case readErr != nil:
		return 1
	}
	return 0
}

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action      string
	Package     string
	Test        string
	Elapsed     float64
	Output      string
	ImportPath  string // build-output and build-fail events
	FailedBuild string
}

// timing is how long one test (or subtest) took.
type timing struct {
	pkg, test string
	elapsed   time.Duration
}

// report turns test events into go test's plain output.
type report struct {
	stdout, stderr io.Writer
	pkgs           map[string]*pkgOutput
	timings        []timing
	failed         bool
}

// pkgOutput is what a package printed so far: its own lines, the direct
// prints of its tests, and the reports of its failed tests, in order; and
// the report of each test still running.
type pkgOutput struct {
	lines []string
	tests map[string]*testOutput
}

// testOutput is a running test's report: its result line (which plain go
// test puts first) and its log lines, with its failed subtests' reports
// where they finished.
type testOutput struct {
	header string
	lines  []string
}

func newReport(stdout, stderr io.Writer) *report {
	return &report{stdout: stdout, stderr: stderr, pkgs: map[string]*pkgOutput{}}
}

// read reads events until EOF. A line that is not an event is printed as
// it is.
func (r *report) read(in io.Reader) error {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &e) != nil {
			fmt.Fprintf(r.stdout, "%s\n", line)
			continue
		}
		r.handle(e)
	}
	return sc.Err()
}

func (r *report) pkg(name string) *pkgOutput {
	p := r.pkgs[name]
	if p == nil {
		p = &pkgOutput{tests: map[string]*testOutput{}}
		r.pkgs[name] = p
	}
	return p
}

func (r *report) handle(e event) {
	switch e.Action {
	case "build-output":
		io.WriteString(r.stderr, e.Output) //nolint:errcheck // a report that cannot be written has nowhere to say so
		return
	case "build-fail":
		return
	}
	if e.Package == "" {
		return
	}
	p := r.pkg(e.Package)
	if e.Test == "" {
		switch e.Action {
		case "output":
			p.lines = append(p.lines, e.Output)
		case "pass", "skip":
			// A package that passed shows its summary line only.
			for _, l := range p.lines {
				if strings.HasPrefix(l, "ok  \t") || strings.HasPrefix(l, "?   \t") {
					io.WriteString(r.stdout, l) //nolint:errcheck
				}
			}
			delete(r.pkgs, e.Package)
		case "fail":
			r.failed = true
			for _, l := range p.lines {
				io.WriteString(r.stdout, l) //nolint:errcheck
			}
			delete(r.pkgs, e.Package)
		}
		return
	}
	t := p.tests[e.Test]
	if t == nil {
		t = &testOutput{}
		p.tests[e.Test] = t
	}
	switch e.Action {
	case "output":
		switch l := e.Output; {
		case strings.HasPrefix(l, "=== "): // RUN, PAUSE, CONT, NAME: -v's framing
		case strings.HasPrefix(l, "--- "):
			t.header = l
		case strings.HasPrefix(l, " "):
			t.lines = append(t.lines, l) // the test's log
		default:
			p.lines = append(p.lines, l) // printed by the test itself, straight to stdout
		}
	case "pass", "fail", "skip":
		delete(p.tests, e.Test)
		if e.Action != "skip" {
			r.timings = append(r.timings, timing{pkg: e.Package, test: e.Test, elapsed: time.Duration(e.Elapsed * float64(time.Second))})
		}
		if e.Action != "fail" {
			return
		}
		block := append([]string{t.header}, t.lines...)
		parent, _, isSub := cutLast(e.Test, "/")
		if pt := p.tests[parent]; isSub && pt != nil {
			// Plain go test indents a subtest's report under its parent.
			for _, l := range block {
				pt.lines = append(pt.lines, "    "+l)
			}
			return
		}
		p.lines = append(p.lines, block...)
	}
}

// finish prints the final FAIL line of a failed run, and the n slowest
// tests.
func (r *report) finish(n int) {
	// Packages whose end never came (the command died): what they printed.
	for _, p := range r.pkgs {
		for _, t := range p.tests {
			p.lines = append(p.lines, append([]string{t.header}, t.lines...)...)
		}
		for _, l := range p.lines {
			io.WriteString(r.stdout, l) //nolint:errcheck
		}
	}
	if r.failed {
		fmt.Fprintln(r.stdout, "FAIL")
	}
	if n > 0 && len(r.timings) > 0 {
		writeSlowest(r.stdout, r.timings, n)
	}
}

// writeSlowest lists the n slowest of ts, slowest first.
func writeSlowest(w io.Writer, ts []timing, n int) {
	ts = append([]timing(nil), ts...)
	sort.SliceStable(ts, func(i, j int) bool { return ts[i].elapsed > ts[j].elapsed })
	if len(ts) > n {
		ts = ts[:n]
	}
	prefix := commonDir(ts)
	var b bytes.Buffer
	fmt.Fprintf(&b, "\nslowest %d tests:\n", len(ts))
	for _, t := range ts {
		fmt.Fprintf(&b, "%10.2fs  %s %s\n", t.elapsed.Seconds(), strings.TrimPrefix(t.pkg, prefix), t.test)
	}
	w.Write(b.Bytes()) //nolint:errcheck
}

// commonDir is the longest path prefix, ending in "/", that every
// timing's package shares (the module path, usually).
func commonDir(ts []timing) string {
	if len(ts) == 0 {
		return ""
	}
	prefix := ts[0].pkg
	for _, t := range ts[1:] {
		for !strings.HasPrefix(t.pkg, prefix) {
			prefix = prefix[:len(prefix)-1]
		}
	}
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		return prefix[:i+1]
	}
	return ""
}

// cutLast slices s around the last sep.
func cutLast(s, sep string) (before, after string, found bool) {
	if i := strings.LastIndex(s, sep); i >= 0 {
		return s[:i], s[i+len(sep):], true
	}
	return s, "", false
}
