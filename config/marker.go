package config

import (
	"errors"
	"fmt"
	"strings"
)

// markerVars are the PEP 508 environment marker variables (with the legacy
// dotted aliases pip still accepts, and the PEP 735/751 additions).
var markerVars = map[string]bool{
	"python_version": true, "python_full_version": true, "os_name": true, "sys_platform": true,
	"platform_release": true, "platform_system": true, "platform_version": true,
	"platform_machine": true, "platform_python_implementation": true,
	"implementation_name": true, "implementation_version": true, "extra": true,
	"extras": true, "dependency_groups": true,
	"os.name": true, "sys.platform": true, "platform.version": true, "platform.machine": true,
	"platform.python_implementation": true, "python_implementation": true,
}

// maxMarkerDepth bounds parenthesis nesting in a marker.
const maxMarkerDepth = 32

type markerTokenKind int

const (
	tokLParen markerTokenKind = iota
	tokRParen
	tokString
	tokVar
	tokOp  // a version comparison operator
	tokAnd // "and"
	tokOr  // "or"
	tokIn  // "in"
	tokNot // "not"
)

type markerToken struct {
	kind markerTokenKind
	text string
}

// tokenizeMarker splits a marker expression into tokens.
func tokenizeMarker(s string) ([]markerToken, error) {
	var toks []markerToken
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			i++
		case c == '(':
			toks = append(toks, markerToken{tokLParen, "("})
			i++
		case c == ')':
			toks = append(toks, markerToken{tokRParen, ")"})
			i++
		case c == '"' || c == '\'':
			end := strings.IndexByte(s[i+1:], c)
			if end < 0 {
				return nil, fmt.Errorf("unterminated string %s in marker", quote(s[i:]))
			}
			toks = append(toks, markerToken{tokString, s[i : i+end+2]})
			i += end + 2
		case strings.IndexByte("<>=!~", c) >= 0:
			op := ""
			for _, o := range specOps {
				if strings.HasPrefix(s[i:], o) {
					op = o
					break
				}
			}
			if op == "" {
				return nil, fmt.Errorf("invalid operator %s in marker", quote(s[i:]))
			}
			toks = append(toks, markerToken{tokOp, op})
			i += len(op)
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_':
			start := i
			for i < len(s) && (s[i] >= 'a' && s[i] <= 'z' || s[i] >= 'A' && s[i] <= 'Z' || s[i] >= '0' && s[i] <= '9' || s[i] == '_' || s[i] == '.') {
				i++
			}
			word := s[start:i]
			switch word {
			case "and":
				toks = append(toks, markerToken{tokAnd, word})
			case "or":
				toks = append(toks, markerToken{tokOr, word})
			case "in":
				toks = append(toks, markerToken{tokIn, word})
			case "not":
				toks = append(toks, markerToken{tokNot, word})
			default:
				if !markerVars[word] {
					return nil, fmt.Errorf("unknown marker variable %s", quote(word))
				}
				toks = append(toks, markerToken{tokVar, word})
			}
		default:
			return nil, fmt.Errorf("unexpected %s in marker", quote(s[i:]))
		}
	}
	return toks, nil
}

// markerParser parses PEP 508 marker tokens:
//
//	marker_or   = marker_and ('or' marker_and)*
//	marker_and  = marker_expr ('and' marker_expr)*
//	marker_expr = marker_var marker_op marker_var | '(' marker_or ')'
//	marker_op   = version_cmp | 'in' | 'not' 'in'
type markerParser struct {
	toks []markerToken
	i    int
	out  []string
}

// parseMarker validates a marker expression and returns it in canonical
// spacing: one blank between tokens, none inside parentheses.
func parseMarker(s string) (string, error) {
	toks, err := tokenizeMarker(s)
	if err != nil {
		return "", err
	}
	if len(toks) == 0 {
		return "", errors.New("empty marker after ';'")
	}
	p := &markerParser{toks: toks}
	if err := p.or(0); err != nil {
		return "", err
	}
	if p.i < len(p.toks) {
		return "", fmt.Errorf("unexpected %s in marker; expected 'and', 'or' or the end", quote(p.toks[p.i].text))
	}
	var b strings.Builder
	for i, t := range p.out {
		if i > 0 && t != ")" && p.out[i-1] != "(" {
			b.WriteByte(' ')
		}
		b.WriteString(t)
	}
	return b.String(), nil
}

func (p *markerParser) next() (markerToken, bool) {
	if p.i >= len(p.toks) {
		return markerToken{}, false
	}
	t := p.toks[p.i]
	p.i++
	p.out = append(p.out, t.text)
	return t, true
}

func (p *markerParser) at(kind markerTokenKind) bool {
	return p.i < len(p.toks) && p.toks[p.i].kind == kind
}

func (p *markerParser) or(depth int) error {
	if err := p.and(depth); err != nil {
		return err
	}
	for p.at(tokOr) {
		p.next()
		if err := p.and(depth); err != nil {
			return err
		}
	}
	return nil
}

func (p *markerParser) and(depth int) error {
	if err := p.expr(depth); err != nil {
		return err
	}
	for p.at(tokAnd) {
		p.next()
		if err := p.expr(depth); err != nil {
			return err
		}
	}
	return nil
}

func (p *markerParser) expr(depth int) error {
	if p.at(tokLParen) {
		if depth >= maxMarkerDepth {
			return fmt.Errorf("marker nests parentheses deeper than %d", maxMarkerDepth)
		}
		p.next()
		if err := p.or(depth + 1); err != nil {
			return err
		}
		if !p.at(tokRParen) {
			return errors.New("expected ')' in marker")
		}
		p.next()
		return nil
	}
	if err := p.variable(); err != nil {
		return err
	}
	switch t, ok := p.next(); {
	case !ok:
		return errors.New("marker ends after a value; expected a comparison operator")
	case t.kind == tokOp || t.kind == tokIn:
	case t.kind == tokNot:
		if t2, ok := p.next(); !ok || t2.kind != tokIn {
			return errors.New("expected 'in' after 'not' in marker")
		}
	default:
		return fmt.Errorf("expected a comparison operator in marker, found %s", quote(t.text))
	}
	return p.variable()
}

func (p *markerParser) variable() error {
	t, ok := p.next()
	if !ok {
		return errors.New("marker ends early; expected a marker variable or a quoted string")
	}
	if t.kind != tokVar && t.kind != tokString {
		return fmt.Errorf("expected a marker variable or a quoted string, found %s", quote(t.text))
	}
	return nil
}
