package resolver

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/skillbuild/skillbuild/lock"
	"github.com/skillbuild/skillbuild/pep440"
	"github.com/skillbuild/skillbuild/pep508"
	"github.com/skillbuild/skillbuild/pydist"
)

// requiresPythonID is pip's identifier of the Requires-Python candidate.
const requiresPythonID = "<Python from Requires-Python>"

// installReq is the part of pip's InstallRequirement resolution reads:
// the requirement, its extras (safe_extra'd) and where it came from.
type installReq struct {
	req    pep508.Requirement
	extras []string // sorted, distinct
	// marker is the requirement's: part of req for a dependency, split
	// off the line for a line of the requirements file.
	marker *pep508.Marker
	// comesFrom is "-r FILE (line N)" for a line of the requirements
	// file; parent the install requirement of the candidate a dependency
	// came from.
	comesFrom    string
	parent       *installReq
	userSupplied bool
}

var unsafeExtra = regexp.MustCompile(`[^A-Za-z0-9.-]+`)

// safeExtra is pip's safe_extra.
func safeExtra(e string) string { return strings.ToLower(unsafeExtra.ReplaceAllString(e, "_")) }

func newInstallReq(r pep508.Requirement) *installReq {
	ir := &installReq{req: r, marker: r.Marker}
	seen := map[string]bool{}
	for _, e := range r.Extras {
		if s := safeExtra(e); !seen[s] {
			seen[s] = true
			ir.extras = append(ir.extras, s)
		}
	}
	sort.Strings(ir.extras)
	return ir
}

// formatName is pip's format_name: the project with its extras,
// canonicalized and sorted.
func formatName(project string, extras []string) string {
	if len(extras) == 0 {
		return project
	}
	c := make([]string, 0, len(extras))
	seen := map[string]bool{}
	for _, e := range extras {
		if n := lock.NormalizeName(e); !seen[n] {
			seen[n] = true
			c = append(c, n)
		}
	}
	sort.Strings(c)
	return project + "[" + strings.Join(c, ",") + "]"
}

// matchMarkers is InstallRequirement.match_markers.
func (p *provider) matchMarkers(ir *installReq, extras []string) (bool, error) {
	if ir.marker == nil {
		return true, nil
	}
	if len(extras) == 0 {
		extras = []string{""}
	}
	for _, e := range extras {
		ok, err := ir.marker.Evaluate(p.env.markerEnv(e))
		if err != nil {
			return false, fmt.Errorf("marker of %q: %v: %w", ir.req.String(), err, ErrUnsupported)
		}
		if ok {
			return true, nil
		}
	}
	return false, nil
}

type reqKind int

const (
	specifierReq reqKind = iota
	explicitReq
	pythonReq
)

// requirement is one of pip's Requirement classes.
type requirement struct {
	kind reqKind
	ir   *installReq         // specifierReq
	cand *candidate          // explicitReq
	spec pep440.SpecifierSet // pythonReq
	name string              // the identifier
}

func (p *provider) specifierRequirement(ir *installReq) *requirement {
	return &requirement{kind: specifierReq, ir: ir, name: formatName(lock.NormalizeName(ir.req.Name), ir.extras)}
}

// projectName is the requirement's canonical project.
func (r *requirement) projectName() string {
	switch r.kind {
	case specifierReq:
		return lock.NormalizeName(r.ir.req.Name)
	case explicitReq:
		return r.cand.project
	}
	return requiresPythonID
}

// String is str(requirement) as pip prints it.
func (r *requirement) String() string {
	switch r.kind {
	case specifierReq:
		return r.ir.req.String()
	case explicitReq:
		return r.cand.name + " " + r.cand.version.String()
	}
	return "Python " + r.spec.String()
}

