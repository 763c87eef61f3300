package pep440

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalidVersion is returned for a string that is not a PEP 440 version.
var ErrInvalidVersion = errors.New("not a PEP 440 version")

// num is a non-negative integer of any size, as its decimal digits without
// leading zeros ("0" for zero).
type num string

func newNum(digits string) num {
	d := strings.TrimLeft(digits, "0")
	if d == "" {
		return "0"
	}
	return num(d)
}

func (n num) cmp(m num) int {
	switch {
	case len(n) != len(m):
		if len(n) < len(m) {
			return -1
		}
		return 1
	case n < m:
		return -1
	case n > m:
		return 1
	}
	return 0
}

func (n num) isZero() bool { return n == "0" }

// localPart is one dot-separated part of a local version label: a number,
// or lowercase letters and digits.
type localPart struct {
	isNum bool
	n     num
	s     string
}

// Version is a parsed PEP 440 version. The zero value is not a version;
// use Parse.
type Version struct {
	epoch   num
	release []num
	pre     *letterNum // letter "a", "b" or "rc"
	post    *num
	dev     *num
	local   []localPart
	str     string // the normalized form
}

type letterNum struct {
	letter string
	n      num
}

// Parse parses s as a PEP 440 version the way packaging.version.Version
// does: case-insensitively, with surrounding whitespace, a leading "v",
// alternative spellings ("alpha", "-1", "rev") and separators allowed. A
// string that is not a PEP 440 version (packaging's LegacyVersion) is an
// ErrInvalidVersion.
func Parse(s string) (*Version, error) {
	t := trimSpace(s)
	if !isASCII(t) {
		return nil, fmt.Errorf("%q: %w", s, ErrInvalidVersion)
	}
	if fast, ok := parseRelease(t); ok {
		return fast, nil
	}
	v, ok := scan(t)
	if !ok {
		return nil, fmt.Errorf("%q: %w", s, ErrInvalidVersion)
	}
	v.str = v.format(false)
	return v, nil
}

// scan parses t (trimmed, ASCII) as versionRE does. The pattern is
// deterministic taken greedily part by part: every optional part after
// the release starts with a separator or a letter no earlier part can
// take, and a separator an earlier part took greedily is optional for
// the next one (the fuzz test compares scan with versionRE).
func scan(t string) (*Version, bool) {
	l := strings.ToLower(t)
	i := 0
	if i < len(l) && l[i] == 'v' {
		i++
	}
	v := &Version{epoch: "0"}
	d := digits(l, i)
	if d == i {
		return nil, false
	}
	if d < len(l) && l[d] == '!' {
		v.epoch = newNum(l[i:d])
		i = d + 1
		if d = digits(l, i); d == i {
			return nil, false
		}
	}
	v.release = append(v.release, newNum(l[i:d]))
	i = d
	for i+1 < len(l) && l[i] == '.' && isDigit(l[i+1]) {
		d = digits(l, i+1)
		v.release = append(v.release, newNum(l[i+1:d]))
		i = d
	}
	// pre-release
	if j, letter, ok := keyword(l, skipSep(l, i), preWords); ok {
		j = skipSep(l, j)
		d = digits(l, j)
		v.pre = &letterNum{letter: letter, n: newNum(l[j:d])}
		i = d
	}
	// post-release: "-N", or [-_.]? (post|rev|r) [-_.]? N?
	if i+1 < len(l) && l[i] == '-' && isDigit(l[i+1]) {
		d = digits(l, i+1)
		n := newNum(l[i+1 : d])
		v.post = &n
		i = d
	} else if j, _, ok := keyword(l, skipSep(l, i), postWords); ok {
		j = skipSep(l, j)
		d = digits(l, j)
		n := newNum(l[j:d])
		v.post = &n
		i = d
	}
	// dev release
	if j, _, ok := keyword(l, skipSep(l, i), devWords); ok {
		j = skipSep(l, j)
		d = digits(l, j)
		n := newNum(l[j:d])
		v.dev = &n
		i = d
	}
	if i < len(l) && l[i] == '+' {
		parts := splitLocal(l[i+1:])
		if len(parts) == 0 || !localOK(l[i+1:]) {
			return nil, false
		}
		for _, p := range parts {
			if isDigits(p) {
				v.local = append(v.local, localPart{isNum: true, n: newNum(p)})
			} else {
				v.local = append(v.local, localPart{s: p})
			}
		}
		i = len(l)
	}
	return v, i == len(l)
}

