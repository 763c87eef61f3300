package lock

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/containerd/errdefs"
)

// Metadata is the part of a distribution's core metadata that pip's
// resolver reads from an installed distribution: enough to stand for it
// in a view of the installed set (see the llb package's resolve of what
// was added), nothing of its files. It is the report's "metadata" object,
// as pip wrote it for the resolve step.
type Metadata struct {
	// Name is the project name as the distribution spells it.
	Name           string   `json:"name"`
	RequiresDist   []string `json:"requires_dist,omitempty"`
	RequiresPython string   `json:"requires_python,omitempty"`
	ProvidesExtra  []string `json:"provides_extra,omitempty"`
}

// DocumentPredicate is the in-toto predicate type of the lock document
// attached to every skill image.
const DocumentPredicate = "https://github.com/skillbuild/skillbuild/attestation/lock/v1"

// documentVersion is the lock document's format version; a document of
// another version is not used (the build resolves everything).
const documentVersion = 1

// Document is the lock as recorded with its image: the requirement lines
// it resolves, and every distribution with the metadata pip reported for
// it. A later build of the same skill whose requirements only add to these
// resolves only what was added (see Incremental).
type Document struct {
	Version int `json:"version"`
	// BaseDigest is the manifest digest of the base image the lock was
	// resolved (and installed) on.
	BaseDigest   string    `json:"base_digest"`
	Requirements []string  `json:"requirements"`
	Dists        []docDist `json:"distributions"`
}

type docDist struct {
	Dist
	Metadata *Metadata `json:"metadata,omitempty"`
}

// NewDocument records locked as the resolution of requirements (their
// lines as written) on the base image whose manifest digest is base.
func NewDocument(requirements []string, locked Lock, base string) Document {
	doc := Document{Version: documentVersion, BaseDigest: base, Requirements: append([]string{}, requirements...), Dists: []docDist{}}
	for _, d := range locked {
		doc.Dists = append(doc.Dists, docDist{Dist: d, Metadata: d.Meta})
	}
	return doc
}

// Marshal is the document as JSON.
func (doc Document) Marshal() ([]byte, error) { return json.Marshal(doc) }

// ParseDocument reads a lock document. The result's Lock is sorted and
// every entry has a sha256, a filename and a URL; an entry without them,
// or a document of another version, is an error.
func ParseDocument(b []byte) (Document, error) {
	var doc Document
	if err := json.Unmarshal(b, &doc); err != nil {
		return Document{}, fmt.Errorf("parse lock document: %w: %w", err, errdefs.ErrInvalidArgument)
	}
	if doc.Version != documentVersion {
		return Document{}, fmt.Errorf("lock document version %d is not supported (want %d): %w", doc.Version, documentVersion, errdefs.ErrNotImplemented)
	}
	for _, d := range doc.Dists {
		if d.Name == "" || d.Version == "" || d.SHA256 == "" || d.Filename == "" || d.URL == "" || NormalizeName(d.Name) != d.Name {
			return Document{}, fmt.Errorf("lock document: incomplete entry %q %q: %w", d.Name, d.Version, errdefs.ErrInvalidArgument)
		}
	}
	return doc, nil
}

// Lock is the document's lock, each entry with its metadata.
func (doc Document) Lock() Lock {
	l := make(Lock, 0, len(doc.Dists))
	for _, d := range doc.Dists {
		dd := d.Dist
		dd.Meta = d.Metadata
		l = append(l, dd)
	}
	sort.Slice(l, func(i, j int) bool { return l[i].Name < l[j].Name })
	return l
}

// Incremental says whether a build whose requirement lines are reqs may
// resolve only what they add to doc's: when every line of doc is among
// reqs (compared as written, surrounding blanks aside), at least one line
// is new, and every distribution of doc has its metadata (a view of the
// installed set is made of it). why says why not, for logs. The base
// image and the index settings are the caller's to compare.
func (doc Document) Incremental(reqs []string) (ok bool, why string) {
	have := map[string]bool{}
	for _, r := range reqs {
		have[strings.TrimSpace(r)] = true
	}
	prev := map[string]bool{}
	for _, r := range doc.Requirements {
		r = strings.TrimSpace(r)
		prev[r] = true
		if !have[r] {
			return false, fmt.Sprintf("requirement %q was removed or changed", r)
		}
	}
	if len(have) == len(prev) {
		return false, "no requirement added"
	}
	for _, d := range doc.Dists {
		if d.Metadata == nil {
			return false, fmt.Sprintf("no metadata recorded for %s %s", d.Name, d.Version)
		}
	}
	return true, ""
}

// Extend is prev (the previous lock) with added (the resolution of what
// was added, on top of prev installed), with Requested set from the
// requirement names: the lock a full resolution of those requirements
// gives when it keeps every distribution of prev. A distribution of
// added that prev also holds (pip replaced it: an upgrade, a downgrade,
// a reinstall) is an ErrFailedPrecondition: the caller resolves
// everything instead.
func Extend(prev, added Lock, requested []string) (Lock, error) {
	names := map[string]bool{}
	for _, n := range requested {
		names[NormalizeName(n)] = true
	}
	out := make(Lock, 0, len(prev)+len(added))
	seen := map[string]bool{}
	for _, d := range prev {
		seen[d.Name] = true
		out = append(out, d)
	}
	for _, d := range added {
		if seen[d.Name] {
			return nil, fmt.Errorf("the added requirements replace %s (locked before, now %s): %w", d.Name, d.Version, errdefs.ErrFailedPrecondition)
		}
		seen[d.Name] = true
		out = append(out, d)
	}
	for i := range out {
		out[i].Requested = names[out[i].Name]
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
