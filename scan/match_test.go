package scan

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/skillbuild/skillbuild/lock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testExport is the real PyPA advisory database (see testdata/README.md).
const testExport = "testdata/PyPI-pypa-20241010.zip"

var realDB = sync.OnceValues(func() (*DB, error) {
	data, err := os.ReadFile(testExport)
	if err != nil {
		return nil, err
	}
	return load(data)
})

func mustRealDB(t testing.TB) *DB {
	t.Helper()
	db, err := realDB()
	require.NoError(t, err)
	return db
}

// reported reports whether matching name==version yields a finding whose id
// or aliases include id.
func reported(t *testing.T, db *DB, id, name, ver string) bool {
	t.Helper()
	fs, err := db.Match([]Package{{Name: name, Version: ver}})
	require.NoError(t, err)
	for _, f := range fs {
		if f.ID == id || slices.Contains(f.Aliases, id) {
			return true
		}
	}
	return false
}

func TestMatchRealRecords(t *testing.T) {
	t.Parallel()
	db := mustRealDB(t)
	cases := []struct {
		why     string
		id      string
		pkg     string
		version string
		want    bool
	}{
		// PYSEC-2023-228 (pip, CVE-2023-5752): introduced 0, fixed 23.3.
		{"pip 23.0.1 is Debian 12's pip wheel", "PYSEC-2023-228", "pip", "23.0.1", true},
		{"introduced 0 covers the first release", "PYSEC-2023-228", "pip", "0.2", true},
		{"just below fixed", "PYSEC-2023-228", "pip", "23.2.1", true},
		{"pre-release of the fix is below the fix", "PYSEC-2023-228", "pip", "23.3b1", true},
		{"dev release of the fix is below the fix", "PYSEC-2023-228", "pip", "23.3.dev0", true},
		{"at fixed", "PYSEC-2023-228", "pip", "23.3", false},
		{"fixed spelled with trailing zero", "PYSEC-2023-228", "pip", "23.3.0", false},
		{"above fixed", "PYSEC-2023-228", "pip", "23.3.1", false},
		{"post-release of a fixed version", "PYSEC-2023-228", "pip", "23.3.post1", false},
		{"local version below fixed", "PYSEC-2023-228", "pip", "23.0.1+deb12u1", true},
		{"local version of the fix", "PYSEC-2023-228", "pip", "23.3+local", false},
		{"epoch 1 sorts above every epoch-0 version", "PYSEC-2023-228", "pip", "1!1.0", false},
		{"v prefix and uppercase normalize", "PYSEC-2023-228", "pip", "V23.0.1", true},

		// PYSEC-2015-7 (django): [0,1.4.18) [1.5,1.6.10) [1.7,1.7.3) in one range.
		{"first interval, just below fixed", "PYSEC-2015-7", "django", "1.4.17", true},
		{"first interval, at fixed", "PYSEC-2015-7", "django", "1.4.18", false},
		{"gap between intervals", "PYSEC-2015-7", "django", "1.4.99", false},
		{"pre-release just below second introduced", "PYSEC-2015-7", "django", "1.5rc1", false},
		{"second interval, at introduced", "PYSEC-2015-7", "django", "1.5", true},
		{"second interval, just below fixed", "PYSEC-2015-7", "django", "1.6.9", true},
		{"second interval, at fixed", "PYSEC-2015-7", "django", "1.6.10", false},
		{"third interval, at introduced", "PYSEC-2015-7", "django", "1.7", true},
		{"third interval, at fixed", "PYSEC-2015-7", "django", "1.7.3", false},
		{"above every interval", "PYSEC-2015-7", "django", "1.8", false},

		// PYSEC-2018-104 (oslo-middleware): events out of order in the data:
		// [3.9.0,3.19.1) [0,3.8.1) [3.20.0,3.23.1). They must be sorted first.
		{"unsorted events: below first fix", "PYSEC-2018-104", "oslo-middleware", "3.8.0", true},
		{"unsorted events: at first fix", "PYSEC-2018-104", "oslo-middleware", "3.8.1", false},
		{"unsorted events: at second introduced", "PYSEC-2018-104", "oslo-middleware", "3.9.0", true},
		{"unsorted events: at second fix", "PYSEC-2018-104", "oslo-middleware", "3.19.1", false},
		{"unsorted events: gap", "PYSEC-2018-104", "oslo-middleware", "3.19.5", false},
		{"unsorted events: at third introduced", "PYSEC-2018-104", "oslo-middleware", "3.20.0", true},
		{"unsorted events: at third fix", "PYSEC-2018-104", "oslo-middleware", "3.23.1", false},

		// PYSEC-2022-42969 (py): introduced 0, last_affected 1.11.0 (inclusive).
		{"last_affected: below", "PYSEC-2022-42969", "py", "1.10.0", true},
		{"last_affected: at (inclusive)", "PYSEC-2022-42969", "py", "1.11.0", true},
		{"last_affected: post-release above", "PYSEC-2022-42969", "py", "1.11.0.post1", false},
		{"last_affected: above", "PYSEC-2022-42969", "py", "1.11.1", false},

		// PYSEC-2020-15 (apache-airflow): fixed at a pre-release, 1.10.11rc1.
		{"pre-release fix: earlier pre-release", "PYSEC-2020-15", "apache-airflow", "1.10.11b1", true},
		{"pre-release fix: at", "PYSEC-2020-15", "apache-airflow", "1.10.11rc1", false},
		{"pre-release fix: final release", "PYSEC-2020-15", "apache-airflow", "1.10.11", false},
		{"pre-release fix: previous release", "PYSEC-2020-15", "apache-airflow", "1.10.10", true},

		// PYSEC-2012-1 (beaker): fixed at a post-release, 1.6.5.post1.
		{"post-release fix: the release itself", "PYSEC-2012-1", "beaker", "1.6.5", true},
		{"post-release fix: dev of the post", "PYSEC-2012-1", "beaker", "1.6.5.post1.dev0", true},
		{"post-release fix: at", "PYSEC-2012-1", "beaker", "1.6.5.post1", false},
		{"post-release fix: implicit post spelling", "PYSEC-2012-1", "beaker", "1.6.5-1", false},

		// PYSEC-2024-25 (duckdb): fixed at a dev release, 0.9.3.dev6.
		{"dev fix: below", "PYSEC-2024-25", "duckdb", "0.9.3.dev5", true},
		{"dev fix: at", "PYSEC-2024-25", "duckdb", "0.9.3.dev6", false},
		{"dev fix: pre-release above", "PYSEC-2024-25", "duckdb", "0.9.3a1", false},

		// PYSEC-2014-19 (django): a range introduced at a pre-release, [1.7a0,1.7b4).
		{"introduced pre-release: dev release before it", "PYSEC-2014-19", "django", "1.7.dev1", false},
		{"introduced pre-release: at", "PYSEC-2014-19", "django", "1.7a0", true},
		{"introduced pre-release: alpha spelled out", "PYSEC-2014-19", "django", "1.7alpha0", true},
		{"introduced pre-release: below fix", "PYSEC-2014-19", "django", "1.7b3", true},
		{"introduced pre-release: at fix", "PYSEC-2014-19", "django", "1.7b4", false},

		// PYSEC-2024-1 (gratient): no ranges, only versions: ["0.5"].
		{"explicit version only: listed", "PYSEC-2024-1", "gratient", "0.5", true},
		{"explicit version only: PEP 440 equal, not string equal", "PYSEC-2024-1", "gratient", "0.5.0", true},
		{"explicit version only: not listed", "PYSEC-2024-1", "gratient", "0.4", false},
		{"explicit version only: post-release is a different version", "PYSEC-2024-1", "gratient", "0.5.post1", false},

		// PYSEC-2019-144 (arrayfire) is withdrawn; its range and versions
		// would match 3.5.20170817.
		{"withdrawn record is never reported", "PYSEC-2019-144", "arrayfire", "3.5.20170817", false},

		// PYSEC-2020-341 names its package "jw.util" (not normalized in the data).
		{"normalization: data side", "PYSEC-2020-341", "jw-util", "2.2", true},
		{"normalization: query side", "PYSEC-2020-341", "JW_Util", "2.2", true},
		{"normalization: both, at fixed", "PYSEC-2020-341", "jw.util", "2.3", false},
		// PYSEC-2018-49 (pyyaml): introduced 0, fixed 5.1.
		{"normalization: PyPI display name", "PYSEC-2018-49", "PyYAML", "5.0", true},
		{"normalization: underscores and dots", "PYSEC-2018-49", "Py.YAML", "5.1", false},

		// Junk in the data. PYSEC-2021-371 (binderhub) is fixed at
		// "0.2.0-n653", PYSEC-2019-125 (steam) at "2019-09-12": neither is
		// PEP 440, so the fix is dropped and every version stays affected
		// (conservative) instead of crashing or silently matching nothing.
		{"junk fixed event: still affected", "PYSEC-2021-371", "binderhub", "0.2.0", true},
		{"junk fixed event: later versions too", "PYSEC-2021-371", "binderhub", "1.0.0", true},
		{"junk fixed date: affected", "PYSEC-2019-125", "steam", "1.4.4", true},
		// PYSEC-2020-341 lists "-class.-jw.util.version.Version-" among its
		// versions: skipped, the other entries still match.
		{"junk explicit version skipped", "PYSEC-2020-341", "jw.util", "1.5a0", true},
	}
	for _, tc := range cases {
		t.Run(tc.id+"/"+tc.pkg+"=="+tc.version, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tc.want, reported(t, db, tc.id, tc.pkg, tc.version), tc.why)
		})
	}
}

