package lock

import (
	"encoding/json"
	"fmt"
	"net/url"
	"path"
	"sort"
	"strings"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
)

// Dist is one locked distribution: exactly the file that was resolved and
// will be installed.
type Dist struct {
	Name      string `json:"name"` // PEP 503-normalized
	Version   string `json:"version"`
	Filename  string `json:"filename"`
	URL       string `json:"url"`             // http(s) URL, or file:// under FindLinksDir
	SHA256    string `json:"sha256"`          // hex
	Requested bool   `json:"requested"`       // named by the skill, not pulled in transitively
	Sdist     bool   `json:"sdist,omitempty"` // a source distribution: runs code when installed
	// Meta is what pip reported of the distribution's metadata (nil when
	// unknown: a lock read from text or a label). It is not part of the
	// lock's JSON: the lock document (Document) records it.
	Meta *Metadata `json:"-"`
}

// Digest is the file's content digest.
func (d Dist) Digest() digest.Digest { return digest.NewDigestFromEncoded(digest.SHA256, d.SHA256) }

// LockLine renders the distribution as a hash-pinned requirement line.
func (d Dist) LockLine() string {
	return fmt.Sprintf("%s==%s --hash=sha256:%s", d.Name, d.Version, d.SHA256)
}

// Lock is the fully resolved set, sorted by name.
type Lock []Dist

// Text is the lock as a pip requirements file (one hash-pinned line each).
func (l Lock) Text() string {
	var b strings.Builder
	for _, d := range l {
		b.WriteString(d.LockLine())
		b.WriteByte('\n')
	}
	return b.String()
}

// Digest identifies the lock's content.
func (l Lock) Digest() digest.Digest { return digest.FromString(l.Text()) }

// report is the subset of pip's installation report (format version 1)
// that skillbuild reads. See https://pip.pypa.io/en/stable/reference/installation-report/.
type report struct {
	Version string `json:"version"`
	Install []struct {
		DownloadInfo struct {
			URL         string `json:"url"`
			ArchiveInfo *struct {
				Hash   string            `json:"hash"`
				Hashes map[string]string `json:"hashes"`
			} `json:"archive_info"`
			DirInfo *json.RawMessage `json:"dir_info"`
			VCSInfo *json.RawMessage `json:"vcs_info"`
		} `json:"download_info"`
		Requested bool `json:"requested"`
		Metadata  struct {
			Name           string   `json:"name"`
			Version        string   `json:"version"`
			RequiresDist   []string `json:"requires_dist"`
			RequiresPython string   `json:"requires_python"`
			ProvidesExtra  []string `json:"provides_extra"`
		} `json:"metadata"`
	} `json:"install"`
}

// ParseReport turns pip's --report output into a Lock. Every entry must be
// an archive with a sha256: anything else cannot be fetched by hash.
func ParseReport(b []byte) (Lock, error) {
	var r report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("parse pip report: %w", err)
	}
	if r.Version != "1" {
		return nil, fmt.Errorf("pip report format version %q is not supported (want \"1\"): %w", r.Version, errdefs.ErrNotImplemented)
	}
	lock := make(Lock, 0, len(r.Install))
	for _, it := range r.Install {
		name := NormalizeName(it.Metadata.Name)
		di := it.DownloadInfo
		if di.ArchiveInfo == nil {
			return nil, fmt.Errorf("%s %s resolved to %s, which is not an archive; only index files can be installed: %w", name, it.Metadata.Version, di.URL, errdefs.ErrInvalidArgument)
		}
		sum := di.ArchiveInfo.Hashes["sha256"]
		if sum == "" {
			if algo, hex, ok := strings.Cut(di.ArchiveInfo.Hash, "="); ok && algo == "sha256" {
				sum = hex
			}
		}
		if sum == "" {
			return nil, fmt.Errorf("%s %s from %s has no sha256 in the index; skillbuild installs only files it can verify: %w", name, it.Metadata.Version, di.URL, errdefs.ErrInvalidArgument)
		}
		u, err := url.Parse(di.URL)
		if err != nil {
			return nil, fmt.Errorf("%s %s: bad download URL %q: %w", name, it.Metadata.Version, di.URL, err)
		}
		filename := path.Base(u.Path)
		lock = append(lock, Dist{
			Name:      name,
			Version:   it.Metadata.Version,
			Filename:  filename,
			URL:       di.URL,
			SHA256:    strings.ToLower(sum),
			Requested: it.Requested,
			Sdist:     !strings.HasSuffix(filename, ".whl"),
			Meta: &Metadata{Name: it.Metadata.Name, RequiresDist: it.Metadata.RequiresDist,
				RequiresPython: it.Metadata.RequiresPython, ProvidesExtra: it.Metadata.ProvidesExtra},
		})
	}
	sort.Slice(lock, func(i, j int) bool { return lock[i].Name < lock[j].Name })
	return lock, nil
}

// NormalizeName is PEP 503 name normalization.
func NormalizeName(n string) string {
	n = strings.ToLower(n)
	var b strings.Builder
	dash := false
	for _, r := range n {
		if r == '-' || r == '_' || r == '.' {
			if !dash {
				b.WriteByte('-')
			}
			dash = true
			continue
		}
		dash = false
		b.WriteRune(r)
	}
	return b.String()
}
