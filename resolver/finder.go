package resolver

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path"
	"regexp"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/skillbuild/skillbuild/lock"
	"github.com/skillbuild/skillbuild/pep440"
	"github.com/skillbuild/skillbuild/pydist"
)

// installCandidate is pip's InstallationCandidate: a file of a project
// and its version, with what sorting them needs.
type installCandidate struct {
	link    pydist.Link
	version *pep440.Version
	pri     int // minus the index of the wheel's most preferred tag
	build   []any
	yanked  bool
}

// supportedExtensions are pip's SUPPORTED_EXTENSIONS.
var supportedExtensions = map[string]bool{
	".zip": true, ".whl": true, ".tar.bz2": true, ".tbz": true, ".tar.xz": true, ".txz": true,
	".tlz": true, ".tar.lz": true, ".tar.lzma": true, ".tar.gz": true, ".tgz": true, ".tar": true,
}

var (
	eggFragmentRE = regexp.MustCompile(`[#&]egg=([^&]*)`)
	pyVersionRE   = regexp.MustCompile(`-py([123]\.?[0-9]?)$`)
)

// finder is pip's PackageFinder with --only-binary=:all:, yanked files
// allowed, no --pre: it collects a project's candidates from the index
// pages and the find-links directories, once per project.
type finder struct {
	f        *fetcher
	env      *Environment
	tagPri   map[pydist.Tag]int
	indexes  []string // index URLs as the step sees them
	trusted  map[string]bool
	findDirs []findLinksDir
	python   *pep440.Version
	all      map[string][]*installCandidate // by canonical name
	dirFiles []pydist.Link                  // the find-links files (listed once)
}

type findLinksDir struct {
	host, step string
}

func newFinder(f *fetcher, env *Environment, indexes []string, trusted []string, dirs []findLinksDir) (*finder, error) {
	fd := &finder{f: f, env: env, tagPri: map[pydist.Tag]int{}, indexes: indexes, trusted: map[string]bool{},
		findDirs: dirs, all: map[string][]*installCandidate{}}
	for i, t := range env.Tags {
		tag, err := pydist.ParseTag(t)
		if err != nil {
			return nil, err
		}
		if _, dup := fd.tagPri[tag]; !dup {
			fd.tagPri[tag] = i
		}
	}
	for _, h := range trusted {
		fd.trusted[strings.ToLower(h)] = true
	}
	py, err := pep440.Parse(env.PythonVersion)
	if err != nil {
		return nil, err
	}
	fd.python = py
	for _, u := range indexes {
		if err := fd.checkIndex(u); err != nil {
			return nil, err
		}
	}
	if err := fd.listDirs(); err != nil {
		return nil, err
	}
	return fd, nil
}

// checkIndex refuses an index pip would ignore as insecure (plain http to
// a host that is neither loopback nor trusted): pip's handling of it is
// left to pip.
func (fd *finder) checkIndex(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("index URL %s: %w", redact(raw), ErrUnsupported)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("index URL %s carries credentials or a query: %w", redact(raw), ErrUnsupported)
	}
	if u.Scheme == "https" {
		return nil
	}
	h := strings.ToLower(u.Hostname())
	if h == "localhost" || strings.HasPrefix(h, "127.") || h == "::1" || fd.trusted[h] || fd.trusted[strings.ToLower(u.Host)] {
		return nil
	}
	return fmt.Errorf("index %s is plain http on a host pip does not trust: %w", redact(raw), ErrUnsupported)
}

// listDirs lists every find-links directory once (pip lists them per
// project; they do not change during a build).
func (fd *finder) listDirs() error {
	fd.f.localFiles = map[string]string{}
	for _, d := range fd.findDirs {
		ents, err := os.ReadDir(d.host)
		if err != nil {
			return fmt.Errorf("find-links directory %s: %v: %w", d.host, err, ErrUnsupported)
		}
		for _, e := range ents {
			name := e.Name()
			if !utf8.ValidString(name) || strings.ContainsAny(name, "\x00\n\r\t") {
				return fmt.Errorf("find-links directory %s has a file name pip reads otherwise (%q): %w", d.host, name, ErrUnsupported)
			}
			if strings.HasSuffix(strings.ToLower(name), ".html") || strings.HasSuffix(strings.ToLower(name), ".htm") {
				return fmt.Errorf("find-links directory %s has an HTML page (%s): %w", d.host, name, ErrUnsupported)
			}
			if !e.Type().IsRegular() {
				if strings.HasSuffix(name, ".whl") {
					return fmt.Errorf("find-links entry %s/%s is not a regular file: %w", d.host, name, ErrUnsupported)
				}
				if !e.IsDir() {
					continue
				}
			}
			l := pydist.FileLink(path.Join(d.step, name))
			fd.f.localFiles[l.URL] = d.host + "/" + name
			fd.dirFiles = append(fd.dirFiles, l)
		}
	}
	return nil
}

// projectURL is pip's mkurl_pypi_url.
func projectURL(index, name string) string {
	loc := strings.TrimRight(index, "/") + "/" + name
	if strings.HasSuffix(index, "/") {
		loc = index + name
	}
	if !strings.HasSuffix(loc, "/") {
		loc += "/"
	}
	return loc
}

