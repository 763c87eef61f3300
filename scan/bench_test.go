package scan

import (
	"os"
	"sort"
	"testing"
	"time"

	"github.com/skillbuild/skillbuild/config"
)

// BenchmarkLoad measures parsing and indexing the full test export.
func BenchmarkLoad(b *testing.B) {
	data, err := os.ReadFile(testExport)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := load(data); err != nil {
			b.Fatal(err)
		}
	}
}

// affected200 are the 200 packages with the most entries in db, each at
// a version listed as affected (the worst case: many hits to merge and
// classify).
func affected200(b *testing.B, db *DB) []Package {
	names := make([]string, 0, len(db.index))
	for n := range db.index {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		if len(db.index[names[i]]) != len(db.index[names[j]]) {
			return len(db.index[names[i]]) > len(db.index[names[j]])
		}
		return names[i] < names[j]
	})
	var pkgs []Package
	for _, n := range names {
		if len(pkgs) == 200 {
			break
		}
		for _, e := range db.index[n] {
			if len(e.aff.Versions) > 0 {
				if _, err := parseVersion(e.aff.Versions[len(e.aff.Versions)-1]); err == nil {
					pkgs = append(pkgs, Package{Name: n, Version: e.aff.Versions[len(e.aff.Versions)-1]})
					break
				}
			}
		}
	}
	if len(pkgs) != 200 {
		b.Fatalf("only %d packages", len(pkgs))
	}
	return pkgs
}

// BenchmarkCheck200 measures one Check of 200 pinned packages (see
// affected200) against the whole export in memory.
func BenchmarkCheck200(b *testing.B) {
	db := mustRealDB(b)
	pkgs := affected200(b, db)
	dbc := *db
	dbc.manifest.CheckedAt = now
	policy := config.Policy{AllowStaleDB: true}
	b.ResetTimer()
	var findings int
	for b.Loop() {
		v, _ := Check(&dbc, pkgs, policy, now)
		findings = len(v.Findings)
	}
	b.ReportMetric(float64(findings), "findings")
}

// BenchmarkCheck200Clean scans the same 200 names at a version above every
// advisory (no findings): the common case of an up-to-date set.
func BenchmarkCheck200Clean(b *testing.B) {
	db := mustRealDB(b)
	names := make([]string, 0, len(db.index))
	for n := range db.index {
		names = append(names, n)
	}
	sort.Strings(names)
	var pkgs []Package
	for _, n := range names[:200] {
		pkgs = append(pkgs, Package{Name: n, Version: "99999.0"})
	}
	dbc := *db
	dbc.manifest.CheckedAt = now
	b.ResetTimer()
	var findings int
	for b.Loop() {
		v, _ := Check(&dbc, pkgs, config.Policy{}, now)
		findings = len(v.Findings) // advisories with no fix still match
	}
	b.ReportMetric(float64(findings), "findings")
}

// BenchmarkOpenIndexedCheck200 is what a scan of 200 pins costs through
// the per-package index: Open (manifest and index table) and one Check
// that reads only those 200 packages, each from a fresh Open.
func BenchmarkOpenIndexedCheck200(b *testing.B) {
	whole := mustRealDB(b)
	names := make([]string, 0, len(whole.index))
	for n := range whole.index {
		names = append(names, n)
	}
	sort.Strings(names)
	var pkgs []Package
	for _, n := range names[:200] {
		pkgs = append(pkgs, Package{Name: n, Version: "0.0.1"})
	}
	benchOpenIndexedCheck(b, pkgs)
}

// BenchmarkOpenIndexedCheck200Affected is BenchmarkOpenIndexedCheck200
// for the worst case (see affected200): most of the database is read.
func BenchmarkOpenIndexedCheck200Affected(b *testing.B) {
	benchOpenIndexedCheck(b, affected200(b, mustRealDB(b)))
}

// benchOpenIndexedCheck times Open of an imported test export and one
// Check of pkgs through its per-package index.
func benchOpenIndexedCheck(b *testing.B, pkgs []Package) {
	root := b.TempDir()
	if _, err := Import(root, testExport); err != nil {
		b.Fatal(err)
	}
	policy := config.Policy{AllowStaleDB: true}
	b.ResetTimer()
	var findings int
	for b.Loop() {
		db, err := Open(root)
		if err != nil {
			b.Fatal(err)
		}
		if db.pkgs == nil {
			b.Fatal("Open did not use the per-package index")
		}
		v, _ := Check(db, pkgs, policy, time.Now())
		findings = len(v.Findings)
	}
	b.ReportMetric(float64(findings), "findings")
}
