package integration

import (
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/skillbuild/skillbuild/config"
	"github.com/skillbuild/skillbuild/internal/pyindex"
	"github.com/stretchr/testify/require"
)

// The differential corpus: a universe of wheels on an index (and a second
// index and a find-links directory), and requirement sets over it that
// exercise every rule pip's resolution follows. Names say what each
// project is for.

// universe are the projects of the main index.
var universe = []pyindex.Wheel{
	// leaf-a: releases, a beta, a dev release.
	{Name: "leaf-a", Version: "1.0"}, {Name: "leaf-a", Version: "1.1"}, {Name: "leaf-a", Version: "2.0"},
	{Name: "leaf-a", Version: "2.1b1"}, {Name: "leaf-a", Version: "3.0.dev1"},
	// leaf-b: the newest is yanked.
	{Name: "leaf-b", Version: "0.1"}, {Name: "leaf-b", Version: "0.2"}, {Name: "leaf-b", Version: "0.3"},
	// leaf-c: a post-release and a release candidate.
	{Name: "leaf-c", Version: "1.0"}, {Name: "leaf-c", Version: "1.0.post1"}, {Name: "leaf-c", Version: "1.1rc1"},
	// leaf-d: only pre-releases.
	{Name: "leaf-d", Version: "1.0a1"}, {Name: "leaf-d", Version: "1.0b2"},
	// leaf-e: a local version label.
	{Name: "leaf-e", Version: "1.0"}, {Name: "leaf-e", Version: "1.0+local.1"},
	// leaf-f: Requires-Python for another Python, and an invalid one.
	{Name: "leaf-f", Version: "1.0", RequiresPython: ">=3.8"}, {Name: "leaf-f", Version: "2.0", RequiresPython: ">=3.12"},
	{Name: "leaf-f", Version: "2.1", RequiresPython: "invalid!!"},
	// leaf-g: only a wheel for Python 2 (and a source archive, below).
	{Name: "leaf-g", Version: "1.0", Tag: "py2-none-any"},
	// leaf-h: platform wheels; 2.0 only for another Python.
	{Name: "leaf-h", Version: "1.0"}, {Name: "leaf-h", Version: "1.0", Tag: "cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64"},
	{Name: "leaf-h", Version: "1.0", Tag: "cp39-abi3-linux_x86_64"}, {Name: "leaf-h", Version: "2.0", Tag: "cp312-cp312-manylinux_2_17_x86_64"},
	{Name: "leaf-h", Version: "1.5", Tag: "py2.py3-none-any"},
	// leaf-i: build tags.
	{Name: "leaf-i", Version: "1.0"}, {Name: "leaf-i", Version: "1.0", Build: "1"}, {Name: "leaf-i", Version: "1.0", Build: "2"},
	// leaf-j: its only release is yanked; leaf-k: its newest.
	{Name: "leaf-j", Version: "1.0"},
	{Name: "leaf-k", Version: "1.0"}, {Name: "leaf-k", Version: "2.0"},
	// leaf-l: the newest file's metadata names another version.
	{Name: "leaf-l", Version: "1.0"}, {Name: "leaf-l", Version: "1.2", MetadataVersion: "1.1"},
	// Mixed.Case_Name: METADATA spells the name unnormalized.
	{Name: "Mixed.Case_Name", Version: "1.0"},
	// mid-*: dependencies with ranges, markers and extras.
	{Name: "mid-a", Version: "1.0", Requires: []string{"leaf-a>=1,<2"}},
	{Name: "mid-a", Version: "2.0", Requires: []string{"leaf-a>=2", "leaf-b", "leaf-c; python_version < '3'"}},
	{Name: "mid-b", Version: "1.0", Requires: []string{"leaf-c~=1.0"}},
	{Name: "mid-b", Version: "1.5", Requires: []string{"leaf-c==1.1rc1"}},
	{Name: "mid-c", Version: "1.0", ProvidesExtra: []string{"fast", "slow", "Dev_Tools"}, Requires: []string{
		"leaf-a", "leaf-b>=0.2; extra == 'fast'", "leaf-c; extra == 'slow'", "leaf-d; sys_platform == 'win32'",
		"leaf-e; extra == 'dev-tools'", "leaf-i; extra == 'dev_tools'"}},
	{Name: "mid-d", Version: "1.0", Requires: []string{"mid-c[fast]>=1.0", "leaf-h"}},
	{Name: "mid-e", Version: "1.0", RequiresPython: ">=3.12"},
	{Name: "mid-f", Version: "1.0", Requires: []string{"mid-e"}},
	{Name: "mid-g", Version: "1.0", Requires: []string{"leaf-f", "leaf-k", "Mixed.Case_Name"}},
	{Name: "mid-h", Version: "1.0", Requires: []string{"mixed-case-name", "leaf-c>=1.0.post1"}},
	{Name: "mid-i", Version: "1.0", Requires: []string{"mid-c[slow,fast]", "mid-c[Dev_Tools]"}},
	{Name: "mid-j", Version: "1.0", Requires: []string{"leaf-a (>=1.0,<2.0)", "leaf-b (==0.1) ; os_name == 'posix'"}},
	// con-*: conflicts; con-z's newest needs a release that does not exist.
	{Name: "con-x", Version: "1.0", Requires: []string{"leaf-a<2"}},
	{Name: "con-y", Version: "1.0", Requires: []string{"leaf-a>=2"}},
	{Name: "con-z", Version: "1.0", Requires: []string{"leaf-a"}},
	{Name: "con-z", Version: "2.0", Requires: []string{"leaf-a==3.0"}},
	{Name: "con-w", Version: "1.0", Requires: []string{"con-x", "con-y"}},
	// bt-*: backtracking through two levels.
	{Name: "bt-a", Version: "1.0"}, {Name: "bt-a", Version: "2.0", Requires: []string{"bt-b==2.0"}},
	{Name: "bt-a", Version: "3.0", Requires: []string{"bt-b==3.0"}},
	{Name: "bt-b", Version: "2.0", Requires: []string{"bt-c>=2"}}, {Name: "bt-b", Version: "3.0", Requires: []string{"bt-c<1"}},
	{Name: "bt-c", Version: "1.0"}, {Name: "bt-c", Version: "2.0"},
	// cyc-*: a dependency cycle; selfy: a package that requires its own extra.
	{Name: "cyc-a", Version: "1.0", Requires: []string{"cyc-b"}}, {Name: "cyc-b", Version: "1.0", Requires: []string{"cyc-a>=1"}},
	{Name: "selfy", Version: "1.0", ProvidesExtra: []string{"x"}, Requires: []string{"selfy[x]", "leaf-a<2; extra == 'x'"}},
	// uses-debian: the Debian wheels (setuptools is resolved last).
	{Name: "uses-debian", Version: "1.0", Requires: []string{"setuptools>=40", "wheel", "leaf-a"}},
	// weird: a version pip can only read as a legacy version (the builtin
	// resolver leaves it to pip).
	{Name: "weird", Version: "1.0-foo"},
}

