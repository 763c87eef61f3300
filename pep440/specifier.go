package pep440

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// ErrInvalidSpecifier is returned for a specifier that is neither PEP 440
// nor legacy (packaging's InvalidSpecifier).
var ErrInvalidSpecifier = errors.New("not a version specifier")

// ErrLegacySpecifier is returned for a specifier packaging 21.3 accepts
// only as a LegacySpecifier (an operator and a version that is not PEP
// 440): pip compares such specifiers with LegacyVersion rules, which this
// package does not implement.
var ErrLegacySpecifier = errors.New("a legacy (non-PEP 440) version specifier")

// pep440Tail are the pre-, post- and dev-release parts every specifier
// version may have.
const (
	specPre  = `(?:[-_\.]?(?:a|b|c|rc|alpha|beta|pre|preview)[-_\.]?[0-9]*)?`
	specPost = `(?:(?:-[0-9]+)|(?:[-_\.]?(?:post|rev|r)[-_\.]?[0-9]*))?`
	specDev  = `(?:[-_\.]?dev[-_\.]?[0-9]*)?`
)

// The version part of packaging's Specifier regex, one per kind of
// operator (its lookbehinds select among them).
var (
	specArbitraryRE = regexp.MustCompile(`^[^\s]*$`)
	specEqualRE     = regexp.MustCompile(`(?i)^v?(?:[0-9]+!)?[0-9]+(?:\.[0-9]+)*` + specPre + specPost +
		`(?:` + specDev + `(?:\+[a-z0-9]+(?:[-_\.][a-z0-9]+)*)?|\.\*)?$`)
	specCompatibleRE = regexp.MustCompile(`(?i)^v?(?:[0-9]+!)?[0-9]+(?:\.[0-9]+)+` + specPre + specPost + specDev + `$`)
	specOrderedRE    = regexp.MustCompile(`(?i)^v?(?:[0-9]+!)?[0-9]+(?:\.[0-9]+)*` + specPre + specPost + specDev + `$`)
	// legacyRE is LegacySpecifier's version: anything but blanks, ';',
	// ')' and ','.
	legacyRE = regexp.MustCompile(`^[^,;\s)]*$`)
)

// operators, longest first (the regex's alternation finds "===" before
// "==" only through its lookbehinds; trying longer ones first is the same).
var operators = []string{"===", "~=", "==", "!=", "<=", ">=", "<", ">"}

// Specifier is one clause of a version specifier, e.g. ">=1.0" or
// "==2.*".
type Specifier struct {
	Op      string // one of ~= == != <= >= < > ===
	Version string // as written, trimmed
}

// ParseSpecifier parses one specifier clause as packaging's Specifier
// does. A clause only packaging's LegacySpecifier accepts is an
// ErrLegacySpecifier; anything else an ErrInvalidSpecifier.
func ParseSpecifier(s string) (Specifier, error) {
	t := trimSpace(s)
	if !isASCII(t) {
		return Specifier{}, fmt.Errorf("%q: %w", s, ErrInvalidSpecifier)
	}
	op := ""
	for _, o := range operators {
		if strings.HasPrefix(t, o) {
			op = o
			break
		}
	}
	if op == "" {
		return Specifier{}, fmt.Errorf("%q: %w", s, ErrInvalidSpecifier)
	}
	ver := trimSpace(t[len(op):])
	var re *regexp.Regexp
	switch op {
	case "===":
		re = specArbitraryRE
	case "==", "!=":
		re = specEqualRE
	case "~=":
		re = specCompatibleRE
	default:
		re = specOrderedRE
	}
	if ver != "" && re.MatchString(ver) {
		return Specifier{Op: op, Version: ver}, nil
	}
	if op != "===" && op != "~=" && legacyRE.MatchString(ver) {
		return Specifier{}, fmt.Errorf("%q: %w", s, ErrLegacySpecifier)
	}
	return Specifier{}, fmt.Errorf("%q: %w", s, ErrInvalidSpecifier)
}

// String is the clause as packaging prints it: operator and version.
func (s Specifier) String() string { return s.Op + s.Version }

// canonical is the clause as packaging compares clauses (its hash and
// equality): the operator and the canonical version.
func (s Specifier) canonical() string {
	if v, err := Parse(s.Version); err == nil {
		return s.Op + v.Canonical()
	}
	return s.Op + s.Version
}