// formatForError is pip's Requirement.format_for_error.
func (r *requirement) formatForError() string {
	switch r.kind {
	case specifierReq:
		parts := strings.Split(r.String(), ",")
		for i := range parts {
			parts[i] = strings.TrimSpace(parts[i])
		}
		if len(parts) == 1 {
			return parts[0]
		}
		return strings.Join(parts[:len(parts)-1], ", ") + " and " + parts[len(parts)-1]
	case explicitReq:
		return r.cand.formatForError()
	}
	return r.String()
}

// lookup is get_candidate_lookup.
func (p *provider) lookup(r *requirement) (*candidate, *installReq) {
	switch r.kind {
	case specifierReq:
		return nil, r.ir
	case explicitReq:
		return r.cand, nil
	}
	if r.spec.Contains(p.python.version, ptrTrue) {
		return p.python, nil
	}
	return nil, nil
}

var ptrTrue = func() *bool { b := true; return &b }()

// satisfiedBy is Requirement.is_satisfied_by.
func (p *provider) satisfiedBy(r *requirement, c *candidate) bool {
	switch r.kind {
	case specifierReq:
		return r.ir.req.Specifier.Contains(c.version, ptrTrue)
	case explicitReq:
		return candidatesEqual(c, r.cand)
	}
	return r.spec.Contains(c.version, ptrTrue)
}

type candKind int

const (
	linkCand candKind = iota
	extrasCand
	installedCand
	pythonCand
)

// candidate is one of pip's Candidate classes.
type candidate struct {
	kind    candKind
	name    string // identifier
	project string
	version *pep440.Version
	// link candidates
	link pydist.Link
	ir   *installReq
	meta *distMeta
	// extras candidates
	base   *candidate
	extras []string // sorted set
	// installed candidates
	dist lock.Dist
}

// distMeta is what resolution reads of a distribution's core metadata.
type distMeta struct {
	rawName        string
	version        *pep440.Version
	requiresDist   []string
	requiresPython string
	hasRP          bool
	providesExtra  []string
	text           *pydist.Metadata
}

func candidatesEqual(a, b *candidate) bool {
	if a == b {
		return true
	}
	if a.kind != b.kind {
		return false
	}
	switch a.kind {
	case linkCand:
		return a.link.WithoutFragment() == b.link.WithoutFragment() && fmt.Sprint(a.link.Hashes) == fmt.Sprint(b.link.Hashes)
	case extrasCand:
		return candidatesEqual(a.base, b.base) && strings.Join(a.extras, ",") == strings.Join(b.extras, ",")
	case installedCand:
		return a.name == b.name && a.version.Equal(b.version)
	}
	return false
}

// formatForError is pip's Candidate.format_for_error.
func (c *candidate) formatForError() string {
	switch c.kind {
	case linkCand:
		from := c.link.URL
		if strings.HasPrefix(from, "file://") {
			from = c.link.Path()
		}
		return fmt.Sprintf("%s %s (from %s)", c.name, c.version, from)
	case extrasCand:
		return fmt.Sprintf("%s [%s]", c.base.formatForError(), strings.Join(c.extras, ", "))
	case installedCand:
		return fmt.Sprintf("%s %s (Installed)", c.name, c.version)
	}
	return "Python " + c.version.String()
}

// provider is pip's PipProvider and Factory over the finder.
type provider struct {
	ctx           context.Context
	bg            context.Context // prefetching's: cancelled by stop
	stop          context.CancelFunc
	wg            sync.WaitGroup
	prefetched    map[string]bool
	env           *Environment
	finder        *finder
	python        *candidate
	installed     map[string]lock.Dist
	userRequested map[string]int
	knownDepths   map[string]float64
	linkCache     map[string]*candidate
	failed        map[string]bool
	extrasCache   map[string]*candidate
	installCache  map[string]*candidate
}

// depth returns known_depths[id] (default +inf).
func (p *provider) depth(id string) float64 {
	if d, ok := p.knownDepths[id]; ok {
		return d
	}
	return math.Inf(1)
}

