package scan

import (
	"slices"

	"github.com/skillbuild/skillbuild/pep440"
)

// version is a parsed PEP 440 version.
type version = *pep440.Version

// parseVersion parses s as a PEP 440 version, as pip does (package
// pep440): strings that are not PEP 440 (e.g. "0.2.0-n653") are errors,
// which lets the matcher tell junk in the data apart from real versions.
func parseVersion(s string) (version, error) { return pep440.Parse(s) }

// eventKind orders the kinds of events that share a version.
type eventKind int

const (
	evIntroduced eventKind = iota
	evFixed
	evLastAffected
	evLimit
)

// event is a parsed range event. zero marks introduced "0" (before every
// version).
type event struct {
	kind eventKind
	v    version
	zero bool
}

// compiledRange is an ECOSYSTEM range with its events parsed and sorted.
type compiledRange struct {
	events []event
	limits []version
	// all is set when the range cannot be evaluated safely (an unparseable
	// introduced event): conservatively, every version is affected.
	all bool
}

// entry is one affected package of one record, ready to match.
type entry struct {
	rec      *Record
	aff      *Affected
	ranges   []compiledRange
	versions []version // explicit versions that parse as PEP 440, sorted
	fixed    []string  // fixed events, as written, for reporting
	severity string    // highest CVSS rating of the record and entry
	cvss     string    // the vector it came from
}

// compile parses the ranges and versions of a. Unparseable versions in the
// data never fail: a junk fixed, last_affected or limit event is dropped (the
// range then extends further: conservative); a junk introduced event makes
// the range affect every version (conservative); a junk explicit version is
// skipped (a PEP 440 version can never equal it). GIT and SEMVER ranges are
// ignored: GIT events are commits, and PyPI versions are not SemVer.
func compile(rec *Record, a *Affected) entry {
	e := entry{rec: rec, aff: a}
	e.severity, e.cvss = severityOf(rec.Severity, a.Severity)
	for _, s := range a.Versions {
		if v, err := parseVersion(s); err == nil {
			e.versions = append(e.versions, v)
		}
	}
	slices.SortFunc(e.versions, func(x, y version) int { return x.Compare(y) })
	for _, r := range a.Ranges {
		if r.Type != "ECOSYSTEM" {
			continue
		}
		var cr compiledRange
		for _, ev := range r.Events {
			switch {
			case ev.Introduced != "":
				if ev.Introduced == "0" {
					cr.events = append(cr.events, event{kind: evIntroduced, zero: true})
				} else if v, err := parseVersion(ev.Introduced); err == nil {
					cr.events = append(cr.events, event{kind: evIntroduced, v: v})
				} else {
					cr.all = true
				}
			case ev.Fixed != "":
				e.fixed = append(e.fixed, ev.Fixed)
				if v, err := parseVersion(ev.Fixed); err == nil {
					cr.events = append(cr.events, event{kind: evFixed, v: v})
				}
			case ev.LastAffected != "":
				if v, err := parseVersion(ev.LastAffected); err == nil {
					cr.events = append(cr.events, event{kind: evLastAffected, v: v})
				}
			case ev.Limit != "":
				if ev.Limit == "*" {
					continue // no limit
				}
				if v, err := parseVersion(ev.Limit); err == nil {
					cr.limits = append(cr.limits, v)
				}
			}
		}
		slices.SortStableFunc(cr.events, func(x, y event) int {
			switch {
			case x.zero && y.zero:
				return 0
			case x.zero:
				return -1
			case y.zero:
				return 1
			}
			return x.v.Compare(y.v)
		})
		e.ranges = append(e.ranges, cr)
	}
	return e
}

// affects reports whether v is affected, per the OSV schema's evaluation:
// v is affected if it equals a listed version or falls in any range.
func (e *entry) affects(v version) bool {
	if _, found := slices.BinarySearchFunc(e.versions, v, func(x, y version) int { return x.Compare(y) }); found {
		return true
	}
	for i := range e.ranges {
		if e.ranges[i].includes(v) {
			return true
		}
	}
	return false
}

// includes walks the sorted events: introduced (v >= it) turns affected on,
// fixed (v >= it) and last_affected (v > it) turn it off; limits cap the
// range (v must be below some limit).
func (r *compiledRange) includes(v version) bool {
	if r.all {
		return true
	}
	if len(r.limits) > 0 {
		below := false
		for _, l := range r.limits {
			if v.Compare(l) < 0 {
				below = true
				break
			}
		}
		if !below {
			return false
		}
	}
	affected := false
	for _, ev := range r.events {
		switch ev.kind {
		case evIntroduced:
			if ev.zero || v.Compare(ev.v) >= 0 {
				affected = true
			}
		case evFixed:
			if v.Compare(ev.v) >= 0 {
				affected = false
			}
		case evLastAffected:
			if v.Compare(ev.v) > 0 {
				affected = false
			}
		}
	}
	return affected
}
