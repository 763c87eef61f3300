package scan

import (
	"archive/zip"
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/skillbuild/skillbuild/config"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const testExportSHA = "f992db1e0799a23ec157f9700f1db57f9e79aa824d2c48a1114e696ce2efbfaf"

// makeZip builds an export from member name → content.
func makeZip(t *testing.T, members map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, body := range members {
		w, err := zw.Create(name)
		require.NoError(t, err)
		_, err = w.Write([]byte(body))
		require.NoError(t, err)
	}
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

const goodRecord = `{"id":"PYSEC-0000-1","modified":"2024-01-02T03:04:05Z","affected":[{"package":{"ecosystem":"PyPI","name":"Demo_Pkg"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"1.0"}]}]}]}`

func TestImportOpenStatus(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	_, err := Status(root)
	require.ErrorIs(t, err, errdefs.ErrNotFound)

	m, err := Import(root, testExport)
	require.NoError(t, err)
	assert.Equal(t, testExportSHA, m.SHA256)
	assert.Equal(t, 2661, m.Records)
	assert.Equal(t, 10, m.Withdrawn)
	assert.False(t, m.NewestModified.IsZero())
	assert.WithinDuration(t, time.Now(), m.FetchedAt, time.Hour)

	st, err := Status(root)
	require.NoError(t, err)
	assert.Equal(t, m.SHA256, st.SHA256)

	db, err := Open(root)
	require.NoError(t, err)
	assert.Equal(t, 2661, db.Records())
	v, err := Check(db, []Package{{Name: "pip", Version: "23.0.1"}}, config.Policy{}, time.Now())
	var ve *VulnerableError
	require.ErrorAs(t, err, &ve)
	assert.Equal(t, "PYSEC-2023-228", v.Findings[0].ID)
}

func TestOpenMissingAndCorrupt(t *testing.T) {
	t.Parallel()
	t.Run("missing", func(t *testing.T) {
		t.Parallel()
		_, err := Open(t.TempDir())
		require.ErrorIs(t, err, errdefs.ErrNotFound)
		assert.Contains(t, err.Error(), "skillbuild db update")
		assert.Contains(t, err.Error(), "skillbuild db import FILE")
	})
	t.Run("zip replaced behind the manifest", func(t *testing.T) {
		t.Parallel()
		root := t.TempDir()
		_, err := Import(root, testExport)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(root, "osv", "PyPI.zip"), []byte("garbage"), 0o644))
		_, err = Open(root)
		require.ErrorIs(t, err, errdefs.ErrFailedPrecondition)
		assert.Contains(t, err.Error(), "corrupt")
		assert.Contains(t, err.Error(), "skillbuild db update")
	})
	t.Run("zip deleted", func(t *testing.T) {
		t.Parallel()
		root := t.TempDir()
		_, err := Import(root, testExport)
		require.NoError(t, err)
		require.NoError(t, os.Remove(filepath.Join(root, "osv", "PyPI.zip")))
		_, err = Open(root)
		require.ErrorIs(t, err, errdefs.ErrNotFound)
	})
	t.Run("manifest corrupt", func(t *testing.T) {
		t.Parallel()
		root := t.TempDir()
		require.NoError(t, os.MkdirAll(filepath.Join(root, "osv"), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(root, "osv", "manifest.json"), []byte("{"), 0o644))
		_, err := Open(root)
		require.ErrorIs(t, err, errdefs.ErrFailedPrecondition)
	})
}

func TestImportRejectsBadExports(t *testing.T) {
	t.Parallel()
	cases := map[string][]byte{
		"not a zip":       []byte("this is not a zip file"),
		"empty zip":       makeZip(t, map[string]string{}),
		"truncated zip":   func() []byte { b, _ := os.ReadFile(testExport); return b[:len(b)/2] }(),
		"bad json":        makeZip(t, map[string]string{"PYSEC-0000-1.json": "{"}),
		"id mismatch":     makeZip(t, map[string]string{"PYSEC-0000-2.json": goodRecord}),
		"not json member": makeZip(t, map[string]string{"PYSEC-0000-1.yaml": goodRecord}),
		"wrong ecosystem": makeZip(t, map[string]string{"PYSEC-0000-1.json": `{"id":"PYSEC-0000-1","affected":[{"package":{"ecosystem":"npm","name":"x"}}]}`}),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			root, dir := t.TempDir(), t.TempDir()
			good := filepath.Join(dir, "good.zip")
			require.NoError(t, os.WriteFile(good, makeZip(t, map[string]string{"PYSEC-0000-1.json": goodRecord}), 0o644))
			installed, err := Import(root, good)
			require.NoError(t, err)
			file := filepath.Join(dir, "export.zip")
			require.NoError(t, os.WriteFile(file, data, 0o644))
			_, err = Import(root, file)
			require.ErrorIs(t, err, errdefs.ErrFailedPrecondition)
			// The installed database is untouched.
			m, err := Status(root)
			require.NoError(t, err)
			assert.Equal(t, installed.SHA256, m.SHA256)
			_, err = Open(root)
			require.NoError(t, err)
		})
	}
}

