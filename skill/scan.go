package skill

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/skillbuild/skillbuild/config"
	"github.com/skillbuild/skillbuild/engine"
	"github.com/skillbuild/skillbuild/scan"
	"github.com/skillbuild/skillbuild/skill/api"
)

// Scan checks requirements against the vulnerability database: the set
// install would install (resolved in the same base with the same index
// settings), or with NoResolve the pins given as the whole set. A
// vulnerable set is the verdict and a *scan.VulnerableError.
func (s *Service) Scan(ctx context.Context, req api.ScanRequest, progress Progress) (*api.ScanResult, error) {
	policy, err := s.scanPolicy(req.MinSeverity, req.AllowStaleDB, req.Allow)
	if err != nil {
		return nil, err
	}
	pkgs, err := s.scanPackages(ctx, req, progress)
	if err != nil {
		return nil, err
	}
	db, err := s.openScanDB(req.Local.DB)
	if err != nil {
		return nil, err
	}
	verdict, err := scan.Check(db, pkgs, policy, time.Now())
	if err != nil && !api.IsVulnerable(err) {
		return nil, err
	}
	for _, w := range verdict.Warnings {
		fmt.Fprintln(s.opts.log, "skillbuild: warning:", w)
	}
	return &verdict, err
}

// scanPackages is the set to scan: the pins themselves with NoResolve,
// else the resolution.
func (s *Service) scanPackages(ctx context.Context, req api.ScanRequest, progress Progress) ([]scan.Package, error) {
	in := config.Input{Dir: "/", Requirements: req.Requirements, Base: req.Base, IndexURL: req.IndexURL,
		ExtraIndexURL: req.ExtraIndexURLs, AllowSdist: req.AllowSdist, Set: map[string]bool{}}
	if req.Local.Input != nil {
		in = *req.Local.Input
	}
	if len(in.Requirements) == 0 && len(in.RequirementFiles) == 0 {
		return nil, fmt.Errorf("nothing to scan: %s: %w", s.advise("give requirements as arguments or with -r FILE", `the request's "requirements" is empty`), errdefs.ErrInvalidArgument)
	}
	if !req.NoResolve {
		// The policy is the request's (scan takes the ID shorthand of
		// allow entries, which install does not), so the allow entries are
		// not the skill's here.
		in.Allow = nil
		return s.resolvePackages(ctx, in, progress)
	}
	var pins []config.Pin
	if len(in.Requirements) > 0 {
		p, err := config.ParsePins("requirements", strings.NewReader(strings.Join(in.Requirements, "\n")))
		if err != nil {
			return nil, err
		}
		pins = append(pins, p...)
	}
	for _, f := range in.RequirementFiles {
		p, err := readPins(f)
		if err != nil {
			return nil, err
		}
		pins = append(pins, p...)
	}
	return pinnedPackages(pins)
}

// resolvePackages resolves the requirements of in (its index, base and
// sdist settings) like install does.
func (s *Service) resolvePackages(ctx context.Context, in config.Input, progress Progress) ([]scan.Package, error) {
	in.ID, in.Version = "scan", "1"
	skill, err := s.load(in)
	if err != nil {
		return nil, err
	}
	// The builtin resolver answers without starting BuildKit when it can
	// (the base and its python known from an earlier build).
	quick := append([]engine.Opt{engine.WithAddress(s.opts.address), engine.WithNamespace(s.opts.namespace),
		engine.WithRoot(s.opts.root)}, s.opts.builder.engineOpts()...)
	if locked, ok, err := engine.ResolveWithoutBuilder(ctx, skill, quick...); err != nil || ok {
		if err != nil {
			return nil, err
		}
		return scan.Packages(locked), nil
	}
	eng, err := s.newEngine(ctx)
	if err != nil {
		return nil, err
	}
	defer eng.Close()
	status, forwarded := forward(progress)
	locked, err := eng.Resolve(ctx, skill, status) // closes status
	<-forwarded
	if err != nil {
		return nil, err
	}
	return scan.Packages(locked), nil
}

// scanPolicy is a scan's policy from its minimum severity, stale database
// switch and allow entries (ID, ID@PACKAGE, or
// ID[@PACKAGE]:YYYY-MM-DD:REASON).
func (s *Service) scanPolicy(minSeverity string, allowStale bool, allow []string) (config.Policy, error) {
	p := config.Policy{MinSeverity: strings.ToLower(minSeverity), AllowStaleDB: allowStale}
	if err := config.ValidateSeverity(p.MinSeverity); err != nil {
		return p, s.inputError(err)
	}
	for _, a := range allow {
		if strings.Contains(a, ":") {
			entry, err := config.ParseAllow(a)
			if err != nil {
				return p, s.inputError(err)
			}
			p.Allow = append(p.Allow, entry)
			continue
		}
		id, pkg, _ := strings.Cut(a, "@")
		if id == "" {
			return p, fmt.Errorf("%s %q: empty id: %w", s.advise("--allow", "allow"), a, errdefs.ErrInvalidArgument)
		}
		p.Allow = append(p.Allow, config.AllowEntry{ID: id, Package: pkg, Reason: "--allow on the command line"})
	}
	return p, nil
}

// pinnedPackages is the set of pins to scan as it is; a name pinned twice
// is an error.
func pinnedPackages(pins []config.Pin) ([]scan.Package, error) {
	seen := map[string]config.Pin{}
	pkgs := make([]scan.Package, 0, len(pins))
	for _, p := range pins {
		if first, dup := seen[p.Name]; dup {
			return nil, fmt.Errorf("%s is pinned twice (%s:%d and %s:%d): %w", p.Name, first.Source, first.Line, p.Source, p.Line, errdefs.ErrInvalidArgument)
		}
		seen[p.Name] = p
		pkgs = append(pkgs, scan.Package{Name: p.Name, Version: p.Version})
	}
	return pkgs, nil
}

func readPins(file string) ([]config.Pin, error) {
	data, err := config.ReadInput(file, config.MaxRequirementsSize)
	if err != nil {
		return nil, fmt.Errorf("requirements file: %w", err)
	}
	return config.ParsePins(file, bytes.NewReader(data))
}

// openScanDB opens the database at path (an OSV PyPI export zip, or a
// state root holding osv/), or the service root's when path is empty.
func (s *Service) openScanDB(path string) (*scan.DB, error) {
	if path == "" {
		return scan.Open(s.opts.root)
	}
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return scan.Open(path)
	}
	return scan.OpenFile(path)
}
