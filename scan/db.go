package scan

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"time"

	"github.com/containerd/errdefs"
	"github.com/skillbuild/skillbuild/config"
	"github.com/skillbuild/skillbuild/lock"
)

// DefaultURL is osv.dev's bulk export of every PyPI advisory.
const DefaultURL = "https://osv-vulnerabilities.storage.googleapis.com/PyPI/all.zip"

// maxDownload caps the size of a downloaded export (the real one is tens of MB).
const maxDownload = 1 << 30

// fixHint tells the user how to get a usable database.
const fixHint = "run `skillbuild db update` (or `skillbuild db import FILE` offline)"

// Manifest describes the installed database. It is stored as
// <root>/osv/manifest.json next to <root>/osv/PyPI.zip.
type Manifest struct {
	// Source is the URL or file the export came from.
	Source string `json:"source"`
	// FetchedAt is when the current bytes were downloaded or imported.
	FetchedAt time.Time `json:"fetched_at"`
	// CheckedAt is when the source last confirmed them current (a 304 on
	// update moves it); the database's age counts from here.
	CheckedAt time.Time `json:"checked_at"`
	// SHA256 is the hex digest of PyPI.zip.
	SHA256 string `json:"sha256"`
	// Size is the size of PyPI.zip in bytes.
	Size int64 `json:"size"`
	// Records is the number of OSV records; Withdrawn how many of them are withdrawn.
	Records   int `json:"records"`
	Withdrawn int `json:"withdrawn"`
	// NewestModified is the newest `modified` time among the records.
	NewestModified time.Time `json:"newest_modified"`
	// ETag and LastModified are the validators of the last download, sent
	// back as If-None-Match / If-Modified-Since.
	ETag         string `json:"etag,omitempty"`
	LastModified string `json:"last_modified,omitempty"`
}

// DB is a loaded database, indexed by PEP 503 normalized project name:
// either the whole export in memory (index), or the per-package index on
// disk that a scan reads one package at a time (pkgs).
type DB struct {
	manifest Manifest
	index    map[string][]entry
	pkgs     *pkgIndex
	records  int
}

// matchPackage returns the findings (not yet merged) of the package name
// (normalized) at version v (raw as given). buf is scratch space for
// reading the index, reused across calls.
func (db *DB) matchPackage(name, raw string, v version, buf *[]byte) ([]Finding, error) {
	if db.pkgs != nil {
		return db.pkgs.match(name, raw, v, buf)
	}
	var hits []Finding
	es := db.index[name]
	for i := range es {
		e := &es[i]
		if e.rec.Withdrawn != "" || !e.affects(v) {
			continue
		}
		hits = append(hits, Finding{
			ID: e.rec.ID, Aliases: slices.Clone(e.rec.Aliases), Package: name, Version: raw,
			Fixed: slices.Clone(e.fixed), Severity: e.severity, CVSS: e.cvss, Summary: e.rec.Summary,
		})
	}
	return hits, nil
}

// Manifest returns the manifest of the loaded database.
func (db *DB) Manifest() Manifest { return db.manifest }

// Records returns the number of records loaded (withdrawn ones included).
func (db *DB) Records() int { return db.records }

// Dir returns the database directory under a state root.
func Dir(root string) string { return filepath.Join(root, "osv") }

func zipPath(root string) string      { return filepath.Join(Dir(root), "PyPI.zip") }
func manifestPath(root string) string { return filepath.Join(Dir(root), "manifest.json") }

// Status returns the manifest of the database installed under root.
func Status(root string) (Manifest, error) {
	b, err := os.ReadFile(manifestPath(root))
	if errors.Is(err, fs.ErrNotExist) {
		return Manifest{}, fmt.Errorf("no vulnerability database under %s: %s: %w", Dir(root), fixHint, errdefs.ErrNotFound)
	}
	if err != nil {
		return Manifest{}, fmt.Errorf("read vulnerability database manifest: %w", err)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return Manifest{}, fmt.Errorf("vulnerability database manifest %s is corrupt (%v): %s: %w", manifestPath(root), err, fixHint, errdefs.ErrFailedPrecondition)
	}
	return m, nil
}

