package resolver

import (
	"context"

	"github.com/skillbuild/skillbuild/lock"
	"github.com/skillbuild/skillbuild/pep440"
	"github.com/skillbuild/skillbuild/pydist"
)

// prefetch fetches in the background what resolving reqs will ask for
// first: each new project's pages and the metadata (or the wheel) of the
// file its requirement would take. Resolution itself stays sequential,
// in pip's order; it finds these answers in the fetcher's cache (or waits
// for them), so what it decides does not depend on what was prefetched.
// Projects with an installed distribution are left alone: pip reads
// their pages only when the installed one does not fit.
func (p *provider) prefetch(reqs []*requirement) {
	for _, r := range reqs {
		if r.kind != specifierReq {
			continue
		}
		name := lock.NormalizeName(r.ir.req.Name)
		if _, installed := p.installed[name]; installed || p.prefetched[name] {
			continue
		}
		p.prefetched[name] = true
		spec := r.ir.req.Specifier
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.prefetchProject(p.bg, name, spec)
		}()
	}
}

// prefetchProject reads name's index pages and fetches what the best
// file spec admits needs read. Errors are dropped: resolution meets them
// again, in its own order.
func (p *provider) prefetchProject(ctx context.Context, name string, spec pep440.SpecifierSet) {
	var best *installCandidate
	for _, ix := range p.finder.indexes {
		links, err := p.finder.f.page(ctx, projectURL(ix, name))
		if err != nil {
			return
		}
		cands, err := p.finder.evaluate(links, name)
		if err != nil {
			return
		}
		versions := make([]*pep440.Version, len(cands))
		for i, c := range cands {
			versions[i] = c.version
		}
		keep := map[string]bool{}
		for _, v := range spec.Filter(versions, nil) {
			keep[v.String()] = true
		}
		for _, c := range cands {
			if keep[c.version.String()] && !c.yanked && (best == nil || compareKey(c, best) >= 0) {
				best = c
			}
		}
	}
	if best == nil {
		return
	}
	if u, _, ok := best.link.MetadataURL(); ok {
		p.finder.f.get(ctx, u, pydist.MaxMetadata) //nolint:errcheck
		return
	}
	p.finder.f.wheel(ctx, best.link) //nolint:errcheck
}

// wait stops prefetching and waits for every prefetching goroutine.
func (p *provider) wait() {
	p.stop()
	p.wg.Wait()
}
