package scan

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/skillbuild/skillbuild/config"
	"github.com/skillbuild/skillbuild/lock"
)

// Default database ages (see [config.Policy]).
const (
	DefaultWarnAge = 7 * 24 * time.Hour
	DefaultMaxAge  = 30 * 24 * time.Hour
)

// Package is one pinned distribution to scan.
type Package struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// Finding is one vulnerability affecting one package. Records that alias
// each other (share an id or alias) are merged into one finding.
type Finding struct {
	ID       string   `json:"id"`
	Aliases  []string `json:"aliases,omitempty"`
	Package  string   `json:"package"`
	Version  string   `json:"version"`
	Fixed    []string `json:"fixed,omitempty"`
	Severity string   `json:"severity"`
	// CVSS is the vector the severity came from, if any.
	CVSS    string `json:"cvss,omitempty"`
	Summary string `json:"summary,omitempty"`
}

// AllowedFinding is a finding the policy accepts, with the reason given.
type AllowedFinding struct {
	Finding
	AllowedBy string    `json:"allowed_by"`
	Reason    string    `json:"reason"`
	Expires   time.Time `json:"expires,omitzero"`
}

// DBInfo describes the database a verdict was reached with.
type DBInfo struct {
	Manifest
	// Age is how long ago the source last confirmed the data current.
	Age time.Duration `json:"-"`
	// AgeSeconds is Age in whole seconds, for JSON.
	AgeSeconds int64 `json:"age_seconds"`
	// Stale is set when Age exceeds the warn age.
	Stale bool `json:"stale"`
	// StaleAllowed is set when Age exceeds the max age and the policy's
	// AllowStaleDB let the scan proceed anyway. Callers must log it.
	StaleAllowed bool `json:"stale_allowed"`
}

// Verdict is the outcome of a scan.
type Verdict struct {
	// Safe is true when no finding blocks.
	Safe     bool      `json:"safe"`
	Packages []Package `json:"packages"`
	// Findings block: not allowed, at or above the threshold (or unknown severity).
	Findings []Finding `json:"vulnerabilities"`
	// Allowed findings are accepted by an allow entry.
	Allowed []AllowedFinding `json:"allowed"`
	// Below are findings under the policy's MinSeverity.
	Below    []Finding `json:"below_threshold"`
	DB       DBInfo    `json:"db"`
	Warnings []string  `json:"warnings,omitempty"`
	// Skipped is set when the policy disabled scanning (NoScan); nothing
	// was matched and Safe is true.
	Skipped bool `json:"skipped,omitempty"`
}

// VulnerableError refuses a package set; callers branch on it with errors.As.
type VulnerableError struct {
	Findings []Finding
}

// Error lists the refused packages and advisory ids (the first five).
func (e *VulnerableError) Error() string {
	ids := make([]string, 0, len(e.Findings))
	for _, f := range e.Findings {
		ids = append(ids, f.Package+"=="+f.Version+" "+f.ID)
	}
	if len(ids) > 5 {
		ids = append(ids[:5], fmt.Sprintf("and %d more", len(e.Findings)-5))
	}
	return fmt.Sprintf("refused: %d known vulnerabilities (%s)", len(e.Findings), strings.Join(ids, ", "))
}

