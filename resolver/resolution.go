package resolver

import (
	"fmt"
	"sort"

	"github.com/skillbuild/skillbuild/pep508"
)

// This file is resolvelib 0.8.1's Resolution (the version pip 23.0
// vendors), with pip's provider calls inlined: the same rounds, pin order,
// backtracking and incompatibility bookkeeping, so a resolution ends where
// pip's ends.

// maxRounds bounds the rounds; pip allows 2,000,000 (a resolution that
// long is left to pip).
const maxRounds = 200000

// reqInfo is resolvelib's RequirementInformation.
type reqInfo struct {
	req    *requirement
	parent *candidate // nil for a root requirement
}

// criterion is resolvelib's Criterion.
type criterion struct {
	candidates  *candSeq
	information []reqInfo
	incompat    []*candidate
}

// omap is an insertion-ordered map (Python's dict and OrderedDict).
type omap[V any] struct {
	keys []string
	m    map[string]V
}

func newOmap[V any]() *omap[V] { return &omap[V]{m: map[string]V{}} }

func (o *omap[V]) get(k string) (V, bool) { v, ok := o.m[k]; return v, ok }

func (o *omap[V]) set(k string, v V) {
	if _, ok := o.m[k]; !ok {
		o.keys = append(o.keys, k)
	}
	o.m[k] = v
}

func (o *omap[V]) del(k string) {
	if _, ok := o.m[k]; !ok {
		return
	}
	delete(o.m, k)
	for i, x := range o.keys {
		if x == k {
			o.keys = append(o.keys[:i:i], o.keys[i+1:]...)
			break
		}
	}
}

func (o *omap[V]) copy() *omap[V] {
	c := &omap[V]{keys: append([]string{}, o.keys...), m: make(map[string]V, len(o.m))}
	for k, v := range o.m {
		c.m[k] = v
	}
	return c
}

// update is dict.update: existing keys keep their place.
func (o *omap[V]) update(other *omap[V]) {
	for _, k := range other.keys {
		o.set(k, other.m[k])
	}
}

type state struct {
	mapping  *omap[*candidate]
	criteria *omap[*criterion]
	causes   []reqInfo
}

type resolution struct {
	p      *provider
	states []*state
}

func (r *resolution) state() *state { return r.states[len(r.states)-1] }

func (r *resolution) pushNewState() {
	base := r.state()
	r.states = append(r.states, &state{mapping: base.mapping.copy(), criteria: base.criteria.copy(),
		causes: append([]reqInfo{}, base.causes...)})
}

// conflicted is resolvelib's RequirementsConflicted.
type conflicted struct{ c *criterion }

func (e *conflicted) Error() string { return "requirements conflict" }

// addToCriteria is _add_to_criteria.
func (r *resolution) addToCriteria(criteria *omap[*criterion], req *requirement, parent *candidate) error {
	id := req.name
	crit, ok := criteria.get(id)
	var incompat []*candidate
	if ok {
		incompat = append(incompat, crit.incompat...)
	}
	reqsOf := func(k string) []*requirement {
		var out []*requirement
		if c, ok := criteria.get(k); ok {
			for _, ri := range c.information {
				out = append(out, ri.req)
			}
		}
		if k == id {
			out = append(out, req)
		}
		return out
	}
	incompatOf := func(k string) []*candidate {
		var out []*candidate
		if c, ok := criteria.get(k); ok {
			out = append(out, c.incompat...)
		}
		if k == id {
			out = append(out, incompat...)
		}
		return out
	}
	seq, err := r.p.findMatches(id, reqsOf, incompatOf)
	if err != nil {
		return err
	}
	var info []reqInfo
	if ok {
		info = append(info, crit.information...)
	}
	info = append(info, reqInfo{req: req, parent: parent})
	nc := &criterion{candidates: seq, information: info, incompat: incompat}
	nonEmpty, err := seq.nonEmpty(r.p)
	if err != nil {
		return err
	}
	if !nonEmpty {
		return &conflicted{c: nc}
	}
	criteria.set(id, nc)
	return nil
}

func (r *resolution) pinSatisfying(name string, c *criterion) bool {
	pin, ok := r.state().mapping.get(name)
	if !ok {
		return false
	}
	for _, ri := range c.information {
		if !r.p.satisfiedBy(ri.req, pin) {
			return false
		}
	}
	return true
}

