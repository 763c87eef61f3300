package scan

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containerd/errdefs"
)

// Record is the subset of an OSV record (https://ossf.github.io/osv-schema/)
// the scanner uses. Fields it never reads (details, references, credits)
// are not kept in memory.
type Record struct {
	ID        string     `json:"id"`
	Modified  string     `json:"modified"`
	Withdrawn string     `json:"withdrawn,omitempty"`
	Aliases   []string   `json:"aliases,omitempty"`
	Summary   string     `json:"summary,omitempty"`
	Details   string     `json:"details,omitempty"`
	Severity  []Severity `json:"severity,omitempty"`
	Affected  []Affected `json:"affected,omitempty"`
}

// Affected is one affected package of a record.
type Affected struct {
	Package  AffectedPackage `json:"package"`
	Ranges   []Range         `json:"ranges,omitempty"`
	Versions []string        `json:"versions,omitempty"`
	Severity []Severity      `json:"severity,omitempty"`
}

// AffectedPackage names the package of an [Affected] entry.
type AffectedPackage struct {
	Ecosystem string `json:"ecosystem"`
	Name      string `json:"name"`
	PURL      string `json:"purl,omitempty"`
}

// Range is an OSV range: a type and its events.
type Range struct {
	Type   string  `json:"type"`
	Events []Event `json:"events"`
}

// Event is one OSV range event; exactly one field is set.
type Event struct {
	Introduced   string `json:"introduced,omitempty"`
	Fixed        string `json:"fixed,omitempty"`
	LastAffected string `json:"last_affected,omitempty"`
	Limit        string `json:"limit,omitempty"`
}

// Severity is one OSV severity entry, e.g. {CVSS_V3, "CVSS:3.1/AV:N/..."}.
type Severity struct {
	Type  string `json:"type"`
	Score string `json:"score"`
}

// ecosystem is the only OSV ecosystem this scanner accepts.
const ecosystem = "PyPI"

// parseExport reads every member of an OSV bulk export and checks it: each
// member is <ID>.json holding one record whose id is ID and whose affected
// packages are all in the PyPI ecosystem. Any failure names the member.
func parseExport(data []byte) ([]*Record, error) {
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return nil, fmt.Errorf("read osv export: %w: %w", err, errdefs.ErrFailedPrecondition)
	}
	// Members are independent: decompress and decode them on every core.
	files := make([]*zip.File, 0, len(zr.File))
	for _, f := range zr.File {
		if !f.FileInfo().IsDir() {
			files = append(files, f)
		}
	}
	recs := make([]*Record, len(files))
	errs := make([]error, len(files))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(files)) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(files); i = int(next.Add(1) - 1) {
				recs[i], errs[i] = parseMember(files[i])
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("osv export member %s: %w: %w", files[i].Name, err, errdefs.ErrFailedPrecondition)
		}
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("osv export holds no records: %w", errdefs.ErrFailedPrecondition)
	}
	return recs, nil
}

func parseMember(f *zip.File) (*Record, error) {
	base := path.Base(f.Name)
	if !strings.HasSuffix(base, ".json") {
		return nil, fmt.Errorf("not a .json member")
	}
	rc, err := f.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, err
	}
	var rec Record
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	if rec.Summary == "" {
		rec.Summary = firstLine(rec.Details, 120)
	}
	rec.Details = "" // only the summary is reported; don't keep it in memory
	if want := strings.TrimSuffix(base, ".json"); rec.ID != want {
		return nil, fmt.Errorf("record id %q does not match file name", rec.ID)
	}
	for _, a := range rec.Affected {
		if a.Package.Ecosystem != ecosystem {
			return nil, fmt.Errorf("record %s: ecosystem %q is not %s", rec.ID, a.Package.Ecosystem, ecosystem)
		}
		if a.Package.Name == "" {
			return nil, fmt.Errorf("record %s: affected package without a name", rec.ID)
		}
	}
	return &rec, nil
}

// modifiedTime parses an OSV modified timestamp (RFC 3339; upstream data
// also has fractional seconds of any length).
func modifiedTime(s string) (time.Time, bool) {
	t, err := time.Parse(time.RFC3339Nano, s)
	return t, err == nil
}

// firstLine returns the first line of s, shortened to at most n runes.
func firstLine(s string, n int) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	s = strings.TrimSpace(s)
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