// Check scans pkgs against db and applies policy as of now. It returns the
// verdict and, when a finding blocks, a *VulnerableError carrying the
// blocking findings. Other errors: a package version that is not PEP 440 or
// an invalid policy (bad severity, expired allow entry) is ErrInvalidArgument;
// a database older than the max age without AllowStaleDB is
// ErrFailedPrecondition. A finding blocks unless an allow entry matches its
// id or an alias (and its package, if given), or its severity is known and
// below policy.MinSeverity; unknown severity always blocks.
func Check(db *DB, pkgs []Package, policy config.Policy, now time.Time) (Verdict, error) {
	v := Verdict{Packages: slices.Clone(pkgs), Findings: []Finding{}, Allowed: []AllowedFinding{}, Below: []Finding{}}
	if v.Packages == nil {
		v.Packages = []Package{}
	}
	if policy.NoScan {
		v.Safe, v.Skipped = true, true
		v.Warnings = append(v.Warnings, "vulnerability scan disabled by policy (no_scan)")
		return v, nil
	}
	if db == nil {
		return v, fmt.Errorf("no vulnerability database loaded: %s: %w", fixHint, errdefs.ErrFailedPrecondition)
	}
	min, err := ParseSeverity(policy.MinSeverity)
	if err != nil {
		return v, fmt.Errorf("policy: %w", err)
	}
	for _, a := range policy.Allow {
		if a.ID == "" {
			return v, fmt.Errorf("policy: allow entry without an id: %w", errdefs.ErrInvalidArgument)
		}
		if !a.Expires.IsZero() && now.After(a.Expires) {
			return v, fmt.Errorf("policy: allow entry %s expired on %s; remove it or extend it: %w", allowName(a), a.Expires.Format(time.DateOnly), errdefs.ErrInvalidArgument)
		}
	}
	if err := checkAge(&v, db.manifest, policy, now); err != nil {
		return v, err
	}
	findings, err := db.Match(pkgs)
	if err != nil {
		return v, err
	}
	v.Findings = make([]Finding, 0, len(findings))
	for _, f := range findings {
		if a, ok := allowedBy(f, policy.Allow); ok {
			v.Allowed = append(v.Allowed, AllowedFinding{Finding: f, AllowedBy: a.ID, Reason: a.Reason, Expires: a.Expires})
			continue
		}
		if min != "" && f.Severity != SeverityUnknown && severityRank[f.Severity] < severityRank[min] {
			v.Below = append(v.Below, f)
			continue
		}
		v.Findings = append(v.Findings, f)
	}
	v.Safe = len(v.Findings) == 0
	if !v.Safe {
		return v, &VulnerableError{Findings: v.Findings}
	}
	return v, nil
}

func allowName(a config.AllowEntry) string {
	if a.Package != "" {
		return a.ID + " (" + a.Package + ")"
	}
	return a.ID
}

func checkAge(v *Verdict, m Manifest, policy config.Policy, now time.Time) error {
	warn, max := policy.WarnAge, policy.MaxAge
	if warn <= 0 {
		warn = DefaultWarnAge
	}
	if max <= 0 {
		max = DefaultMaxAge
	}
	checked := m.CheckedAt
	if checked.IsZero() {
		checked = m.FetchedAt
	}
	v.DB = DBInfo{Manifest: m, Age: now.Sub(checked)}
	v.DB.AgeSeconds = int64(v.DB.Age / time.Second)
	days := func(d time.Duration) string { return fmt.Sprintf("%.1f days", d.Hours()/24) }
	if v.DB.Age > warn {
		v.DB.Stale = true
		v.Warnings = append(v.Warnings, fmt.Sprintf("vulnerability database is %s old (warn after %s): run `skillbuild db update`", days(v.DB.Age), days(warn)))
	}
	if v.DB.Age > max {
		if !policy.AllowStaleDB {
			return fmt.Errorf("vulnerability database is %s old, older than the maximum %s: run `skillbuild db update` (or allow a stale database in the policy): %w", days(v.DB.Age), days(max), errdefs.ErrFailedPrecondition)
		}
		v.DB.StaleAllowed = true
		v.Warnings = append(v.Warnings, fmt.Sprintf("scanning with a stale vulnerability database (%s old, maximum %s) because the policy allows it", days(v.DB.Age), days(max)))
	}
	return nil
}

// allowedBy returns the first allow entry matching f.
func allowedBy(f Finding, allow []config.AllowEntry) (config.AllowEntry, bool) {
	for _, a := range allow {
		if a.Package != "" && lock.NormalizeName(a.Package) != lock.NormalizeName(f.Package) {
			continue
		}
		if strings.EqualFold(a.ID, f.ID) {
			return a, true
		}
		for _, alias := range f.Aliases {
			if strings.EqualFold(a.ID, alias) {
				return a, true
			}
		}
	}
	return config.AllowEntry{}, false
}