// chainLength is the length of the chain-NN projects: each release 2.0
// needs the next one's 2.0, each 1.0 the next one's 1.x.
const chainLength = 12

func chainWheels() []pyindex.Wheel {
	var out []pyindex.Wheel
	for i := range chainLength {
		name := fmt.Sprintf("chain-%02d", i)
		var r1, r2 []string
		if i+1 < chainLength {
			next := fmt.Sprintf("chain-%02d", i+1)
			r1, r2 = []string{next + "<2"}, []string{next + ">=2.0"}
		}
		out = append(out, pyindex.Wheel{Name: name, Version: "1.0", Requires: r1}, pyindex.Wheel{Name: name, Version: "2.0", Requires: r2})
	}
	return out
}

// yanked are the main index's yanked files.
var yanked = map[string]string{
	"leaf_b-0.3-py3-none-any.whl": "broken",
	"leaf_j-1.0-py3-none-any.whl": "",
	"leaf_k-2.0-py3-none-any.whl": "",
}

// secondIndex is the extra index's projects (leaf-a 2.0 is the same file).
var secondIndex = []pyindex.Wheel{
	{Name: "leaf-a", Version: "2.0"}, {Name: "leaf-b", Version: "0.4"}, {Name: "extra-only", Version: "1.0", Requires: []string{"leaf-c"}},
}