// Open opens the database installed under root: its per-package index
// when that was made from the installed export (a scan then reads only the
// packages it checks), the whole export otherwise. A missing database is
// ErrNotFound, an empty or corrupt one (including a zip whose digest does
// not match the manifest) ErrFailedPrecondition; both say how to fix it.
func Open(root string) (*DB, error) {
	m, err := Status(root)
	if err != nil {
		return nil, err
	}
	idx, ok, err := openPkgIndex(pkgIndexPath(root), zipPath(root), m.SHA256)
	if err != nil {
		return nil, err
	}
	if ok {
		db := &DB{manifest: m, pkgs: idx, records: m.Records}
		runtime.AddCleanup(db, func(f *os.File) { f.Close() }, idx.f)
		return db, nil
	}
	return openExport(root)
}

// openExport loads the whole installed export, and leaves its per-package
// index for the next Open (an export installed by an older skillbuild has
// none).
func openExport(root string) (*DB, error) {
	var (
		m    Manifest
		data []byte
		err  error
	)
	// An update replaces the zip, then the manifest: a reader caught in
	// between sees a mismatch once, and a consistent pair on the retry.
	for attempt := 0; attempt < 2; attempt++ {
		if m, err = Status(root); err != nil {
			return nil, err
		}
		data, err = os.ReadFile(zipPath(root))
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("vulnerability database %s is missing: %s: %w", zipPath(root), fixHint, errdefs.ErrNotFound)
		}
		if err != nil {
			return nil, fmt.Errorf("read vulnerability database: %w", err)
		}
		if sum := digest(data); sum != m.SHA256 {
			err = fmt.Errorf("vulnerability database %s is corrupt (sha256 %s, manifest says %s): %s: %w", zipPath(root), sum, m.SHA256, fixHint, errdefs.ErrFailedPrecondition)
			continue
		}
		break
	}
	if err != nil {
		return nil, err
	}
	db, err := load(data)
	if err != nil {
		return nil, fmt.Errorf("vulnerability database %s is unusable: %w (%s)", zipPath(root), err, fixHint)
	}
	db.manifest = m
	writePkgIndex(pkgIndexPath(root), db.index, zipPath(root), m.SHA256) //nolint:errcheck // an optimisation: the next Open loads the export again
	return db, nil
}

// OpenFile loads an export directly from a file, without installing it.
// Its age counts from the file's modification time.
func OpenFile(file string) (*DB, error) {
	data, err := config.ReadInput(file, config.MaxDBSize)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("vulnerability database %s: %w", file, errdefs.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read vulnerability database: %w", err)
	}
	st, err := os.Stat(file)
	if err != nil {
		return nil, err
	}
	db, err := load(data)
	if err != nil {
		return nil, fmt.Errorf("vulnerability database %s: %w", file, err)
	}
	db.manifest = db.describe(file, data, st.ModTime().UTC())
	return db, nil
}

// load parses and indexes an export.
func load(data []byte) (*DB, error) {
	recs, err := parseExport(data)
	if err != nil {
		return nil, err
	}
	db := &DB{index: make(map[string][]entry), records: len(recs)}
	for _, rec := range recs {
		for i := range rec.Affected {
			a := &rec.Affected[i]
			name := lock.NormalizeName(a.Package.Name)
			db.index[name] = append(db.index[name], compile(rec, a))
		}
	}
	db.manifest.Records = len(recs)
	for _, rec := range recs {
		if rec.Withdrawn != "" {
			db.manifest.Withdrawn++
		}
		if t, ok := modifiedTime(rec.Modified); ok && t.After(db.manifest.NewestModified) {
			db.manifest.NewestModified = t.UTC()
		}
	}
	return db, nil
}

// describe fills a manifest for data loaded into db.
func (db *DB) describe(source string, data []byte, at time.Time) Manifest {
	m := db.manifest
	m.Source = source
	m.FetchedAt, m.CheckedAt = at, at
	m.SHA256 = digest(data)
	m.Size = int64(len(data))
	return m
}