// Match returns every finding for pkgs, without policy: withdrawn records
// are never reported, and records that share an id or alias for the same
// package are merged. A version that is not PEP 440 is ErrInvalidArgument.
func (db *DB) Match(pkgs []Package) ([]Finding, error) {
	var out []Finding
	var buf []byte // one read buffer for every package's index blob
	for _, p := range pkgs {
		if p.Name == "" {
			return nil, fmt.Errorf("package with version %q has no name: %w", p.Version, errdefs.ErrInvalidArgument)
		}
		ver, err := parseVersion(p.Version)
		if err != nil {
			return nil, fmt.Errorf("package %s: version %q is not a PEP 440 version: %w", p.Name, p.Version, errdefs.ErrInvalidArgument)
		}
		name := lock.NormalizeName(p.Name)
		hits, err := db.matchPackage(name, p.Version, ver, &buf)
		if err != nil {
			return nil, err
		}
		out = append(out, dedupe(hits)...)
	}
	return out, nil
}

// dedupe merges findings (all for one package) whose id/alias sets overlap.
func dedupe(hits []Finding) []Finding {
	if len(hits) < 2 {
		return hits
	}
	parent := make([]int, len(hits))
	for i := range parent {
		parent[i] = i
	}
	var find func(int) int
	find = func(i int) int {
		for parent[i] != i {
			parent[i] = parent[parent[i]]
			i = parent[i]
		}
		return i
	}
	owner := map[string]int{}
	for i, h := range hits {
		for _, id := range append([]string{h.ID}, h.Aliases...) {
			if j, ok := owner[id]; ok {
				parent[find(i)] = find(j)
			} else {
				owner[id] = i
			}
		}
	}
	groups := map[int][]int{}
	var roots []int
	for i := range hits {
		r := find(i)
		if _, ok := groups[r]; !ok {
			roots = append(roots, r)
		}
		groups[r] = append(groups[r], i)
	}
	out := make([]Finding, 0, len(roots))
	for _, r := range roots {
		members := groups[r]
		ids := map[string]bool{}
		merged := hits[members[0]]
		for _, i := range members {
			h := hits[i]
			ids[h.ID] = true
			for _, a := range h.Aliases {
				ids[a] = true
			}
			merged.Fixed = append(merged.Fixed, h.Fixed...)
			if h.Severity != SeverityUnknown && (merged.Severity == SeverityUnknown || severityRank[h.Severity] > severityRank[merged.Severity]) {
				merged.Severity, merged.CVSS = h.Severity, h.CVSS
			}
			if merged.Summary == "" {
				merged.Summary = h.Summary
			}
		}
		// The primary id is the smallest record id in the group, so the
		// choice does not depend on load order.
		for _, i := range members {
			if hits[i].ID < merged.ID {
				merged.ID = hits[i].ID
			}
		}
		delete(ids, merged.ID)
		merged.Aliases = sortedKeys(ids)
		merged.Fixed = sortVersions(merged.Fixed)
		out = append(out, merged)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// sortVersions sorts and de-duplicates version strings by PEP 440 order
// (strings that do not parse sort after the others, as text). Each string
// is parsed once.
func sortVersions(vs []string) []string {
	if len(vs) < 2 {
		return vs
	}
	type parsed struct {
		s  string
		v  version
		ok bool
	}
	ps := make([]parsed, len(vs))
	for i, s := range vs {
		v, err := parseVersion(s)
		ps[i] = parsed{s, v, err == nil}
	}
	slices.SortFunc(ps, func(a, b parsed) int {
		switch {
		case a.ok && b.ok:
			if c := a.v.Compare(b.v); c != 0 {
				return c
			}
		case a.ok:
			return -1
		case b.ok:
			return 1
		}
		return strings.Compare(a.s, b.s)
	})
	for i := range ps {
		vs[i] = ps[i].s
	}
	return slices.Compact(vs)
}