// findLinks is the find-links directory's wheels. A find-links file has
// no data-requires-python: only its metadata says py-new needs another
// Python (py-new 0.9 does not; py-newer has nothing else).
var findLinks = []pyindex.Wheel{
	{Name: "leaf-a", Version: "2.0"}, {Name: "fl-only", Version: "1.0"}, {Name: "leaf-e", Version: "1.1+fl"},
	{Name: "py-new", Version: "1.0", RequiresPython: ">=3.12"}, {Name: "py-new", Version: "0.9", RequiresPython: ">=3.8"},
	{Name: "py-newer", Version: "2.0", RequiresPython: ">=3.12,!=3.13.*"},
	{Name: "needs-py-newer", Version: "1.0", Requires: []string{"py-newer"}},
}

// buildUniverse writes the wheels into dir/{main,second,findlinks}.
func buildUniverse(t *testing.T, dir string) (main, second, fl string) {
	t.Helper()
	main, second, fl = filepath.Join(dir, "main"), filepath.Join(dir, "second"), filepath.Join(dir, "findlinks")
	for _, d := range []string{main, second, fl} {
		require.NoError(t, os.MkdirAll(d, 0o755))
	}
	for _, w := range append(append([]pyindex.Wheel{}, universe...), chainWheels()...) {
		_, err := pyindex.BuildWheel(main, w)
		require.NoError(t, err, w.Name)
	}
	_, err := pyindex.BuildSdist(main, pyindex.Sdist{Name: "leaf-g", Version: "1.0"})
	require.NoError(t, err)
	_, err = pyindex.BuildSdist(main, pyindex.Sdist{Name: "sdist-only", Version: "1.0"})
	require.NoError(t, err)
	_, err = pyindex.CopyDebianWheels(main)
	require.NoError(t, err)
	for _, w := range secondIndex {
		_, err := pyindex.BuildWheel(second, w)
		require.NoError(t, err)
	}
	for _, w := range findLinks {
		_, err := pyindex.BuildWheel(fl, w)
		require.NoError(t, err)
	}
	return main, second, fl
}

// Sources a case resolves from.
const (
	srcHTML      = "html"       // the main index, PEP 503 HTML
	srcPEP658    = "pep658"     // the same, with core metadata files
	srcJSON      = "json"       // the same as PEP 691 JSON, with core metadata
	srcExtra     = "extra"      // the main index and the second as --extra-index-url
	srcFindLinks = "find-links" // the main index and the find-links directory
	srcOnlyLinks = "only-links" // the find-links directory alone (--no-index)
)

var sources = []string{srcHTML, srcPEP658, srcJSON, srcExtra, srcFindLinks, srcOnlyLinks}

// diffCase is one requirement set resolved by both resolvers.
type diffCase struct {
	id     string
	source string
	lines  []string
	// fallback says the builtin resolver may leave this case to pip (it
	// names the weird project); mustFallback that it must.
	fallback, mustFallback bool
}