func (r *resolution) updatedCriteria(c *candidate) (*omap[*criterion], error) {
	criteria := r.state().criteria.copy()
	deps, err := r.p.dependencies(c)
	if err != nil {
		return nil, err
	}
	r.p.prefetch(deps)
	for _, d := range deps {
		if err := r.addToCriteria(criteria, d, c); err != nil {
			return nil, err
		}
	}
	return criteria, nil
}

// attemptToPin is _attempt_to_pin_criterion: it pins the first
// candidate whose dependencies fit, or returns the criteria that
// conflicted with each one.
func (r *resolution) attemptToPin(name string) (causes []*criterion, pinned bool, err error) {
	crit, _ := r.state().criteria.get(name)
	err = crit.candidates.each(r.p, func(c *candidate) (bool, error) {
		criteria, err := r.updatedCriteria(c)
		if ce, ok := err.(*conflicted); ok {
			causes = append(causes, ce.c)
			return false, nil
		}
		if err != nil {
			return true, err
		}
		for _, ri := range crit.information {
			if !r.p.satisfiedBy(ri.req, c) {
				return true, fmt.Errorf("candidate %s does not satisfy %s (inconsistent provider): %w", c.name, ri.req, ErrUnsupported)
			}
		}
		st := r.state()
		st.criteria.update(criteria)
		st.mapping.del(name)
		st.mapping.set(name, c)
		pinned = true
		return true, nil
	})
	if err != nil || pinned {
		return nil, pinned, err
	}
	return causes, false, nil
}

// backtrack is _backtrack.
func (r *resolution) backtrack() (bool, error) {
	for len(r.states) >= 3 {
		r.states = r.states[:len(r.states)-1]
		broken := r.states[len(r.states)-1]
		r.states = r.states[:len(r.states)-1]
		name := broken.mapping.keys[len(broken.mapping.keys)-1]
		cand := broken.mapping.m[name]
		broken.mapping.del(name)
		type inc struct {
			k string
			c []*candidate
		}
		var fromBroken []inc
		for _, k := range broken.criteria.keys {
			fromBroken = append(fromBroken, inc{k, append([]*candidate{}, broken.criteria.m[k].incompat...)})
		}
		fromBroken = append(fromBroken, inc{name, []*candidate{cand}})
		r.pushNewState()
		ok, err := func() (bool, error) {
			st := r.state()
			for _, x := range fromBroken {
				if len(x.c) == 0 {
					continue
				}
				crit, ok := st.criteria.get(x.k)
				if !ok {
					continue
				}
				reqsOf := func(k string) []*requirement {
					var out []*requirement
					if c, ok := st.criteria.get(k); ok {
						for _, ri := range c.information {
							out = append(out, ri.req)
						}
					}
					return out
				}
				k := x.k
				extra := x.c
				incompatOf := func(q string) []*candidate {
					var out []*candidate
					if c, ok := st.criteria.get(q); ok {
						out = append(out, c.incompat...)
					}
					if q == k {
						out = append(out, extra...)
					}
					return out
				}
				seq, err := r.p.findMatches(k, reqsOf, incompatOf)
				if err != nil {
					return false, err
				}
				nonEmpty, err := seq.nonEmpty(r.p)
				if err != nil {
					return false, err
				}
				if !nonEmpty {
					return false, nil
				}
				incompat := append(append([]*candidate{}, x.c...), crit.incompat...)
				st.criteria.set(k, &criterion{candidates: seq, information: append([]reqInfo{}, crit.information...), incompat: incompat})
			}
			return true, nil
		}()
		if err != nil {
			return false, err
		}
		if ok {
			return true, nil
		}
	}
	return false, nil
}

// impossible is resolvelib's ResolutionImpossible.
type impossible struct{ causes []reqInfo }

func (e *impossible) Error() string { return "resolution impossible" }

