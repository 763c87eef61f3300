package resolver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"sort"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/skillbuild/skillbuild/lock"
	"github.com/skillbuild/skillbuild/pep440"
	"github.com/skillbuild/skillbuild/pep508"
)

// Resolver resolves requirements against one set of sources (index URLs
// and find-links directories) for one interpreter. It is not safe for
// concurrent use; make one per build.
type Resolver struct {
	o options
}

type options struct {
	transport http.RoundTripper
	indexes   []string
	trusted   []string
	findLinks []findLinksDir
	env       *Environment
	wheelDir  string
	reqFile   string
}

// Opt configures New.
type Opt func(*options) error

// WithTransport sends every HTTP request through rt (the build's index
// proxy). Required when there are index URLs.
func WithTransport(rt http.RoundTripper) Opt {
	return func(o *options) error {
		if rt == nil {
			return fmt.Errorf("nil transport: %w", errdefs.ErrInvalidArgument)
		}
		o.transport = rt
		return nil
	}
}

// WithIndexURLs sets the index URLs, the first as --index-url, the rest
// as --extra-index-url, exactly as the pip step would get them (the
// locked files' URLs are relative to these).
func WithIndexURLs(urls ...string) Opt {
	return func(o *options) error {
		o.indexes = append(o.indexes, urls...)
		return nil
	}
}

// WithTrustedHosts are hosts pip would be given as --trusted-host (plain
// http allowed).
func WithTrustedHosts(hosts ...string) Opt {
	return func(o *options) error {
		o.trusted = append(o.trusted, hosts...)
		return nil
	}
}

// WithFindLinks adds a find-links directory: hostDir is read, stepDir is
// the absolute path the pip step would see it at (the locked files'
// file:// URLs name it).
func WithFindLinks(hostDir, stepDir string) Opt {
	return func(o *options) error {
		if !path.IsAbs(stepDir) || path.Clean(stepDir) != stepDir {
			return fmt.Errorf("find-links step directory %q must be a clean absolute path: %w", stepDir, errdefs.ErrInvalidArgument)
		}
		o.findLinks = append(o.findLinks, findLinksDir{host: hostDir, step: stepDir})
		return nil
	}
}

// WithEnvironment sets the interpreter to resolve for (ParseEnvironment
// of the base's EnvironmentScript output). Required.
func WithEnvironment(env *Environment) Opt {
	return func(o *options) error {
		if env == nil {
			return fmt.Errorf("nil environment: %w", errdefs.ErrInvalidArgument)
		}
		if err := env.check(); err != nil {
			return err
		}
		o.env = env
		return nil
	}
}

// WithWheelDir is where downloaded wheels are kept (Result.Wheels); the
// caller owns and removes it. Required to download wheels.
func WithWheelDir(dir string) Opt {
	return func(o *options) error {
		o.wheelDir = dir
		return nil
	}
}

// WithRequirementsFile is the path pip would read the requirement lines
// from, as conflicts name them ("-r FILE (line N)"); default
// "requirements.txt".
func WithRequirementsFile(p string) Opt {
	return func(o *options) error {
		o.reqFile = p
		return nil
	}
}

// New returns a resolver.
func New(opts ...Opt) (*Resolver, error) {
	o := options{reqFile: "requirements.txt"}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if o.env == nil {
		return nil, fmt.Errorf("resolver: no environment: %w", errdefs.ErrInvalidArgument)
	}
	if len(o.indexes) > 0 && o.transport == nil {
		return nil, fmt.Errorf("resolver: index URLs without a transport: %w", errdefs.ErrInvalidArgument)
	}
	return &Resolver{o: o}, nil
}

// Result is a resolution.
type Result struct {
	// Lock is every distribution of the resolution, sorted by name, each
	// with its metadata: the lock pip's report gives. With installed
	// distributions, only those added to them.
	Lock lock.Lock
	// Wheels maps the URL of every wheel the resolver downloaded to the
	// file it is kept in (in the wheel directory), so an install step can
	// use it rather than fetch it again. Find-links files are not in it.
	Wheels map[string]string
	// Requests counts the HTTP requests made.
	Requests int
}

