package scan

import (
	"fmt"
	"os"
	"sort"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPkgIndexMatchesWholeExport: a database opened through its
// per-package index reports exactly what the whole export loaded in
// memory reports, for every package at every version its records name
// and at versions just below and above a quarter of them.
func TestPkgIndexMatchesWholeExport(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	_, err := Import(root, testExport)
	require.NoError(t, err)
	indexed, err := Open(root)
	require.NoError(t, err)
	require.NotNil(t, indexed.pkgs, "Open after import reads the per-package index")
	whole, err := OpenFile(testExport)
	require.NoError(t, err)
	require.Nil(t, whole.pkgs)
	assert.Equal(t, whole.Records(), indexed.Records())

	var pkgs []Package
	for name, es := range whole.index {
		vs := map[string]bool{"0": true, "999999": true}
		for _, e := range es {
			for _, v := range e.aff.Versions {
				vs[v] = true
			}
			for _, r := range e.aff.Ranges {
				for _, ev := range r.Events {
					vs[ev.Introduced], vs[ev.Fixed], vs[ev.LastAffected] = true, true, true
				}
			}
		}
		names := make([]string, 0, len(vs))
		for v := range vs {
			names = append(names, v)
		}
		sort.Strings(names)
		for i, v := range names {
			// Each version, and for every fourth one versions just below
			// and just above it that the records do not name: the index
			// places those between its ranks.
			qs := []string{v}
			if i%4 == 0 {
				qs = append(qs, v+".dev0", v+".post1")
			}
			for _, q := range qs {
				if _, err := parseVersion(q); v != "" && err == nil {
					pkgs = append(pkgs, Package{Name: name, Version: q})
				}
			}
		}
	}
	sort.Slice(pkgs, func(i, j int) bool {
		return pkgs[i].Name+" "+pkgs[i].Version < pkgs[j].Name+" "+pkgs[j].Version
	})
	require.Greater(t, len(pkgs), 1000)
	want, err := whole.Match(pkgs)
	require.NoError(t, err)
	got, err := indexed.Match(pkgs)
	require.NoError(t, err)
	require.NotEmpty(t, want)
	// The first difference, not a diff of thousands of findings.
	for i := range min(len(want), len(got)) {
		require.Equal(t, want[i], got[i], "finding %d of %d", i, len(want))
	}
	require.Len(t, got, len(want))
}

// TestPkgIndexCorruptBlobFails: a blob that does not match its checksum
// is an error that says how to fix it, never a silently empty verdict.
func TestPkgIndexCorruptBlobFails(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	_, err := Import(root, testExport)
	require.NoError(t, err)
	db, err := Open(root)
	require.NoError(t, err)
	off, n, _, ok := db.pkgs.span("django")
	require.True(t, ok)

	f, err := os.OpenFile(pkgIndexPath(root), os.O_RDWR, 0)
	require.NoError(t, err)
	_, err = f.WriteAt([]byte("X"), db.pkgs.base+off+int64(n/2))
	require.NoError(t, err)
	require.NoError(t, f.Close())

	db, err = Open(root)
	require.NoError(t, err)
	_, err = db.Match([]Package{{Name: "Django", Version: "1.0"}})
	require.ErrorIs(t, err, errdefs.ErrFailedPrecondition)
	assert.Contains(t, err.Error(), "db update")
}

// TestPkgIndexIgnoredWhenExportChanged: an index is used only with the
// export it was made from; a stale one falls back to loading (and
// verifying) the export, and is rewritten for the next Open.
func TestPkgIndexIgnoredWhenExportChanged(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	_, err := Import(root, testExport)
	require.NoError(t, err)
	stale, err := os.ReadFile(pkgIndexPath(root))
	require.NoError(t, err)

	other := t.TempDir() + "/other.zip"
	require.NoError(t, os.WriteFile(other, makeZip(t, map[string]string{"PYSEC-0000-1.json": goodRecord}), 0o644))
	_, err = Import(root, other)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(pkgIndexPath(root), stale, 0o644))

	db, err := Open(root)
	require.NoError(t, err)
	assert.Nil(t, db.pkgs, "an index of another export is not used")
	fs, err := db.Match([]Package{{Name: "demo-pkg", Version: "0.5"}})
	require.NoError(t, err)
	assert.Len(t, fs, 1)

	db, err = Open(root)
	require.NoError(t, err)
	require.NotNil(t, db.pkgs, "the next Open reads the rewritten index")
	fs, err = db.Match([]Package{{Name: "demo-pkg", Version: "0.5"}, {Name: "django", Version: "1.0"}})
	require.NoError(t, err)
	assert.Len(t, fs, 1)
}

// TestRankedMatchSyntheticEvents: the index's matcher (versions as ranks)
// agrees with the compiled records on the synthetic event shapes, each
// alone in its package and all of them in one package (ranks shared by
// every entry).
func TestRankedMatchSyntheticEvents(t *testing.T) {
	t.Parallel()
	var all []entry
	for i, tc := range syntheticEventCases {
		rec := &Record{ID: fmt.Sprintf("TEST-%d", i)}
		all = append(all, compile(rec, &tc.aff))
	}
	for i, tc := range syntheticEventCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v, err := parseVersion(tc.version)
			require.NoError(t, err)
			alone, err := matchPkg(encodePkg(all[i:i+1]), "demo", tc.version, v)
			require.NoError(t, err)
			assert.Equal(t, tc.want, len(alone) == 1, "alone in its package")

			together, err := matchPkg(encodePkg(all), "demo", tc.version, v)
			require.NoError(t, err)
			var want []string
			for j := range all {
				if all[j].affects(v) {
					want = append(want, all[j].rec.ID)
				}
			}
			var got []string
			for _, f := range together {
				got = append(got, f.ID)
			}
			assert.Equal(t, want, got, "with every other case in the package")
		})
	}
}

// TestPkgBlobTruncatedFails: a blob cut short anywhere is an error, never a
// panic or a silently shorter list of findings.
func TestPkgBlobTruncatedFails(t *testing.T) {
	t.Parallel()
	whole := mustRealDB(t)
	blob := encodePkg(whole.index["django"])
	v, err := parseVersion("1.0")
	require.NoError(t, err)
	full, err := matchPkg(blob, "django", "1.0", v)
	require.NoError(t, err)
	require.NotEmpty(t, full)
	step := max(1, len(blob)/2000)
	for n := 0; n < len(blob); n += step {
		_, err := matchPkg(blob[:n], "django", "1.0", v)
		require.Error(t, err, "blob cut at %d of %d bytes", n, len(blob))
	}
}

// TestPkgIndexOlderFormatIgnored: an index written by an older skillbuild
// (another format) is not read; Open loads the export and rewrites the
// index for the next Open.
func TestPkgIndexOlderFormatIgnored(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	m, err := Import(root, testExport)
	require.NoError(t, err)
	st, err := os.Stat(zipPath(root))
	require.NoError(t, err)
	old := fmt.Sprintf("skillbuild-osv-index 1 %s %d %d 0\n", m.SHA256, st.Size(), st.ModTime().UnixNano())
	require.NoError(t, os.WriteFile(pkgIndexPath(root), []byte(old), 0o644))

	db, err := Open(root)
	require.NoError(t, err)
	assert.Nil(t, db.pkgs, "an index of another format is not used")
	fs, err := db.Match([]Package{{Name: "django", Version: "1.0"}})
	require.NoError(t, err)
	assert.NotEmpty(t, fs)

	db, err = Open(root)
	require.NoError(t, err)
	require.NotNil(t, db.pkgs, "the next Open reads the rewritten index")
}