func TestMatchDeduplicatesAliases(t *testing.T) {
	t.Parallel()
	db := mustRealDB(t)
	// PYSEC-2021-871 and PYSEC-2021-872 (distributed) are the same issue,
	// CVE-2021-42343: one finding, the other id among its aliases.
	fs, err := db.Match([]Package{{Name: "distributed", Version: "2021.9.0"}})
	require.NoError(t, err)
	var hits []Finding
	for _, f := range fs {
		if f.ID == "PYSEC-2021-871" || slices.Contains(f.Aliases, "PYSEC-2021-871") {
			hits = append(hits, f)
		}
	}
	require.Len(t, hits, 1)
	assert.Equal(t, "PYSEC-2021-871", hits[0].ID)
	assert.Subset(t, hits[0].Aliases, []string{"PYSEC-2021-872", "CVE-2021-42343", "GHSA-hwqr-f3v9-hwxr", "GHSA-j8fq-86c5-5v2r"})
	assert.Equal(t, []string{"2021.10.0"}, hits[0].Fixed)
}

func TestMatchRejectsNonPEP440Version(t *testing.T) {
	t.Parallel()
	db := mustRealDB(t)
	_, err := db.Match([]Package{{Name: "pip", Version: "not-a-version"}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "pip")
}

// TestWholeDatabase loads every record and checks that every version listed
// in a non-withdrawn record is reported for that record.
func TestWholeDatabase(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(testExport)
	require.NoError(t, err)
	recs, err := parseExport(data)
	require.NoError(t, err)
	require.Len(t, recs, 2661)
	db := mustRealDB(t)
	// Group by package and version so each pair is matched once.
	type pv struct{ name, version string }
	want := map[pv][]string{}
	checked, junk := 0, []string{}
	for _, rec := range recs {
		if rec.Withdrawn != "" {
			continue
		}
		for _, a := range rec.Affected {
			for _, v := range a.Versions {
				if _, err := parseVersion(v); err != nil {
					junk = append(junk, rec.ID+" "+v)
					continue
				}
				checked++
				k := pv{a.Package.Name, v}
				want[k] = append(want[k], rec.ID)
			}
		}
	}
	for k, ids := range want {
		fs, err := db.Match([]Package{{Name: k.name, Version: k.version}})
		require.NoError(t, err)
		got := map[string]bool{}
		for _, f := range fs {
			got[f.ID] = true
			for _, a := range f.Aliases {
				got[a] = true
			}
		}
		for _, id := range ids {
			if !got[id] {
				t.Errorf("%s: %s==%s listed but not reported", id, k.name, k.version)
			}
		}
	}
	t.Logf("checked %d listed versions; skipped non-PEP 440: %v", checked, junk)
	assert.Greater(t, checked, 50000)
	assert.Contains(t, junk, "PYSEC-2020-341 -class.-jw.util.version.Version-")
}

func TestNormalizeNameDataNames(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"PyYAML": "pyyaml", "jw.util": "jw-util", "Foo__Bar.-baz": "foo-bar-baz", "zope.interface": "zope-interface",
	} {
		assert.Equal(t, want, lock.NormalizeName(in), in)
	}
}