func digest(data []byte) string {
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

// Import verifies the export in file and installs it under root, replacing
// any database there atomically.
func Import(root, file string) (Manifest, error) {
	data, err := config.ReadInput(file, config.MaxDBSize)
	if errors.Is(err, fs.ErrNotExist) {
		return Manifest{}, fmt.Errorf("import %s: %w", file, errdefs.ErrNotFound)
	}
	if err != nil {
		return Manifest{}, fmt.Errorf("import %s: %w", file, err)
	}
	abs, err := filepath.Abs(file)
	if err != nil {
		abs = file
	}
	return install(root, abs, data, time.Now().UTC(), "", "")
}

// install verifies data, then atomically replaces the zip and the manifest.
func install(root, source string, data []byte, now time.Time, etag, lastModified string) (Manifest, error) {
	db, err := load(data)
	if err != nil {
		return Manifest{}, fmt.Errorf("refusing export from %s: %w", source, err)
	}
	m := db.describe(source, data, now)
	m.ETag, m.LastModified = etag, lastModified
	if err := os.MkdirAll(Dir(root), 0o755); err != nil {
		return Manifest{}, fmt.Errorf("create database dir: %w", err)
	}
	if err := writeAtomic(zipPath(root), data); err != nil {
		return Manifest{}, err
	}
	// The index before the manifest: it names the export it was made
	// from, so until the manifest names that export too, readers ignore it.
	if err := writePkgIndex(pkgIndexPath(root), db.index, zipPath(root), m.SHA256); err != nil {
		return Manifest{}, err
	}
	if err := writeManifest(root, m); err != nil {
		return Manifest{}, err
	}
	return m, nil
}

func writeManifest(root string, m Manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(manifestPath(root), append(b, '\n'))
}

// writeAtomic writes data to a temporary file beside path, syncs it and
// renames it over path.
func writeAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Chmod(tmp, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// Update downloads the export at url (DefaultURL if empty) with client
// (http.DefaultClient if nil) and installs it under root. It sends the
// validators of the installed database; a 304 leaves the data untouched,
// moves CheckedAt, and returns changed=false. Network failures and 5xx
// answers are ErrUnavailable (try again).
func Update(ctx context.Context, root, url string, client *http.Client) (m Manifest, changed bool, err error) {
	if url == "" {
		url = DefaultURL
	}
	if client == nil {
		client = http.DefaultClient
	}
	old, oldErr := Status(root)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return Manifest{}, false, fmt.Errorf("update from %s: %w: %w", url, err, errdefs.ErrInvalidArgument)
	}
	// Send validators only for an intact copy of the same source: a 304
	// must never bless a damaged or different file.
	haveOld := oldErr == nil && old.Source == url
	if haveOld {
		data, err := os.ReadFile(zipPath(root))
		haveOld = err == nil && digest(data) == old.SHA256
	}
	if haveOld {
		if old.ETag != "" {
			req.Header.Set("If-None-Match", old.ETag)
		}
		if old.LastModified != "" {
			req.Header.Set("If-Modified-Since", old.LastModified)
		}
	}
	resp, err := client.Do(req)
	if err != nil {
		return Manifest{}, false, fmt.Errorf("update from %s: %w: %w", url, err, errdefs.ErrUnavailable)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotModified && haveOld:
		old.CheckedAt = time.Now().UTC()
		if err := writeManifest(root, old); err != nil {
			return Manifest{}, false, err
		}
		return old, false, nil
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
		return Manifest{}, false, fmt.Errorf("update from %s: %s: %w", url, resp.Status, errdefs.ErrUnavailable)
	case resp.StatusCode != http.StatusOK:
		return Manifest{}, false, fmt.Errorf("update from %s: %s: %w", url, resp.Status, errdefs.ErrFailedPrecondition)
	}
	var buf bytes.Buffer
	n, err := io.Copy(&buf, io.LimitReader(resp.Body, maxDownload+1))
	if err != nil {
		return Manifest{}, false, fmt.Errorf("update from %s: download: %w: %w", url, err, errdefs.ErrUnavailable)
	}
	if n > maxDownload {
		return Manifest{}, false, fmt.Errorf("update from %s: export larger than %d bytes: %w", url, maxDownload, errdefs.ErrFailedPrecondition)
	}
	m, err = install(root, url, buf.Bytes(), time.Now().UTC(), resp.Header.Get("ETag"), resp.Header.Get("Last-Modified"))
	if err != nil {
		return Manifest{}, false, err
	}
	return m, !haveOld || m.SHA256 != old.SHA256, nil
}
