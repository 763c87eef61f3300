package resolver

import (
	"fmt"
	"os"
	"sort"

	"github.com/skillbuild/skillbuild/lock"
	"github.com/skillbuild/skillbuild/pep440"
	"github.com/skillbuild/skillbuild/pydist"
)

// candSeq is a criterion's candidates: an explicit list, or pip's lazy
// FoundCandidates (index candidates built one by one as the resolver
// walks them, an installed distribution first).
type candSeq struct {
	list     []*candidate
	explicit bool
	found    *foundCandidates
}

// foundCandidates is pip's FoundCandidates with prefers_installed.
type foundCandidates struct {
	irs       []*installReq
	spec      pep440.SpecifierSet
	extras    []string
	name      string
	installed *candidate
	incompat  map[*candidate]bool
	infos     []*installCandidate // computed on first need
	done      bool
}

// each calls fn with the candidates in order until it returns stop or an
// error.
func (s *candSeq) each(p *provider, fn func(*candidate) (stop bool, err error)) error {
	if s.found == nil {
		for _, c := range s.list {
			if stop, err := fn(c); stop || err != nil {
				return err
			}
		}
		return nil
	}
	return s.found.each(p, fn)
}

// nonEmpty is bool(candidates).
func (s *candSeq) nonEmpty(p *provider) (bool, error) {
	if s.found == nil {
		return len(s.list) > 0, nil
	}
	if s.found.installed != nil {
		return true, nil
	}
	any := false
	err := s.found.each(p, func(*candidate) (bool, error) { any = true; return true, nil })
	return any, err
}

// foundCandidates is Factory._iter_found_candidates.
func (p *provider) foundCandidates(irs []*installReq, incompat map[*candidate]bool) (*candSeq, error) {
	if len(irs) == 0 {
		return &candSeq{}, nil
	}
	fc := &foundCandidates{irs: irs, name: lock.NormalizeName(irs[0].req.Name), incompat: incompat}
	seen := map[string]bool{}
	for _, ir := range irs {
		fc.spec = fc.spec.And(ir.req.Specifier)
		for _, e := range ir.extras {
			if !seen[e] {
				seen[e] = true
				fc.extras = append(fc.extras, e)
			}
		}
	}
	sort.Strings(fc.extras)
	if d, ok := p.installed[fc.name]; ok {
		v, err := pep440.Parse(d.Version)
		if err != nil {
			return nil, fmt.Errorf("locked %s %s: %w", d.Name, d.Version, ErrUnsupported)
		}
		if fc.spec.Contains(v, ptrTrue) {
			c, err := p.installedCandidate(d, fc.extras, irs[0])
			if err != nil {
				return nil, err
			}
			if !incompat[c] {
				fc.installed = c
			}
		}
	}
	return &candSeq{found: fc}, nil
}

// indexInfos is iter_index_candidate_infos: the applicable files, best
// first, yanked ones only when every applicable file is yanked and the
// specifier pins a version.
func (fc *foundCandidates) indexInfos(p *provider) ([]*installCandidate, error) {
	if fc.done {
		return fc.infos, nil
	}
	icans, err := p.finder.applicable(p.ctx, fc.name, fc.spec)
	if err != nil {
		return nil, err
	}
	allYanked := true
	for _, c := range icans {
		if !c.yanked {
			allYanked = false
		}
	}
	pinned := false
	for _, sp := range fc.spec.Specifiers() {
		if sp.Op == "===" || (sp.Op == "==" && !hasWildcard(sp.Version)) {
			pinned = true
			break
		}
	}
	for i := len(icans) - 1; i >= 0; i-- {
		c := icans[i]
		if c.yanked && !(allYanked && pinned) {
			continue
		}
		fc.infos = append(fc.infos, c)
	}
	fc.done = true
	return fc.infos, nil
}

func hasWildcard(v string) bool { return len(v) >= 2 && v[len(v)-2:] == ".*" }

// each is FoundCandidates.__iter__ with an installed candidate prepended:
// one candidate per version, the first file of a version that builds.
func (fc *foundCandidates) each(p *provider, fn func(*candidate) (bool, error)) error {
	found := map[string]bool{}
	if fc.installed != nil {
		found[fc.installed.version.Canonical()] = true
		if stop, err := fn(fc.installed); stop || err != nil {
			return err
		}
	}
	infos, err := fc.indexInfos(p)
	if err != nil {
		return err
	}
	for _, ic := range infos {
		key := ic.version.Canonical()
		if found[key] {
			continue
		}
		c, err := p.linkCandidate(ic, fc.extras, fc.irs[0], fc.name)
		if err != nil {
			return err
		}
		if c == nil {
			continue
		}
		found[key] = true
		if fc.incompat[c] {
			continue
		}
		if stop, err := fn(c); stop || err != nil {
			return err
		}
	}
	return nil
}

// readWheelMetadata reads the METADATA of the wheel at path.
func readWheelMetadata(path string, size int64, name string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("wheel %s: %v: %w", path, err, ErrUnsupported)
	}
	defer f.Close()
	b, err := pydist.WheelMetadata(f, size, name)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", err, ErrUnsupported)
	}
	return b, nil
}