// findAll is pip's find_all_candidates: the find-links files (sorted by
// URL, last first) then the index pages' files, each evaluated.
func (fd *finder) findAll(ctx context.Context, name string) ([]*installCandidate, error) {
	if c, ok := fd.all[name]; ok {
		return c, nil
	}
	files := append([]pydist.Link{}, fd.dirFiles...)
	sort.SliceStable(files, func(i, j int) bool { return files[i].URL > files[j].URL })
	var out []*installCandidate
	fileCands, err := fd.evaluate(files, name)
	if err != nil {
		return nil, err
	}
	out = append(out, fileCands...)
	seen := map[string]bool{}
	for _, ix := range fd.indexes {
		u := projectURL(ix, name)
		if seen[u] {
			continue
		}
		seen[u] = true
		links, err := fd.f.page(ctx, u)
		if err != nil {
			return nil, err
		}
		cands, err := fd.evaluate(links, name)
		if err != nil {
			return nil, err
		}
		out = append(out, cands...)
	}
	fd.all[name] = out
	return out, nil
}

// evaluate is pip's evaluate_links: duplicates dropped, each link
// evaluated (evaluateLink).
func (fd *finder) evaluate(links []pydist.Link, name string) ([]*installCandidate, error) {
	seen := map[string]bool{}
	var out []*installCandidate
	for _, l := range links {
		if seen[l.URL] {
			continue
		}
		seen[l.URL] = true
		c, err := fd.evaluateLink(l, name)
		if err != nil {
			return nil, err
		}
		if c != nil {
			out = append(out, c)
		}
	}
	return out, nil
}

// evaluateLink is pip's LinkEvaluator.evaluate_link with formats
// {"binary"} and yanked files allowed: nil for a link that is not a
// candidate of project name.
func (fd *finder) evaluateLink(l pydist.Link, name string) (*installCandidate, error) {
	if eggFragmentRE.MatchString(l.URL) {
		return nil, fmt.Errorf("link %s has an egg fragment: %w", redact(l.URL), ErrUnsupported)
	}
	ext := l.Ext()
	if ext == "" || !supportedExtensions[ext] || ext != ".whl" {
		return nil, nil // not a file, an unsupported format, or a source archive
	}
	w, err := pydist.ParseWheelName(l.Filename())
	if err != nil {
		return nil, nil
	}
	if lock.NormalizeName(w.Name) != name {
		return nil, nil
	}
	best := -1
	for _, t := range w.Tags {
		if p, ok := fd.tagPri[t]; ok && (best < 0 || p < best) {
			best = p
		}
	}
	if best < 0 {
		return nil, nil // no compatible tag
	}
	version := w.Version
	if version == "" {
		return nil, nil
	}
	if m := pyVersionRE.FindStringSubmatchIndex(version); m != nil {
		py := version[m[2]:m[3]]
		version = version[:m[0]]
		if py != fd.env.PyVersion {
			return nil, nil
		}
	}
	if l.RequiresPython != nil {
		spec, err := pep440.ParseSpecifierSet(*l.RequiresPython)
		switch {
		case err == nil:
			if !spec.Contains(fd.python, nil) {
				return nil, nil
			}
		case errorsIs(err, pep440.ErrLegacySpecifier):
			return nil, fmt.Errorf("link %s has a legacy Requires-Python %q: %w", redact(l.URL), *l.RequiresPython, ErrUnsupported)
		}
		// An invalid Requires-Python is ignored, as pip does.
	}
	v, err := pep440.Parse(version)
	if err != nil {
		return nil, fmt.Errorf("wheel %s has a version that is not PEP 440 (%q): %w", l.Filename(), version, ErrUnsupported)
	}
	c := &installCandidate{link: l, version: v, pri: -best, yanked: l.Yanked != nil}
	if n, rest, ok := w.BuildTag(); ok {
		c.build = []any{n, rest}
	} else if w.Build != "" {
		return nil, fmt.Errorf("wheel %s has a build tag pip sorts differently: %w", l.Filename(), ErrUnsupported)
	}
	return c, nil
}

// compareKey orders candidates as pip's CandidateEvaluator._sort_key
// (ascending: the last is the best): not yanked over yanked, then
// version, tag priority, build tag.
func compareKey(a, b *installCandidate) int {
	if a.yanked != b.yanked {
		if a.yanked {
			return -1
		}
		return 1
	}
	if c := a.version.Compare(b.version); c != 0 {
		return c
	}
	if a.pri != b.pri {
		if a.pri < b.pri {
			return -1
		}
		return 1
	}
	switch {
	case a.build == nil && b.build == nil:
		return 0
	case a.build == nil:
		return -1
	case b.build == nil:
		return 1
	}
	an, bn := a.build[0].(int64), b.build[0].(int64)
	if an != bn {
		if an < bn {
			return -1
		}
		return 1
	}
	return strings.Compare(a.build[1].(string), b.build[1].(string))
}

// applicable is pip's find_best_candidate(...).iter_applicable(): the
// candidates whose version the specifier admits (pre-releases as the
// specifier decides), sorted by compareKey.
func (fd *finder) applicable(ctx context.Context, name string, spec pep440.SpecifierSet) ([]*installCandidate, error) {
	all, err := fd.findAll(ctx, name)
	if err != nil {
		return nil, err
	}
	versions := make([]*pep440.Version, len(all))
	for i, c := range all {
		versions[i] = c.version
	}
	keep := map[string]bool{}
	for _, v := range spec.Filter(versions, nil) {
		keep[v.String()] = true
	}
	var out []*installCandidate
	for _, c := range all {
		if keep[c.version.String()] {
			out = append(out, c)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return compareKey(out[i], out[j]) < 0 })
	return out, nil
}