// atoms are requirement lines per project, one of which a generated set
// picks; most of them can be met on their own.
var atoms = map[string][]string{
	"leaf-a": {"leaf-a", "leaf-a>=1.1", "leaf-a<2", "leaf-a==1.*", "leaf-a~=1.0", "leaf-a!=2.0", "leaf-a>=2.1b1", "leaf-a===1.0",
		"leaf-a>1.0", "leaf-a<=2.0", "leaf-a==3.0.dev1", "leaf-a>=3.0.dev0", "leaf-a (>=1.0, <2.0)", "leaf-a==2.1b1", "leaf-a<2.1"},
	"leaf-b":          {"leaf-b", "leaf-b==0.3", "leaf-b>=0.3", "leaf-b<0.3", "leaf-b!=0.2", "leaf-b==0.*"},
	"leaf-c":          {"leaf-c", "leaf-c>1.0", "leaf-c>=1.1rc1", "leaf-c~=1.0", "leaf-c==1.0", "leaf-c<1.1"},
	"leaf-d":          {"leaf-d", "leaf-d>=1.0a1", "leaf-d<1.0", "leaf-d==1.0a1", "leaf-d>=0.1"},
	"leaf-e":          {"leaf-e", "leaf-e==1.0", "leaf-e==1.0+local.1", "leaf-e<=1.0", "leaf-e>1.0"},
	"leaf-f":          {"leaf-f", "leaf-f<2"},
	"leaf-h":          {"leaf-h", "leaf-h<2", "leaf-h==1.5"},
	"leaf-i":          {"leaf-i", "leaf-i==1.0"},
	"leaf-j":          {"leaf-j==1.0"},
	"leaf-k":          {"leaf-k", "leaf-k==2.0", "leaf-k==2.*"},
	"leaf-l":          {"leaf-l", "leaf-l>=1.1"},
	"Mixed.Case_Name": {"Mixed.Case_Name", "mixed-case-name", "MIXED_CASE_NAME==1.0"},
	"mid-a":           {"mid-a", "mid-a<2", "mid-a>=2"},
	"mid-b":           {"mid-b", "mid-b<1.5", "mid-b>=1.5"},
	"mid-c":           {"mid-c", "mid-c[fast]", "mid-c[slow]", "mid-c[fast,slow]", "mid-c[dev-tools]", "mid-c[Dev_Tools]", "mid-c[nope]"},
	"mid-d":           {"mid-d"},
	"mid-g":           {"mid-g"},
	"mid-h":           {"mid-h"},
	"mid-i":           {"mid-i"},
	"mid-j":           {"mid-j"},
	"con-z":           {"con-z"},
	"bt-a":            {"bt-a"},
	"bt-c":            {"bt-c", "bt-c<2"},
	"cyc-a":           {"cyc-a"},
	"selfy":           {"selfy", "selfy[x]"},
	"uses-debian":     {"uses-debian"},
	"setuptools":      {"setuptools", "setuptools<60", "setuptools>=66"},
	"wheel":           {"wheel"},
	"pip":             {"pip"},
	"chain-00":        {"chain-00", "chain-00<2"},
}

// failAtoms are lines that cannot be met, or need a source the case may
// not have: a generated set holds at most one.
var failAtoms = []string{
	"leaf-g", "sdist-only", "mid-e", "mid-f", "leaf-j", "leaf-a>=9", "leaf-h>=2", "leaf-k>=2", "wheel[test]", "leaf-f==2.0",
	"con-x", "con-y", "con-w", "con-z>=2", "bt-a>=3", "chain-11<2", "chain-11>=2", "extra-only", "fl-only", "weird",
}

// linkAtoms are lines the find-links directory alone can meet.
var linkAtoms = map[string][]string{
	"leaf-a": {"leaf-a", "leaf-a==2.*", "leaf-a<3"}, "leaf-e": {"leaf-e", "leaf-e>1.0"}, "fl-only": {"fl-only"},
	"py-new": {"py-new", "py-new>=1"},
}

// lineMarkers are markers a generated line may carry.
var lineMarkers = []string{"; python_version >= '3.8'", "; sys_platform == 'win32'", "; python_full_version < '3.0'", `; platform_machine == "x86_64"`}