// Pre-, post- and dev-release words and what they normalize to, longer
// spellings first where one is a prefix of another.
var (
	preWords  = [][2]string{{"alpha", "a"}, {"a", "a"}, {"beta", "b"}, {"b", "b"}, {"rc", "rc"}, {"c", "rc"}, {"preview", "rc"}, {"pre", "rc"}}
	postWords = [][2]string{{"post", "post"}, {"rev", "post"}, {"r", "post"}}
	devWords  = [][2]string{{"dev", "dev"}}
)

// keyword matches one of words at i; a word that is a prefix of a longer
// one is only taken when the longer one does not match.
func keyword(l string, i int, words [][2]string) (int, string, bool) {
	for _, w := range words {
		if strings.HasPrefix(l[i:], w[0]) {
			return i + len(w[0]), w[1], true
		}
	}
	return i, "", false
}

// localOK checks a local label: [a-z0-9]+ ([-_.][a-z0-9]+)*.
func localOK(s string) bool {
	prevSep := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z' || isDigit(c):
			prevSep = false
		case c == '-' || c == '_' || c == '.':
			if prevSep {
				return false
			}
			prevSep = true
		default:
			return false
		}
	}
	return !prevSep
}

func skipSep(l string, i int) int {
	if i < len(l) && (l[i] == '-' || l[i] == '_' || l[i] == '.') {
		return i + 1
	}
	return i
}

func digits(l string, i int) int {
	for i < len(l) && isDigit(l[i]) {
		i++
	}
	return i
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// MustParse is Parse for versions known to be valid; it panics otherwise.
func MustParse(s string) *Version {
	v, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return v
}

// parseRelease is Parse's fast path for the common "N(.N)*" versions.
func parseRelease(s string) (*Version, bool) {
	if s == "" {
		return nil, false
	}
	start := 0
	var release []num
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '.' {
			if i == start {
				return nil, false
			}
			release = append(release, newNum(s[start:i]))
			start = i + 1
			continue
		}
		if s[i] < '0' || s[i] > '9' {
			return nil, false
		}
	}
	v := &Version{epoch: "0", release: release}
	v.str = v.format(false)
	return v, true
}

func splitLocal(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == '.' || r == '-' || r == '_' })
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// isSpace is Python's str.isspace for ASCII (regular expressions' \s in
// a str pattern): blanks, \t \n \v \f \r and the separators \x1c-\x1f.
func isSpace(c byte) bool {
	return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f)
}

func trimSpace(s string) string {
	i, j := 0, len(s)
	for i < j && isSpace(s[i]) {
		i++
	}
	for j > i && isSpace(s[j-1]) {
		j--
	}
	return s[i:j]
}

// format renders the version as packaging does (str(Version)); with
// stripZeros, the release segment loses its trailing ".0"s
// (canonicalize_version).
func (v *Version) format(stripZeros bool) string {
	var b strings.Builder
	if !v.epoch.isZero() {
		b.WriteString(string(v.epoch) + "!")
	}
	rel := v.release
	if stripZeros {
		for len(rel) > 1 && rel[len(rel)-1].isZero() {
			rel = rel[:len(rel)-1]
		}
	}
	for i, r := range rel {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(string(r))
	}
	if v.pre != nil {
		b.WriteString(v.pre.letter + string(v.pre.n))
	}
	if v.post != nil {
		b.WriteString(".post" + string(*v.post))
	}
	if v.dev != nil {
		b.WriteString(".dev" + string(*v.dev))
	}
	if len(v.local) > 0 {
		b.WriteString("+" + v.Local())
	}
	return b.String()
}

// String is the normalized form ("1.0rc1.post2+ubuntu.1").
func (v *Version) String() string { return v.str }

// Canonical is packaging's canonicalize_version: the normalized form with
// the release segment's trailing zeros removed ("1.0.0" → "1").
func (v *Version) Canonical() string { return v.format(true) }