// preference is pip's get_preference key.
type preference struct {
	notRequiresPython, delay, notPinned, notBacktrackCause bool
	depth, requestedOrder                                  float64
	notUnfree                                              bool
	id                                                     string
}

func (a preference) less(b preference) bool {
	bools := [][2]bool{{a.notRequiresPython, b.notRequiresPython}, {a.delay, b.delay}, {a.notPinned, b.notPinned}, {a.notBacktrackCause, b.notBacktrackCause}}
	for _, x := range bools {
		if x[0] != x[1] {
			return !x[0]
		}
	}
	if a.depth != b.depth {
		return a.depth < b.depth
	}
	if a.requestedOrder != b.requestedOrder {
		return a.requestedOrder < b.requestedOrder
	}
	if a.notUnfree != b.notUnfree {
		return !a.notUnfree
	}
	return a.id < b.id
}

func (p *provider) preference(id string, info []reqInfo, causes []reqInfo) preference {
	var ops []string
	for _, ri := range info {
		if _, ir := p.lookup(ri.req); ir != nil {
			for _, sp := range ir.req.Specifier.Specifiers() {
				ops = append(ops, sp.Op)
			}
		}
	}
	pinned := false
	for _, op := range ops {
		if strings.HasPrefix(op, "==") {
			pinned = true
		}
	}
	var depth float64
	order, requested := p.userRequested[id]
	if requested {
		depth = 1
	} else {
		depth = math.Inf(1)
		for _, ri := range info {
			d := 0.0
			if ri.parent != nil {
				d = p.depth(ri.parent.name)
			}
			depth = math.Min(depth, d)
		}
		depth++
	}
	p.knownDepths[id] = depth
	ro := math.Inf(1)
	if requested {
		ro = float64(order)
	}
	cause := false
	for _, c := range causes {
		if c.req.name == id || (c.parent != nil && c.parent.name == id) {
			cause = true
			break
		}
	}
	return preference{
		notRequiresPython: id != requiresPythonID,
		delay:             id == "setuptools",
		notPinned:         !pinned,
		notBacktrackCause: !cause,
		depth:             depth,
		requestedOrder:    ro,
		notUnfree:         len(ops) == 0,
		id:                id,
	}
}

// makeRequirement is make_requirement_from_spec: nil when the markers
// exclude it.
func (p *provider) makeRequirement(spec string, parent *installReq, extras []string) (*requirement, error) {
	r, err := pep508.ParseRequirement(spec)
	if err != nil {
		return nil, fmt.Errorf("requirement %q: %v: %w", spec, err, ErrUnsupported)
	}
	if r.URL != "" {
		return nil, fmt.Errorf("requirement %q is a direct reference: %w", spec, ErrUnsupported)
	}
	ir := newInstallReq(r)
	ir.parent = parent
	ok, err := p.matchMarkers(ir, extras)
	if err != nil || !ok {
		return nil, err
	}
	return p.specifierRequirement(ir), nil
}

// pythonRequirement is make_requires_python_requirement.
func (p *provider) pythonRequirement(spec pep440.SpecifierSet) *requirement {
	if spec.String() == "" {
		return nil
	}
	return &requirement{kind: pythonReq, spec: spec, name: requiresPythonID}
}