// Resolve resolves the requirement lines (PEP 508, no URLs, as a
// requirements file holds them) as `pip install --dry-run
// --only-binary=:all:` would, with installed (a previous lock, each with
// its metadata) as the installed distributions (nil: --ignore-installed).
// With installed, Result.Lock holds only what must be added; a
// distribution it holds that installed holds too means pip would replace
// it.
func (r *Resolver) Resolve(ctx context.Context, lines []string, installed lock.Lock) (*Result, error) {
	client := &http.Client{Transport: r.o.transport}
	if client.Transport == nil {
		client.Transport = refuseTransport{}
	}
	f := newFetcher(client, r.o.wheelDir)
	fd, err := newFinder(f, r.o.env, r.o.indexes, r.o.trusted, r.o.findLinks)
	if err != nil {
		return nil, err
	}
	pyv, _ := pep440.Parse(r.o.env.PythonVersion)
	p := &provider{ctx: ctx, env: r.o.env, finder: fd, installed: map[string]lock.Dist{}, userRequested: map[string]int{},
		knownDepths: map[string]float64{}, linkCache: map[string]*candidate{}, failed: map[string]bool{},
		extrasCache: map[string]*candidate{}, installCache: map[string]*candidate{},
		python: &candidate{kind: pythonCand, name: requiresPythonID, project: requiresPythonID, version: pyv}}
	for _, d := range installed {
		p.installed[d.Name] = d
	}
	p.bg, p.stop = context.WithCancel(ctx)
	p.prefetched = map[string]bool{}
	defer p.wait()
	var roots []*requirement
	for i, line := range lines {
		req, err := p.userRequirement(line, fmt.Sprintf("-r %s (line %d)", r.o.reqFile, i+1))
		if err != nil {
			return nil, err
		}
		if req == nil {
			continue
		}
		if _, ok := p.userRequested[req.name]; !ok {
			p.userRequested[req.name] = i
		}
		roots = append(roots, req)
	}
	p.prefetch(roots)
	res := &resolution{p: p}
	mapping, err := res.resolve(roots)
	var imp *impossible
	if errors.As(err, &imp) {
		return nil, p.explain(imp.causes)
	}
	if err != nil {
		return nil, err
	}
	out := &Result{Wheels: map[string]string{}}
	for _, k := range mapping.keys {
		c := mapping.m[k]
		if c.kind != linkCand {
			continue
		}
		d, err := p.lockEntry(c)
		if err != nil {
			return nil, err
		}
		out.Lock = append(out.Lock, d)
	}
	sort.Slice(out.Lock, func(i, j int) bool { return out.Lock[i].Name < out.Lock[j].Name })
	p.wait()
	for u, fl := range f.wheels {
		if fl.err == nil && fl.v.remote {
			out.Wheels[u] = fl.v.path
		}
	}
	out.Requests = int(f.requests.Load())
	return out, nil
}

// refuseTransport is the transport of a resolver without index URLs.
type refuseTransport struct{}

func (refuseTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	return nil, fmt.Errorf("no network access configured for %s: %w", redact(req.URL.String()), errdefs.ErrPermissionDenied)
}

// userRequirement reads a line of the requirements file as pip does (the
// marker split off at the first ";"); nil when its marker excludes it.
func (p *provider) userRequirement(line, comesFrom string) (*requirement, error) {
	name, marker, hasMarker := strings.Cut(line, ";")
	r, err := pep508.ParseRequirement(strings.TrimSpace(name))
	if err != nil {
		return nil, fmt.Errorf("requirement %q: %v: %w", line, err, ErrUnsupported)
	}
	if r.URL != "" || r.Marker != nil {
		return nil, fmt.Errorf("requirement %q: %w", line, ErrUnsupported)
	}
	ir := newInstallReq(r)
	if hasMarker && strings.TrimSpace(marker) != "" {
		// pip keeps a line's marker apart from its requirement (which it
		// prints without it).
		if ir.marker, err = pep508.ParseMarker(strings.TrimSpace(marker)); err != nil {
			return nil, fmt.Errorf("requirement %q: %v: %w", line, err, ErrUnsupported)
		}
	}
	ir.comesFrom, ir.userSupplied = comesFrom, true
	ok, err := p.matchMarkers(ir, nil)
	if err != nil || !ok {
		return nil, err
	}
	return p.specifierRequirement(ir), nil
}