// Prereleases reports whether the clause itself admits pre-releases: an
// inclusive operator (== >= <= ~= ===) with a pre-release version.
func (s Specifier) Prereleases() bool {
	switch s.Op {
	case "==", ">=", "<=", "~=", "===":
		v := strings.TrimSuffix(s.Version, ".*")
		if s.Op != "==" {
			v = s.Version
		}
		if pv, err := Parse(v); err == nil && pv.IsPrerelease() {
			return true
		}
	}
	return false
}

// Contains reports whether v matches the clause; pre-releases match only
// with prereleases (or when the clause itself admits them, if prereleases
// is nil).
func (s Specifier) Contains(v *Version, prereleases *bool) bool {
	pre := s.Prereleases()
	if prereleases != nil {
		pre = *prereleases
	}
	if v.IsPrerelease() && !pre {
		return false
	}
	return s.match(v)
}

// match applies the operator (packaging's _compare_* methods).
func (s Specifier) match(v *Version) bool {
	switch s.Op {
	case "===":
		return strings.EqualFold(v.String(), s.Version)
	case "~=":
		parts := versionSplit(s.Version)
		var keep []string
		for _, p := range parts {
			if !isNotSuffix(p) {
				break
			}
			keep = append(keep, p)
		}
		if len(keep) > 0 {
			keep = keep[:len(keep)-1]
		}
		prefix := strings.Join(keep, ".") + ".*"
		return Specifier{Op: ">=", Version: s.Version}.match(v) && matchEqual(v, prefix)
	case "==":
		return matchEqual(v, s.Version)
	case "!=":
		return !matchEqual(v, s.Version)
	case "<=":
		return v.Public().Compare(MustParse(s.Version)) <= 0
	case ">=":
		return v.Public().Compare(MustParse(s.Version)) >= 0
	case "<":
		spec := MustParse(s.Version)
		if v.Compare(spec) >= 0 {
			return false
		}
		if !spec.IsPrerelease() && v.IsPrerelease() && v.Base().Equal(spec.Base()) {
			return false
		}
		return true
	case ">":
		spec := MustParse(s.Version)
		if v.Compare(spec) <= 0 {
			return false
		}
		if !spec.IsPostrelease() && v.IsPostrelease() && v.Base().Equal(spec.Base()) {
			return false
		}
		if v.HasLocal() && v.Base().Equal(spec.Base()) {
			return false
		}
		return true
	}
	return false
}

// matchEqual is packaging's _compare_equal: prefix matching for "X.*",
// otherwise equality ignoring v's local label unless spec has one.
func matchEqual(v *Version, spec string) bool {
	if prefix, ok := strings.CutSuffix(spec, ".*"); ok {
		splitSpec := versionSplit(prefix)
		splitV := versionSplit(v.Public().String())
		if len(splitV) > len(splitSpec) {
			splitV = splitV[:len(splitSpec)]
		}
		a, b := padVersion(splitSpec, splitV)
		return slicesEqual(a, b)
	}
	sv := MustParse(spec)
	if !sv.HasLocal() {
		v = v.Public()
	}
	return v.Equal(sv)
}

// versionSplit splits a version at dots, and a release number from a
// pre-release glued to it ("1rc1" → "1", "rc1"): packaging's
// _version_split.
func versionSplit(v string) []string {
	var out []string
	for _, item := range strings.Split(v, ".") {
		if n, rest, ok := splitPrefix(item); ok {
			out = append(out, n, rest)
		} else {
			out = append(out, item)
		}
	}
	return out
}

// splitPrefix matches ^([0-9]+)((?:a|b|c|rc)[0-9]+)$.
func splitPrefix(item string) (string, string, bool) {
	i := 0
	for i < len(item) && item[i] >= '0' && item[i] <= '9' {
		i++
	}
	if i == 0 {
		return "", "", false
	}
	rest := item[i:]
	for _, l := range []string{"rc", "a", "b", "c"} {
		if tail, ok := strings.CutPrefix(rest, l); ok && isDigits(tail) {
			return item[:i], rest, true
		}
	}
	return "", "", false
}

func isNotSuffix(seg string) bool {
	for _, p := range []string{"dev", "a", "b", "rc", "post"} {
		if strings.HasPrefix(seg, p) {
			return false
		}
	}
	return true
}

// padVersion pads the numeric leading parts of a and b with "0" to the
// same length (packaging's _pad_version).
func padVersion(a, b []string) ([]string, []string) {
	na, nb := leadingDigits(a), leadingDigits(b)
	pa := append(append(append([]string{}, a[:na]...), zeros(nb-na)...), a[na:]...)
	pb := append(append(append([]string{}, b[:nb]...), zeros(na-nb)...), b[nb:]...)
	return pa, pb
}