// handCases are cases written out for classes a random set may miss.
var handCases = []diffCase{
	{lines: []string{"con-x", "con-y"}},
	{lines: []string{"con-w"}},
	{lines: []string{"leaf-a<2", "con-y"}},
	{lines: []string{"con-z"}},
	{lines: []string{"bt-a"}},
	{lines: []string{"bt-a>=3"}},
	{lines: []string{"chain-00", "chain-11<2"}},
	{lines: []string{"chain-00<2", "chain-11>=2"}},
	{lines: []string{"mid-d", "mid-c[slow]"}},
	{lines: []string{"mid-i"}},
	{lines: []string{"mid-c[dev-tools]"}},
	{lines: []string{"mid-c[Dev_Tools,fast]>=1"}},
	{lines: []string{"mid-f"}},
	{lines: []string{"mid-e", "leaf-a"}},
	{lines: []string{"leaf-f==2.0"}},
	{lines: []string{"leaf-g"}},
	{lines: []string{"sdist-only"}},
	{lines: []string{"leaf-j"}},
	{lines: []string{"leaf-j==1.0"}},
	{lines: []string{"leaf-k>=2"}},
	{lines: []string{"leaf-k==2.0"}},
	{lines: []string{"leaf-d"}},
	{lines: []string{"leaf-d>=0.1"}},
	{lines: []string{"leaf-l"}},
	{lines: []string{"mid-g"}},
	{lines: []string{"mid-h"}},
	{lines: []string{"mid-h"}, source: srcPEP658},
	{lines: []string{"mixed-case-name"}, source: srcPEP658},
	{lines: []string{"Mixed.Case_Name"}, source: srcPEP658},
	{lines: []string{"mid-g"}, source: srcJSON},
	{lines: []string{"uses-debian", "pip"}},
	{lines: []string{"setuptools", "wheel", "pip"}},
	{lines: []string{"wheel[test]"}},
	{lines: []string{"leaf-a", "leaf-b"}, source: srcExtra},
	{lines: []string{"extra-only"}, source: srcExtra},
	{lines: []string{"leaf-a==2.0", "fl-only", "leaf-e"}, source: srcFindLinks},
	{lines: []string{"leaf-e"}, source: srcOnlyLinks},
	{lines: []string{"py-new"}, source: srcOnlyLinks},
	{lines: []string{"py-newer"}, source: srcOnlyLinks},
	{lines: []string{"needs-py-newer", "leaf-a"}, source: srcFindLinks},
	{lines: []string{"leaf-a; sys_platform == 'win32'", "leaf-b"}},
	{lines: []string{"selfy[x]"}},
	{lines: []string{"cyc-a", "cyc-b"}},
	{lines: []string{"mid-j"}},
	{lines: []string{"leaf-a>=9"}},
	{lines: []string{"leaf-h"}},
	{lines: []string{"leaf-i"}},
	{lines: []string{"weird"}, fallback: true, mustFallback: true},
}

// corpus is the hand cases (on every source they do not name) and n
// random sets, deterministic for a seed.
func corpus(t *testing.T, n int, seed int64) []diffCase {
	t.Helper()
	var out []diffCase
	for i, c := range handCases {
		c.id = fmt.Sprintf("hand-%02d", i)
		if c.source == "" {
			c.source = srcHTML
		}
		out = append(out, c)
	}
	keys := func(m map[string][]string) []string {
		var out []string
		for k := range m {
			out = append(out, k)
		}
		sort.Strings(out)
		return out
	}
	projects, linkProjects := keys(atoms), keys(linkAtoms)
	rng := rand.New(rand.NewSource(seed))
	for len(out) < len(handCases)+n {
		c := diffCase{id: fmt.Sprintf("gen-%03d", len(out)-len(handCases)), source: sources[rng.Intn(len(sources))]}
		pool, from := atoms, projects
		if c.source == srcOnlyLinks {
			pool, from = linkAtoms, linkProjects
		}
		k := 1 + rng.Intn(min(5, len(from)))
		picked := map[string]bool{}
		for len(c.lines) < k {
			p := from[rng.Intn(len(from))]
			if picked[p] {
				continue
			}
			picked[p] = true
			line := pool[p][rng.Intn(len(pool[p]))]
			if rng.Intn(10) == 0 {
				line += lineMarkers[rng.Intn(len(lineMarkers))]
			}
			c.lines = append(c.lines, line)
		}
		if c.source != srcOnlyLinks && rng.Intn(4) == 0 {
			f := failAtoms[rng.Intn(len(failAtoms))]
			c.lines = append(c.lines, f)
			c.fallback = f == "weird"
		}
		if _, err := config.ParseRequirementArgs(c.lines); err != nil {
			continue // two spellings of one project, say
		}
		out = append(out, c)
	}
	for _, c := range out {
		_, err := config.ParseRequirementArgs(c.lines)
		require.NoError(t, err, "case %s: %s", c.id, strings.Join(c.lines, " "))
	}
	return out
}