// Local is the local version label ("ubuntu.1"), empty if there is none.
func (v *Version) Local() string {
	parts := make([]string, len(v.local))
	for i, p := range v.local {
		if p.isNum {
			parts[i] = string(p.n)
		} else {
			parts[i] = p.s
		}
	}
	return strings.Join(parts, ".")
}

// Public is the version without its local label.
func (v *Version) Public() *Version {
	if len(v.local) == 0 {
		return v
	}
	p := *v
	p.local = nil
	p.str = p.format(false)
	return &p
}

// Base is the version's epoch and release segment only (base_version).
func (v *Version) Base() *Version {
	b := &Version{epoch: v.epoch, release: v.release}
	b.str = b.format(false)
	return b
}

// Release returns the release segment's numbers as decimal strings.
func (v *Version) Release() []string {
	out := make([]string, len(v.release))
	for i, r := range v.release {
		out[i] = string(r)
	}
	return out
}

// IsPrerelease reports a pre-release or development release.
func (v *Version) IsPrerelease() bool { return v.pre != nil || v.dev != nil }

// IsPostrelease reports a post-release.
func (v *Version) IsPostrelease() bool { return v.post != nil }

// HasLocal reports a local version label.
func (v *Version) HasLocal() bool { return len(v.local) > 0 }

// Equal reports whether v and w are the same version (1.0 == 1.0.0).
func (v *Version) Equal(w *Version) bool { return v.Compare(w) == 0 }

// Compare orders versions as PEP 440 does: -1 if v < w, 0 if they are
// equal, +1 if v > w.
func (v *Version) Compare(w *Version) int {
	if c := v.epoch.cmp(w.epoch); c != 0 {
		return c
	}
	if c := cmpRelease(v.release, w.release); c != 0 {
		return c
	}
	if c := cmpInt(v.preKey(), w.preKey()); c != 0 {
		return c
	}
	if v.pre != nil && w.pre != nil {
		if c := strings.Compare(v.pre.letter, w.pre.letter); c != 0 {
			return c
		}
		if c := v.pre.n.cmp(w.pre.n); c != 0 {
			return c
		}
	}
	if c := cmpOpt(v.post, w.post, -1); c != 0 {
		return c
	}
	if c := cmpOpt(v.dev, w.dev, +1); c != 0 {
		return c
	}
	return cmpLocal(v.local, w.local)
}

// preKey is the pre-release slot's rank: a dev release without pre or
// post sorts before every pre-release (-1), a version without pre-release
// after all of them (+1), a pre-release by its letter and number (0).
func (v *Version) preKey() int {
	switch {
	case v.pre == nil && v.post == nil && v.dev != nil:
		return -1
	case v.pre == nil:
		return 1
	}
	return 0
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// cmpOpt compares optional numbers; a missing one is -∞ (missing=-1) or
// +∞ (missing=+1).
func cmpOpt(a, b *num, missing int) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		return missing
	case b == nil:
		return -missing
	}
	return a.cmp(*b)
}

// cmpRelease compares release segments with trailing zeros ignored.
func cmpRelease(a, b []num) int {
	a, b = trimZeros(a), trimZeros(b)
	for i := 0; i < len(a) && i < len(b); i++ {
		if c := a[i].cmp(b[i]); c != 0 {
			return c
		}
	}
	return cmpInt(len(a), len(b))
}

func trimZeros(r []num) []num {
	for len(r) > 0 && r[len(r)-1].isZero() {
		r = r[:len(r)-1]
	}
	return r
}

// cmpLocal compares local labels: none sorts first; numbers sort after
// strings; then element by element, a shorter prefix first.
func cmpLocal(a, b []localPart) int {
	switch {
	case len(a) == 0 && len(b) == 0:
		return 0
	case len(a) == 0:
		return -1
	case len(b) == 0:
		return 1
	}
	for i := 0; i < len(a) && i < len(b); i++ {
		x, y := a[i], b[i]
		switch {
		case x.isNum && y.isNum:
			if c := x.n.cmp(y.n); c != 0 {
				return c
			}
		case x.isNum:
			return 1
		case y.isNum:
			return -1
		default:
			if c := strings.Compare(x.s, y.s); c != 0 {
				return c
			}
		}
	}
	return cmpInt(len(a), len(b))
}
