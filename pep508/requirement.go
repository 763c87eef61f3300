package pep508

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/skillbuild/skillbuild/pep440"
)

// Requirement is a parsed dependency specification.
type Requirement struct {
	// Name is the project name as written.
	Name string
	// Extras are the requested extras as written, each once, in order.
	Extras []string
	// Specifier is the version specifier set (empty: any version).
	Specifier pep440.SpecifierSet
	// Marker is the environment marker, nil if there is none.
	Marker *Marker
	// URL is the direct reference ("name @ url"), empty if there is none.
	URL string
}

// ParseRequirement parses s as packaging 21.3's Requirement does. A
// version specifier that is not PEP 440 is a pep440.ErrLegacySpecifier;
// anything else that does not parse an ErrInvalid.
func ParseRequirement(s string) (Requirement, error) {
	p := &markerParser{s: s}
	var r Requirement
	p.ws()
	r.Name = p.identifier()
	if r.Name == "" {
		return Requirement{}, fmt.Errorf("requirement %q: expected a project name: %w", s, ErrInvalid)
	}
	p.ws()
	if p.i < len(p.s) && p.s[p.i] == '[' {
		p.i++
		seen := map[string]bool{}
		for first := true; ; first = false {
			p.ws()
			if p.i < len(p.s) && p.s[p.i] == ']' && first {
				break
			}
			e := p.identifier()
			if e == "" {
				return Requirement{}, fmt.Errorf("requirement %q: expected an extra name: %w", s, ErrInvalid)
			}
			if !seen[e] {
				seen[e] = true
				r.Extras = append(r.Extras, e)
			}
			p.ws()
			if p.i < len(p.s) && p.s[p.i] == ',' {
				p.i++
				continue
			}
			break
		}
		if p.i >= len(p.s) || p.s[p.i] != ']' {
			return Requirement{}, fmt.Errorf("requirement %q: expected ']': %w", s, ErrInvalid)
		}
		p.i++
	}
	p.ws()
	if p.i < len(p.s) && p.s[p.i] == '@' {
		p.i++
		p.ws()
		start := p.i
		for p.i < len(p.s) && p.s[p.i] != ' ' {
			p.i++
		}
		r.URL = p.s[start:p.i]
		if r.URL == "" {
			return Requirement{}, fmt.Errorf("requirement %q: expected a URL after '@': %w", s, ErrInvalid)
		}
	} else {
		spec, err := p.versionSpec()
		if err != nil {
			return Requirement{}, fmt.Errorf("requirement %q: %w", s, err)
		}
		if r.Specifier, err = pep440.ParseSpecifierSet(spec); err != nil {
			return Requirement{}, fmt.Errorf("requirement %q: %w", s, err)
		}
	}
	p.ws()
	if p.i < len(p.s) && p.s[p.i] == ';' {
		p.i++
		m, err := ParseMarker(p.s[p.i:])
		if err != nil {
			return Requirement{}, fmt.Errorf("requirement %q: %w", s, err)
		}
		r.Marker = m
		p.i = len(p.s)
	}
	p.ws()
	if p.i != len(p.s) {
		return Requirement{}, fmt.Errorf("requirement %q: unexpected %q: %w", s, p.s[p.i:], ErrInvalid)
	}
	return r, nil
}

// identifier reads a PEP 508 name: letters and digits, with runs of
// "-_." between them.
func (p *markerParser) identifier() string {
	start := p.i
	i := p.i
	for i < len(p.s) && isAlnum(p.s[i]) {
		i++
	}
	if i == start {
		return ""
	}
	for {
		j := i
		for j < len(p.s) && strings.IndexByte("-_.", p.s[j]) >= 0 {
			j++
		}
		k := j
		for k < len(p.s) && isAlnum(p.s[k]) {
			k++
		}
		if k == j {
			break
		}
		i = k
	}
	p.i = i
	return p.s[start:i]
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// versionSpec reads an optional version specifier, parenthesized or not,
// and returns its clauses joined by ",". Each clause extends as
// packaging's legacy pattern reads it (operator, blanks, then anything but
// blanks and ",;)"), which is as far as its PEP 440 pattern reads a
// valid one.
func (p *markerParser) versionSpec() (string, error) {
	save := p.i
	paren := false
	if p.i < len(p.s) && p.s[p.i] == '(' {
		paren = true
		p.i++
	}
	var clauses []string
	for {
		p.ws()
		c, ok := p.clause()
		if !ok {
			if len(clauses) == 0 {
				break
			}
			return "", fmt.Errorf("expected a version after ',': %w", ErrInvalid)
		}
		clauses = append(clauses, c)
		save2 := p.i
		p.ws()
		if p.i < len(p.s) && p.s[p.i] == ',' {
			p.i++
			continue
		}
		p.i = save2
		break
	}
	if paren {
		p.ws()
		if len(clauses) == 0 || p.i >= len(p.s) || p.s[p.i] != ')' {
			return "", errors.New("expected a version specifier in parentheses")
		}
		p.i++
	} else if len(clauses) == 0 {
		p.i = save
	}
	return strings.Join(clauses, ","), nil
}

func (p *markerParser) clause() (string, bool) {
	start := p.i
	op := ""
	for _, o := range []string{"===", "~=", "==", "!=", "<=", ">=", "<", ">"} {
		if strings.HasPrefix(p.s[p.i:], o) {
			op = o
			break
		}
	}
	if op == "" {
		return "", false
	}
	p.i += len(op)
	for p.i < len(p.s) && strings.IndexByte(" \t\n\r\f\v", p.s[p.i]) >= 0 {
		p.i++
	}
	for p.i < len(p.s) && strings.IndexByte(",; \t\n\r\f\v)", p.s[p.i]) < 0 {
		p.i++
	}
	return p.s[start:p.i], true
}

// String is packaging's str(Requirement): the name as written, the extras
// sorted, the specifier clauses sorted, then "; marker" rendered as
// Marker.String.
func (r Requirement) String() string {
	var b strings.Builder
	b.WriteString(r.Name)
	if len(r.Extras) > 0 {
		ex := append([]string{}, r.Extras...)
		sort.Strings(ex)
		b.WriteString("[" + strings.Join(ex, ",") + "]")
	}
	b.WriteString(r.Specifier.String())
	if r.URL != "" {
		b.WriteString("@ " + r.URL)
		if r.Marker != nil {
			b.WriteString(" ")
		}
	}
	if r.Marker != nil {
		b.WriteString("; " + r.Marker.String())
	}
	return b.String()
}