func TestImportSmallExport(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	file := filepath.Join(t.TempDir(), "export.zip")
	require.NoError(t, os.WriteFile(file, makeZip(t, map[string]string{"PYSEC-0000-1.json": goodRecord}), 0o644))
	m, err := Import(root, file)
	require.NoError(t, err)
	assert.Equal(t, 1, m.Records)
	assert.Equal(t, time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC), m.NewestModified)
	db, err := Open(root)
	require.NoError(t, err)
	fs, err := db.Match([]Package{{Name: "demo.pkg", Version: "0.9"}})
	require.NoError(t, err)
	require.Len(t, fs, 1)
	assert.Equal(t, SeverityUnknown, fs[0].Severity)
}

// exportServer serves the test export on 127.0.0.1 with validators and
// answers conditional requests with 304.
func exportServer(t *testing.T, data []byte) (*httptest.Server, *atomic.Int32, *atomic.Int32) {
	t.Helper()
	var full, notModified atomic.Int32
	lastMod := time.Date(2024, 10, 10, 17, 35, 5, 0, time.UTC)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/PyPI/all.zip" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("ETag", `"v1"`)
		if r.Header.Get("If-None-Match") == `"v1"` && r.Header.Get("If-Modified-Since") == lastMod.Format(http.TimeFormat) {
			notModified.Add(1)
			w.WriteHeader(http.StatusNotModified)
			return
		}
		full.Add(1)
		w.Header().Set("Last-Modified", lastMod.Format(http.TimeFormat))
		_, _ = w.Write(data)
	}))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &full, &notModified
}

func TestUpdate(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(testExport)
	require.NoError(t, err)
	srv, full, notModified := exportServer(t, data)
	url := srv.URL + "/PyPI/all.zip"
	root := t.TempDir()
	ctx := context.Background()

	m, changed, err := Update(ctx, root, url, srv.Client())
	require.NoError(t, err)
	assert.True(t, changed)
	assert.Equal(t, url, m.Source)
	assert.Equal(t, testExportSHA, m.SHA256)
	assert.Equal(t, 2661, m.Records)
	assert.Equal(t, `"v1"`, m.ETag)

	m2, changed, err := Update(ctx, root, url, srv.Client())
	require.NoError(t, err)
	assert.False(t, changed)
	assert.Equal(t, m.SHA256, m2.SHA256)
	assert.Equal(t, m.FetchedAt, m2.FetchedAt)
	assert.False(t, m2.CheckedAt.Before(m.CheckedAt))
	assert.Equal(t, int32(1), full.Load())
	assert.Equal(t, int32(1), notModified.Load())

	_, err = Open(root)
	require.NoError(t, err)

	// A damaged local copy is downloaded again, not revalidated.
	require.NoError(t, os.WriteFile(filepath.Join(root, "osv", "PyPI.zip"), []byte("garbage"), 0o644))
	m3, changed, err := Update(ctx, root, url, srv.Client())
	require.NoError(t, err)
	assert.True(t, changed)
	assert.Equal(t, testExportSHA, m3.SHA256)
	assert.Equal(t, int32(2), full.Load())
	_, err = Open(root)
	require.NoError(t, err)
}

func TestUpdateFailuresKeepDatabase(t *testing.T) {
	t.Parallel()
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/500":
			http.Error(w, "boom", http.StatusInternalServerError)
		case "/404":
			http.NotFound(w, r)
		default:
			_, _ = w.Write([]byte("not a zip"))
		}
	}))
	t.Cleanup(bad.Close)
	cases := map[string]error{
		"/500":     errdefs.ErrUnavailable,
		"/404":     errdefs.ErrFailedPrecondition,
		"/garbage": errdefs.ErrFailedPrecondition,
	}
	for path, want := range cases {
		t.Run(path, func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			_, err := Import(root, testExport)
			require.NoError(t, err)
			_, _, err = Update(context.Background(), root, bad.URL+path, bad.Client())
			require.ErrorIs(t, err, want)
			m, err := Status(root)
			require.NoError(t, err)
			assert.Equal(t, testExportSHA, m.SHA256)
		})
	}
	t.Run("connection refused is unavailable", func(t *testing.T) {
		t.Parallel()
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := l.Addr().String()
		require.NoError(t, l.Close())
		_, _, err = Update(context.Background(), t.TempDir(), "http://"+addr+"/all.zip", nil)
		require.ErrorIs(t, err, errdefs.ErrUnavailable)
	})
}

func TestOpenedDBStaleness(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	m, err := Import(root, testExport)
	require.NoError(t, err)
	db, err := Open(root)
	require.NoError(t, err)
	later := m.CheckedAt.Add(31 * 24 * time.Hour)
	_, err = Check(db, []Package{{Name: "six", Version: "1.16.0"}}, config.Policy{}, later)
	require.ErrorIs(t, err, errdefs.ErrFailedPrecondition)
	v, err := Check(db, []Package{{Name: "six", Version: "1.16.0"}}, config.Policy{AllowStaleDB: true}, later)
	require.NoError(t, err)
	assert.True(t, v.DB.StaleAllowed)
}
