package scan

import (
	"os"
	"sort"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPkgIndexMatchesWholeExport: a database opened through its
// per-package index reports exactly what the whole export loaded in
// memory reports, for every package at every version its records name.
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
		for v := range vs {
			if _, err := parseVersion(v); v != "" && err == nil {
				pkgs = append(pkgs, Package{Name: name, Version: v})
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
	assert.Equal(t, want, got)
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