// resolve is Resolution.resolve followed by _build_result: the pinned
// candidates connected to the root.
func (r *resolution) resolve(reqs []*requirement) (*omap[*candidate], error) {
	r.states = []*state{{mapping: newOmap[*candidate](), criteria: newOmap[*criterion]()}}
	for _, q := range reqs {
		if err := r.addToCriteria(r.state().criteria, q, nil); err != nil {
			if ce, ok := err.(*conflicted); ok {
				return nil, &impossible{causes: ce.c.information}
			}
			return nil, err
		}
	}
	r.pushNewState()
	for round := 0; round < maxRounds; round++ {
		st := r.state()
		var unsatisfied []string
		for _, k := range st.criteria.keys {
			if !r.pinSatisfying(k, st.criteria.m[k]) {
				unsatisfied = append(unsatisfied, k)
			}
		}
		if len(unsatisfied) == 0 {
			return buildResult(st), nil
		}
		var best string
		var bestPref preference
		for i, k := range unsatisfied {
			pref := r.p.preference(k, st.criteria.m[k].information, st.causes)
			if i == 0 || pref.less(bestPref) {
				best, bestPref = k, pref
			}
		}
		failures, _, err := r.attemptToPin(best)
		if err != nil {
			return nil, err
		}
		if len(failures) > 0 {
			var causes []reqInfo
			for _, c := range failures {
				causes = append(causes, c.information...)
			}
			ok, err := r.backtrack()
			if err != nil {
				return nil, err
			}
			r.state().causes = causes
			if !ok {
				return nil, &impossible{causes: causes}
			}
		} else {
			r.pushNewState()
		}
	}
	return nil, fmt.Errorf("resolution took more than %d rounds: %w", maxRounds, ErrUnsupported)
}

// buildResult is _build_result's mapping: the pins with a route to the
// root through the criteria's parents.
func buildResult(st *state) *omap[*candidate] {
	keyOf := map[*candidate]string{}
	for _, k := range st.mapping.keys {
		keyOf[st.mapping.m[k]] = k
	}
	connected := map[string]bool{"": true}
	var route func(key string, visiting map[string]bool) bool
	route = func(key string, visiting map[string]bool) bool {
		if connected[key] {
			return true
		}
		crit, ok := st.criteria.get(key)
		if !ok || visiting[key] {
			return false
		}
		visiting[key] = true
		defer delete(visiting, key)
		for _, ri := range crit.information {
			var pkey string
			if ri.parent != nil {
				k, ok := keyOf[ri.parent]
				if !ok {
					continue
				}
				pkey = k
			}
			if connected[pkey] || route(pkey, visiting) {
				connected[key] = true
				return true
			}
		}
		return false
	}
	for _, k := range st.criteria.keys {
		route(k, map[string]bool{})
	}
	out := newOmap[*candidate]()
	for _, k := range st.mapping.keys {
		if connected[k] {
			out.set(k, st.mapping.m[k])
		}
	}
	return out
}

// findMatches is PipProvider.find_matches / Factory.find_candidates with
// no constraints and installed distributions preferred (pip install
// without --upgrade).
func (p *provider) findMatches(id string, reqsOf func(string) []*requirement, incompatOf func(string) []*candidate) (*candSeq, error) {
	var explicit []*candidate
	addExplicit := func(c *candidate) {
		for _, e := range explicit {
			if e == c {
				return
			}
		}
		explicit = append(explicit, c)
	}
	var irs []*installReq
	reqs := reqsOf(id)
	for _, q := range reqs {
		c, ir := p.lookup(q)
		if c != nil {
			addExplicit(c)
		}
		if ir != nil {
			irs = append(irs, ir)
		}
	}
	if parsed, err := pep508.ParseRequirement(id); err == nil {
		var ex []string
		seen := map[string]bool{}
		for _, e := range parsed.Extras {
			if !seen[e] {
				seen[e] = true
				ex = append(ex, e)
			}
		}
		sort.Strings(ex)
		for _, q := range reqsOf(parsed.Name) {
			c, _ := p.lookup(q)
			if c == nil {
				continue
			}
			if c.kind == extrasCand {
				return nil, fmt.Errorf("explicit requirement on an extras candidate: %w", ErrUnsupported)
			}
			addExplicit(p.extrasCandidate(c, ex))
		}
	}
	incompat := map[*candidate]bool{}
	for _, c := range incompatOf(id) {
		incompat[c] = true
	}
	if len(explicit) == 0 {
		return p.foundCandidates(irs, incompat)
	}
	var list []*candidate
	for _, c := range explicit {
		if incompat[c] {
			continue
		}
		ok := true
		for _, q := range reqs {
			if !p.satisfiedBy(q, c) {
				ok = false
				break
			}
		}
		if ok {
			list = append(list, c)
		}
	}
	return &candSeq{list: list, explicit: true}, nil
}
