package spec

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"

	digest "github.com/opencontainers/go-digest"
	"github.com/skillbuild/skillbuild/config"
)

// GraphVersion names the shape of the build graph skillbuild generates
// for a skill (package llb). Images built by a graph of another version
// are not reused. Bump it with every change to what a build produces from
// the same skill; llb's TestGraphVersionPinned fails until you do.
const GraphVersion = "3"

// Layering is the part of the install options that shapes the graph
// (llb.InstallOpts without the per-build trusted hosts).
type Layering struct {
	MaxLayers   int  `json:"max_layers,omitempty"`
	SingleLayer bool `json:"single_layer,omitempty"`
}

// spec is everything that determines a build's result, as hashed.
type spec struct {
	Graph        string         `json:"graph"`
	ID           string         `json:"id"`
	Version      string         `json:"version"`
	Repo         string         `json:"repo"`
	Base         string         `json:"base"`
	Requirements []string       `json:"requirements"`
	IndexURL     string         `json:"index_url,omitempty"`
	ExtraURLs    []string       `json:"extra_urls,omitempty"`
	FindLinks    []findLinksDir `json:"find_links,omitempty"`
	AllowSdist   bool           `json:"allow_sdist,omitempty"`
	Layering     Layering       `json:"layering"`
	// Preload is written into the image's labels; empty leaves the
	// digest of a skill without one as it was.
	Preload []string `json:"preload,omitempty"`
}

// findLinksDir is a find-links directory as pip sees it: its top-level
// files (pip does not recurse), each with size and modification time.
type findLinksDir struct {
	Path  string     `json:"path"`
	Files []fileStat `json:"files"`
}

type fileStat struct {
	Name  string `json:"name"`
	Size  int64  `json:"size"`
	MTime int64  `json:"mtime_ns"`
}

// Digest is the digest of everything that determines what a build of
// s produces, short of the base image's digest (recorded and compared on
// its own) and the package index's content (a resolution is reused until
// --refresh, as BuildKit's cache reuses it): the graph version, the tag,
// the base reference, the requirement lines, the index settings with the
// listing of every find-links directory, the layering and the preload
// list (an image label). Build limits
// and the vulnerability policy are not in it: limits do not change the
// result of a build that succeeded, and the policy is checked again on
// every reuse.
func Digest(s config.Skill, l Layering) (digest.Digest, error) {
	sp := spec{
		Graph: GraphVersion, ID: s.ID, Version: s.Version, Repo: s.Repo, Base: s.Base,
		IndexURL: s.Index.URL, ExtraURLs: s.Index.ExtraURLs, AllowSdist: s.Index.AllowSdist,
		Layering: l, Requirements: []string{}, Preload: s.Preload,
	}
	for _, r := range s.Requirements {
		sp.Requirements = append(sp.Requirements, r.Raw)
	}
	var err error
	if sp.FindLinks, err = listDirs(s.Index.FindLinks); err != nil {
		return "", err
	}
	return jsonDigest(sp)
}

func jsonDigest(v any) (digest.Digest, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	return digest.FromBytes(b), nil
}

func listDirs(dirs []string) ([]findLinksDir, error) {
	var out []findLinksDir
	for _, dir := range dirs {
		fl, err := listDir(dir)
		if err != nil {
			return nil, err
		}
		out = append(out, fl)
	}
	return out, nil
}

func listDir(dir string) (findLinksDir, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return findLinksDir{}, fmt.Errorf("find-links directory %s: %w", dir, err)
	}
	fl := findLinksDir{Path: dir, Files: []fileStat{}}
	for _, e := range ents {
		if e.IsDir() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return findLinksDir{}, fmt.Errorf("find-links directory %s: %w", dir, err)
		}
		fl.Files = append(fl.Files, fileStat{Name: e.Name(), Size: info.Size(), MTime: info.ModTime().UnixNano()})
	}
	sort.Slice(fl.Files, func(i, j int) bool { return fl.Files[i].Name < fl.Files[j].Name })
	return fl, nil
}

// index is everything of a skill that decides what its requirements
// resolve to besides the requirements and the base, as hashed.
type index struct {
	IndexURL   string         `json:"index_url,omitempty"`
	ExtraURLs  []string       `json:"extra_urls,omitempty"`
	FindLinks  []findLinksDir `json:"find_links,omitempty"`
	AllowSdist bool           `json:"allow_sdist,omitempty"`
}

// IndexDigest is the digest of s's index settings: the index URLs, the
// listing of every find-links directory (as Digest has them) and whether
// source distributions are allowed. Two builds with the same IndexDigest
// ask the same index the same way: a later one may resolve only what
// its requirements add to an earlier one's (a label of the image record,
// labels.IndexDigest).
func IndexDigest(s config.Skill) (digest.Digest, error) {
	ix := index{IndexURL: s.Index.URL, ExtraURLs: s.Index.ExtraURLs, AllowSdist: s.Index.AllowSdist}
	var err error
	if ix.FindLinks, err = listDirs(s.Index.FindLinks); err != nil {
		return "", err
	}
	return jsonDigest(ix)
}