// leadingDigits counts the leading parts made of digits only (Python's
// str.isdigit on ASCII).
func leadingDigits(parts []string) int {
	n := 0
	for n < len(parts) && isDigits(parts[n]) {
		n++
	}
	return n
}

func zeros(n int) []string {
	if n <= 0 {
		return nil
	}
	z := make([]string, n)
	for i := range z {
		z[i] = "0"
	}
	return z
}

func slicesEqual(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// SpecifierSet is a comma-separated set of clauses, all of which must
// match (packaging's SpecifierSet without an explicit prereleases
// override). The zero value is the empty set, which matches everything.
type SpecifierSet struct {
	specs []Specifier // distinct by canonical form, in the order first seen
}

// ParseSpecifierSet parses "c1,c2,...". Empty clauses are skipped. A
// clause that is not PEP 440 is an ErrLegacySpecifier or
// ErrInvalidSpecifier.
func ParseSpecifierSet(s string) (SpecifierSet, error) {
	var set SpecifierSet
	for _, part := range strings.Split(s, ",") {
		part = trimSpace(part)
		if part == "" {
			continue
		}
		sp, err := ParseSpecifier(part)
		if err != nil {
			return SpecifierSet{}, err
		}
		set.add(sp)
	}
	return set, nil
}

func (s *SpecifierSet) add(sp Specifier) {
	c := sp.canonical()
	for _, have := range s.specs {
		if have.canonical() == c {
			return
		}
	}
	s.specs = append(s.specs, sp)
}

// And is the intersection of s and t (packaging's &).
func (s SpecifierSet) And(t SpecifierSet) SpecifierSet {
	out := SpecifierSet{specs: append([]Specifier{}, s.specs...)}
	for _, sp := range t.specs {
		out.add(sp)
	}
	return out
}

// Specifiers returns the set's clauses.
func (s SpecifierSet) Specifiers() []Specifier { return append([]Specifier{}, s.specs...) }

// Len is the number of distinct clauses.
func (s SpecifierSet) Len() int { return len(s.specs) }

// String is the set as packaging prints it: clauses sorted, joined by ",".
func (s SpecifierSet) String() string {
	parts := make([]string, len(s.specs))
	for i, sp := range s.specs {
		parts[i] = sp.String()
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// Prereleases is packaging's SpecifierSet.prereleases: nil for the empty
// set, otherwise whether any clause admits pre-releases.
func (s SpecifierSet) Prereleases() *bool {
	if len(s.specs) == 0 {
		return nil
	}
	for _, sp := range s.specs {
		if sp.Prereleases() {
			return ptr(true)
		}
	}
	return ptr(false)
}

func ptr(b bool) *bool { return &b }

// Contains reports whether v matches every clause. With prereleases nil
// the set decides (Prereleases); a pre-release never matches when
// pre-releases are not allowed.
func (s SpecifierSet) Contains(v *Version, prereleases *bool) bool {
	pre := false
	if prereleases != nil {
		pre = *prereleases
	} else if p := s.Prereleases(); p != nil {
		pre = *p
	}
	if !pre && v.IsPrerelease() {
		return false
	}
	for _, sp := range s.specs {
		if !sp.Contains(v, &pre) {
			return false
		}
	}
	return true
}

// Filter returns the versions of vs that match, in order, as
// packaging 21.3's SpecifierSet.filter does. With prereleases nil, a
// non-empty set that admits no pre-release drops every pre-release; the
// empty set keeps the pre-releases only if nothing else is left.
func (s SpecifierSet) Filter(vs []*Version, prereleases *bool) []*Version {
	if prereleases == nil {
		prereleases = s.Prereleases()
	}
	if len(s.specs) > 0 {
		// Each clause filters with prereleases=bool(prereleases): never
		// None, so no clause falls back to pre-releases.
		pre := prereleases != nil && *prereleases
		out := vs
		for _, sp := range s.specs {
			var next []*Version
			for _, v := range out {
				if sp.Contains(v, &pre) {
					next = append(next, v)
				}
			}
			out = next
		}
		return out
	}
	var filtered, found []*Version
	for _, v := range vs {
		if v.IsPrerelease() && (prereleases == nil || !*prereleases) {
			if len(filtered) == 0 {
				found = append(found, v)
			}
			continue
		}
		filtered = append(filtered, v)
	}
	if len(filtered) == 0 && len(found) > 0 && prereleases == nil {
		return found
	}
	return filtered
}