// syntheticEventCases are event shapes that the 2024-10-10 snapshot does
// not contain: limit events, several ECOSYSTEM ranges in one affected
// entry, a junk introduced event, and GIT ranges next to ECOSYSTEM ones.
var syntheticEventCases = []struct {
	name    string
	aff     Affected
	version string
	want    bool
}{
	{"limit caps the range: below", Affected{Ranges: []Range{{Type: "ECOSYSTEM", Events: []Event{{Introduced: "0"}, {Limit: "2.0"}}}}}, "1.9", true},
	{"limit caps the range: at", Affected{Ranges: []Range{{Type: "ECOSYSTEM", Events: []Event{{Introduced: "0"}, {Limit: "2.0"}}}}}, "2.0", false},
	{"limit with fixed: fixed still applies", Affected{Ranges: []Range{{Type: "ECOSYSTEM", Events: []Event{{Introduced: "0"}, {Fixed: "1.5"}, {Limit: "2.0"}}}}}, "1.6", false},
	{"limit * means no limit", Affected{Ranges: []Range{{Type: "ECOSYSTEM", Events: []Event{{Introduced: "1.0"}, {Limit: "*"}}}}}, "9.0", true},
	{"second range object matches", Affected{Ranges: []Range{
		{Type: "ECOSYSTEM", Events: []Event{{Introduced: "0"}, {Fixed: "1.0"}}},
		{Type: "ECOSYSTEM", Events: []Event{{Introduced: "2.0"}, {Fixed: "2.1"}}},
	}}, "2.0.5", true},
	{"between range objects", Affected{Ranges: []Range{
		{Type: "ECOSYSTEM", Events: []Event{{Introduced: "0"}, {Fixed: "1.0"}}},
		{Type: "ECOSYSTEM", Events: []Event{{Introduced: "2.0"}, {Fixed: "2.1"}}},
	}}, "1.5", false},
	{"GIT range ignored", Affected{Ranges: []Range{{Type: "GIT", Events: []Event{{Introduced: "0"}, {Fixed: "abc123"}}}}}, "1.0", false},
	{"junk introduced: conservatively affected", Affected{Ranges: []Range{{Type: "ECOSYSTEM", Events: []Event{{Introduced: "junk!"}, {Fixed: "1.0"}}}}}, "5.0", true},
	{"last_affected and fixed in one range", Affected{Ranges: []Range{{Type: "ECOSYSTEM", Events: []Event{{Introduced: "0"}, {LastAffected: "1.2"}, {Introduced: "2.0"}, {Fixed: "2.3"}}}}}, "1.3", false},
	{"epoch orders above", Affected{Ranges: []Range{{Type: "ECOSYSTEM", Events: []Event{{Introduced: "1!0"}}}}}, "2024.1", false},
	{"epoch introduced, at", Affected{Ranges: []Range{{Type: "ECOSYSTEM", Events: []Event{{Introduced: "1!0"}}}}}, "1!0.1", true},
	{"listed version, other spelling", Affected{Versions: []string{"1.0", "2.0"}}, "1.0.0", true},
	{"between listed versions", Affected{Versions: []string{"1.0", "2.0"}}, "1.5", false},
	{"above every listed version", Affected{Versions: []string{"1.0", "2.0"}}, "3.0", false},
	{"last_affected: at", Affected{Ranges: []Range{{Type: "ECOSYSTEM", Events: []Event{{Introduced: "1.0"}, {LastAffected: "1.2"}}}}}, "1.2", true},
	{"last_affected: above", Affected{Ranges: []Range{{Type: "ECOSYSTEM", Events: []Event{{Introduced: "1.0"}, {LastAffected: "1.2"}}}}}, "1.2.post1", false},
	{"fixed: just below", Affected{Ranges: []Range{{Type: "ECOSYSTEM", Events: []Event{{Introduced: "1.0"}, {Fixed: "1.2"}}}}}, "1.2rc1", true},
	{"introduced: just below", Affected{Ranges: []Range{{Type: "ECOSYSTEM", Events: []Event{{Introduced: "1.0"}, {Fixed: "1.2"}}}}}, "1.0.dev0", false},
	{"introduced, no fix: far above", Affected{Ranges: []Range{{Type: "ECOSYSTEM", Events: []Event{{Introduced: "1.0"}}}}}, "99.0", true},
	{"two limits: below the higher", Affected{Ranges: []Range{{Type: "ECOSYSTEM", Events: []Event{{Introduced: "0"}, {Limit: "1.0"}, {Limit: "3.0"}}}}}, "2.0", true},
}

// TestMatchSyntheticEvents matches the synthetic event shapes with the
// compiled records (the whole-export matcher).
func TestMatchSyntheticEvents(t *testing.T) {
	t.Parallel()
	rec := &Record{ID: "TEST-1"}
	for _, tc := range syntheticEventCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := compile(rec, &tc.aff)
			v, err := parseVersion(tc.version)
			require.NoError(t, err)
			assert.Equal(t, tc.want, e.affects(v))
		})
	}
}

// TestImportBoundaries keeps scan/ away from the build engine and runtime.
func TestImportBoundaries(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	fset := token.NewFileSet()
	for _, f := range files {
		af, err := parser.ParseFile(fset, f, nil, parser.ImportsOnly)
		require.NoError(t, err)
		for _, imp := range af.Imports {
			p := strings.Trim(imp.Path.Value, `"`)
			for _, banned := range []string{"/build", "/runtime", "/llb", "github.com/containerd/containerd", "github.com/moby/buildkit"} {
				if strings.HasPrefix(banned, "/") {
					banned = "github.com/skillbuild/skillbuild" + banned
				}
				assert.False(t, p == banned || strings.HasPrefix(p, banned+"/"), "%s imports %s", f, p)
			}
		}
	}
}
