package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/skillbuild/skillbuild/internal/pyindex"
)

const (
	// coreCount is the pool skills draw their shared distributions from.
	coreCount = 30
	// extraCount is the pool of one-off distributions: every timed "add one"
	// or "second skill" run adds one nobody installed before.
	extraCount = 64
	// modules and moduleBytes size each wheel: a few hundred KB of Python,
	// so pip's unpacking and bytecode compilation is real work.
	modules     = 6
	moduleBytes = 48 << 10
)

// index is the local PEP 503 index and wheelhouse every tool installs from.
type index struct {
	dir      string
	srv      *pyindex.Server
	count    int
	bytes    int64 // wheel files
	unpacked int64 // Python source per wheel
}

// newIndex writes the core and extra wheels into dir and serves them on
// 127.0.0.1. The wheels are distinct and deterministic: the same run
// always builds the same bytes.
func newIndex(dir string) (*index, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	ix := &index{dir: dir}
	for i := range coreCount {
		if err := ix.add(coreName(i), i); err != nil {
			return nil, err
		}
	}
	for i := range extraCount {
		if err := ix.add(extraName(i), 1000+i); err != nil {
			return nil, err
		}
	}
	srv, err := pyindex.Serve(dir)
	if err != nil {
		return nil, err
	}
	ix.srv = srv
	return ix, nil
}

func coreName(i int) string  { return fmt.Sprintf("sbbench-core-%03d", i) }
func extraName(i int) string { return fmt.Sprintf("sbbench-extra-%03d", i) }

// add builds one wheel: a package whose modules hold distinct functions.
func (ix *index) add(name string, seed int) error {
	w := pyindex.Wheel{
		Name:    name,
		Version: "1.0.0",
		Summary: "skillbuild benchmark fixture " + name,
		Files:   map[string]string{},
		ConsoleScripts: map[string]string{
			name + "-hello": strings.ReplaceAll(name, "-", "_") + ".m0:f_0",
		},
	}
	pkg := strings.ReplaceAll(name, "-", "_")
	var total int64
	for m := range modules {
		src := module(seed, m)
		w.Files[fmt.Sprintf("%s/m%d.py", pkg, m)] = src
		total += int64(len(src))
	}
	p, err := pyindex.BuildWheel(ix.dir, w)
	if err != nil {
		return err
	}
	st, err := os.Stat(p)
	if err != nil {
		return err
	}
	ix.count++
	ix.bytes += st.Size()
	ix.unpacked = total
	return nil
}

// module is about moduleBytes of valid, distinct Python.
func module(seed, m int) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "\"\"\"Generated module %d of fixture %d.\"\"\"\n\n", m, seed)
	for j := 0; sb.Len() < moduleBytes; j++ {
		fmt.Fprintf(&sb, "def f_%d(x, y=%d):\n    \"\"\"Return a value derived from x (%d/%d).\"\"\"\n    return (x * %d + y) %% %d\n\n\n", j, seed, m, j, j+1, seed+m+j+7)
	}
	return sb.String()
}

// core returns the first n core distribution names.
func core(n int) []string {
	out := make([]string, n)
	for i := range n {
		out[i] = coreName(i)
	}
	return out
}

// pins turns names into name==1.0.0 requirement lines.
func pins(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = n + "==1.0.0"
	}
	return out
}