// dependencies is get_dependencies.
func (p *provider) dependencies(c *candidate) ([]*requirement, error) {
	var out []*requirement
	add := func(r *requirement, err error) error {
		if err != nil {
			return err
		}
		if r != nil {
			out = append(out, r)
		}
		return nil
	}
	switch c.kind {
	case linkCand, installedCand:
		reqs, err := p.iterDependencies(c.meta, nil)
		if err != nil {
			return nil, err
		}
		for _, r := range reqs {
			if err := add(p.makeRequirement(r.String(), c.ir, nil)); err != nil {
				return nil, err
			}
		}
		if c.kind == linkCand {
			spec, err := c.meta.requiresPythonSpec()
			if err != nil {
				return nil, err
			}
			if r := p.pythonRequirement(spec); r != nil {
				out = append(out, r)
			}
		}
	case extrasCand:
		out = append(out, &requirement{kind: explicitReq, cand: c.base, name: c.base.name})
		provided := map[string]bool{}
		for _, e := range c.base.meta.providesExtra {
			provided[safeExtra(e)] = true
		}
		var valid []string
		for _, e := range c.extras {
			if provided[e] {
				valid = append(valid, e)
			}
		}
		reqs, err := p.iterDependencies(c.base.meta, valid)
		if err != nil {
			return nil, err
		}
		for _, r := range reqs {
			if err := add(p.makeRequirement(r.String(), c.base.ir, valid)); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// iterDependencies is the importlib backend's iter_dependencies.
func (p *provider) iterDependencies(m *distMeta, extras []string) ([]pep508.Requirement, error) {
	var out []pep508.Requirement
	for _, s := range m.requiresDist {
		r, err := pep508.ParseRequirement(s)
		if err != nil {
			return nil, fmt.Errorf("Requires-Dist %q of %s: %v: %w", s, m.rawName, err, ErrUnsupported)
		}
		if r.Marker == nil {
			out = append(out, r)
			continue
		}
		if len(extras) == 0 {
			ok, err := r.Marker.Evaluate(p.env.markerEnv(""))
			if err != nil {
				return nil, fmt.Errorf("Requires-Dist %q of %s: %v: %w", s, m.rawName, err, ErrUnsupported)
			}
			if ok {
				out = append(out, r)
			}
			continue
		}
		for _, e := range extras {
			ok, err := r.Marker.Evaluate(p.env.markerEnv(safeExtra(e)))
			if err != nil {
				return nil, fmt.Errorf("Requires-Dist %q of %s: %v: %w", s, m.rawName, err, ErrUnsupported)
			}
			if ok {
				out = append(out, r)
				break
			}
		}
	}
	return out, nil
}

// requiresPythonSpec is the distribution's requires_python: an invalid
// one is empty (pip warns and ignores it), a legacy one unsupported.
func (m *distMeta) requiresPythonSpec() (pep440.SpecifierSet, error) {
	if !m.hasRP {
		return pep440.SpecifierSet{}, nil
	}
	spec, err := pep440.ParseSpecifierSet(m.requiresPython)
	switch {
	case err == nil:
		return spec, nil
	case errorsIs(err, pep440.ErrLegacySpecifier):
		return spec, fmt.Errorf("Requires-Python %q of %s: %w", m.requiresPython, m.rawName, ErrUnsupported)
	}
	return pep440.SpecifierSet{}, nil
}

// readMeta reads core metadata as pip's importlib backend does.
func readMeta(b []byte) (*distMeta, error) {
	md, err := pydist.ParseMetadata(b)
	if err != nil {
		return nil, fmt.Errorf("metadata: %w: %w", err, ErrUnsupported)
	}
	name, ok := md.Get("Name")
	if !ok {
		return nil, fmt.Errorf("metadata without a Name: %w", ErrUnsupported)
	}
	m := &distMeta{rawName: name, text: md, requiresDist: md.GetAll("Requires-Dist"), providesExtra: md.GetAll("Provides-Extra")}
	m.requiresPython, m.hasRP = md.Get("Requires-Python")
	if v, ok := md.Get("Version"); ok {
		m.version, _ = pep440.Parse(v)
	}
	return m, nil
}

// metadataOf fetches and reads a link candidate's metadata the way pip's
// preparer does: the PEP 658 file when the index has one (its Name must
// be the requirement's as written), else the wheel's METADATA. A
// candidate pip would discard (MetadataInconsistent) gives nil, nil.
func (p *provider) metadataOf(l pydist.Link, template *installReq) (*distMeta, error) {
	if u, h, ok := l.MetadataURL(); ok {
		b, err := p.finder.f.get(p.ctx, u, pydist.MaxMetadata)
		if err != nil {
			return nil, err
		}
		if h != nil {
			sums, _, err := digest(bytes.NewReader(b), []string{h.Name}, pydist.MaxMetadata)
			if err != nil || sums[h.Name] != h.Value {
				return nil, fmt.Errorf("metadata of %s does not match its hash: %w", redact(l.URL), ErrUnsupported)
			}
		}
		m, err := readMeta(b)
		if err != nil {
			return nil, err
		}
		if m.rawName != template.req.Name {
			return nil, nil
		}
		return m, nil
	}
	w, err := p.wheel(l)
	if err != nil {
		return nil, err
	}
	return p.wheelMeta(w, template.req.Name)
}

// wheel fetches a candidate's file, checking it against the link's hash.
func (p *provider) wheel(l pydist.Link) (*wheelFile, error) {
	w, err := p.finder.f.wheel(p.ctx, l)
	if err != nil {
		return nil, err
	}
	if h, ok := l.Hash(); ok && w.sums[h.Name] != h.Value {
		return nil, fmt.Errorf("%s does not match its %s hash %s: %w", redact(l.URL), h.Name, h.Value, ErrUnsupported)
	}
	return w, nil
}

func (p *provider) wheelMeta(w *wheelFile, name string) (*distMeta, error) {
	b, err := readWheelMetadata(w.path, w.size, lock.NormalizeName(name))
	if err != nil {
		return nil, err
	}
	return readMeta(b)
}

// linkCandidate is _make_candidate_from_link: one candidate per link
// (its metadata read once, with the first template that asked for it), or
// nil for a link pip failed to build a candidate of.
func (p *provider) linkCandidate(ic *installCandidate, extras []string, template *installReq, name string) (*candidate, error) {
	key := ic.link.URL
	if p.failed[key] {
		return nil, nil
	}
	base, ok := p.linkCache[key]
	if !ok {
		m, err := p.metadataOf(ic.link, template)
		if err != nil {
			return nil, err
		}
		if m == nil || lock.NormalizeName(m.rawName) != name || m.version == nil || !m.version.Equal(ic.version) {
			p.failed[key] = true
			return nil, nil
		}
		base = &candidate{kind: linkCand, name: name, project: name, version: ic.version, link: ic.link, ir: template, meta: m}
		p.linkCache[key] = base
	}
	if len(extras) == 0 {
		return base, nil
	}
	return p.extrasCandidate(base, extras), nil
}

func (p *provider) extrasCandidate(base *candidate, extras []string) *candidate {
	key := fmt.Sprintf("%p[%s]", base, strings.Join(extras, ","))
	if c, ok := p.extrasCache[key]; ok {
		return c
	}
	c := &candidate{kind: extrasCand, name: formatName(base.project, extras), project: base.project, version: base.version,
		base: base, extras: extras}
	p.extrasCache[key] = c
	return c
}

// installedCandidate is _make_candidate_from_dist.
func (p *provider) installedCandidate(d lock.Dist, extras []string, template *installReq) (*candidate, error) {
	base, ok := p.installCache[d.Name]
	if !ok {
		v, err := pep440.Parse(d.Version)
		if err != nil {
			return nil, fmt.Errorf("locked %s %s: %w", d.Name, d.Version, ErrUnsupported)
		}
		if d.Meta == nil {
			return nil, fmt.Errorf("locked %s %s has no recorded metadata: %w", d.Name, d.Version, ErrUnsupported)
		}
		m := &distMeta{rawName: d.Meta.Name, version: v, requiresDist: d.Meta.RequiresDist, providesExtra: d.Meta.ProvidesExtra,
			requiresPython: d.Meta.RequiresPython, hasRP: d.Meta.RequiresPython != ""}
		base = &candidate{kind: installedCand, name: d.Name, project: d.Name, version: v, dist: d, meta: m, ir: template}
		p.installCache[d.Name] = base
	}
	if len(extras) == 0 {
		return base, nil
	}
	return p.extrasCandidate(base, extras), nil
}