// lockEntry is a pinned link candidate as the lock records it from pip's
// report: the file (downloaded now if only its PEP 658 metadata was
// read), its URL without fragment, the link's sha256 or the file's, and
// the wheel's metadata.
func (p *provider) lockEntry(c *candidate) (lock.Dist, error) {
	w, err := p.wheel(c.link)
	if err != nil {
		return lock.Dist{}, err
	}
	sum := w.sums["sha256"]
	if h, ok := c.link.Hash(); ok {
		if h.Name != "sha256" {
			return lock.Dist{}, fmt.Errorf("%s: the index gives only a %s hash: %w", redact(c.link.URL), h.Name, ErrUnsupported)
		}
		if h.Value != sum {
			return lock.Dist{}, fmt.Errorf("%s: sha256 %s, the index says %s: %w", redact(c.link.URL), sum, h.Value, ErrUnsupported)
		}
	}
	m := c.meta
	if _, _, ok := c.link.MetadataURL(); ok {
		// pip reports the metadata of the wheel it downloaded last.
		if m, err = p.wheelMeta(w, c.ir.req.Name); err != nil {
			return lock.Dist{}, err
		}
	}
	version, _ := m.text.Get("Version")
	raw := c.link.WithoutFragment()
	u, err := url.Parse(raw)
	if err != nil {
		return lock.Dist{}, fmt.Errorf("%s: %v: %w", raw, err, ErrUnsupported)
	}
	filename := path.Base(u.Path)
	return lock.Dist{
		Name:      lock.NormalizeName(m.rawName),
		Version:   version,
		Filename:  filename,
		URL:       raw,
		SHA256:    strings.ToLower(sum),
		Requested: c.ir.userSupplied,
		Sdist:     !strings.HasSuffix(filename, ".whl"),
		Meta: &lock.Metadata{Name: m.rawName, RequiresDist: m.requiresDist, RequiresPython: m.requiresPython,
			ProvidesExtra: m.providesExtra},
	}, nil
}

// explain turns resolvelib's ResolutionImpossible into what pip reports
// (Factory.get_installation_error).
func (p *provider) explain(causes []reqInfo) error {
	var py []reqInfo
	for _, c := range causes {
		if c.req.kind == pythonReq && !p.satisfiedBy(c.req, p.python) {
			py = append(py, c)
		}
	}
	if len(py) == 1 {
		return &PythonError{Message: fmt.Sprintf("Package %s requires a different Python: %s not in %s",
			pyRepr(py[0].parent.name), p.python.version, pyRepr(py[0].req.spec.String()))}
	}
	if len(py) > 1 {
		msg := fmt.Sprintf("Packages require a different Python. %s not in:", p.python.version)
		for _, c := range py {
			msg += fmt.Sprintf("\n%s (required by %s)", pyRepr(c.req.spec.String()), c.parent.formatForError())
		}
		return &PythonError{Message: msg}
	}
	if len(causes) == 1 {
		c := causes[0]
		disp := c.req.String()
		if c.parent != nil {
			disp += " (from " + c.parent.name + ")"
		}
		e := &NoMatchError{Name: c.req.projectName(), Requirement: disp}
		if c.req.kind != pythonReq {
			all, err := p.finder.findAll(p.ctx, c.req.projectName())
			if err != nil {
				return err
			}
			var vs []*pep440.Version
			seen := map[string]bool{}
			for _, ic := range all {
				if k := ic.version.Canonical(); !seen[k] {
					seen[k] = true
					vs = append(vs, ic.version)
				}
			}
			sort.Slice(vs, func(i, j int) bool { return vs[i].Compare(vs[j]) < 0 })
			for _, v := range vs {
				e.Versions = append(e.Versions, v.String())
			}
		}
		return e
	}
	triggers := map[string]bool{}
	e := &ConflictError{}
	for _, c := range causes {
		if c.parent == nil {
			triggers[c.req.formatForError()] = true
		} else {
			triggers[describeTrigger(c.parent)] = true
		}
		if c.parent != nil {
			e.Causes = append(e.Causes, fmt.Sprintf("%s %s depends on %s", c.parent.name, c.parent.version, c.req.formatForError()))
		} else {
			e.Causes = append(e.Causes, "The user requested "+c.req.formatForError())
		}
	}
	for t := range triggers {
		e.Triggers = append(e.Triggers, t)
	}
	sort.Strings(e.Triggers)
	return e
}

// describeTrigger is pip's describe_trigger.
func describeTrigger(parent *candidate) string {
	if parent.kind != linkCand || parent.ir == nil {
		return parent.name + "==" + parent.version.String()
	}
	switch {
	case parent.ir.parent != nil:
		return parent.ir.parent.req.Name
	case parent.ir.comesFrom != "":
		return parent.ir.comesFrom
	}
	return parent.name + "==" + parent.version.String()
}

// pyRepr is Python's repr of a str without quotes or backslashes in it.
func pyRepr(s string) string {
	if strings.Contains(s, "'") && !strings.Contains(s, `"`) {
		return `"` + s + `"`
	}
	return "'" + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), "'", `\'`) + "'"
}
