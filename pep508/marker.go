package pep508

import (
	"errors"
	"fmt"
	"strings"

	"github.com/skillbuild/skillbuild/pep440"
)

// ErrInvalid is returned for text that is not a PEP 508 requirement or
// marker as packaging 21.3 parses them.
var ErrInvalid = errors.New("invalid PEP 508 specification")

// ErrUnsupported is returned for a marker packaging parses but cannot
// evaluate (a comparison of two literals, "~=" or "===" between strings
// that are not versions) or a requirement form this package does not
// resolve.
var ErrUnsupported = errors.New("unsupported PEP 508 specification")

// Env is a marker environment: the values of the marker variables
// (python_version, sys_platform, ...) and "extra".
type Env map[string]string

// variables are packaging 21.3's marker variables, in its grammar's order
// (it matches them as literal prefixes, first match wins), with the
// legacy aliases it maps.
var variables = []string{
	"implementation_version", "platform_python_implementation", "implementation_name",
	"python_full_version", "platform_release", "platform_version", "platform_machine",
	"platform_system", "python_version", "sys_platform", "os_name",
	"os.name", "sys.platform", "platform.version", "platform.machine",
	"platform.python_implementation", "python_implementation", "extra",
}

var aliases = map[string]string{
	"os.name":                        "os_name",
	"sys.platform":                   "sys_platform",
	"platform.version":               "platform_version",
	"platform.machine":               "platform_machine",
	"platform.python_implementation": "platform_python_implementation",
	"python_implementation":          "platform_python_implementation",
}

// markerOps are packaging's marker operators in its grammar's order.
var markerOps = []string{"===", "==", ">=", "<=", "!=", "~=", ">", "<", "not in", "in"}

// operand is a marker variable (by its canonical name) or a literal.
type operand struct {
	variable bool
	value    string
}

func (o operand) String() string {
	if o.variable {
		return o.value
	}
	return `"` + o.value + `"`
}

// node is one element of a marker expression list: a comparison, a
// parenthesized group, or "and"/"or".
type node struct {
	lhs, rhs operand
	op       string
	group    []node
	boolOp   string
}

func (n node) isGroup() bool { return n.group != nil }
func (n node) isItem() bool  { return n.op != "" }

// Marker is a parsed environment marker.
type Marker struct {
	expr []node
}

// ParseMarker parses a marker expression.
func ParseMarker(s string) (*Marker, error) {
	p := &markerParser{s: s}
	expr, err := p.expr(0)
	if err != nil {
		return nil, fmt.Errorf("marker %q: %v: %w", s, err, ErrInvalid)
	}
	p.ws()
	if p.i != len(p.s) {
		return nil, fmt.Errorf("marker %q: unexpected %q: %w", s, p.s[p.i:], ErrInvalid)
	}
	return &Marker{expr: expr}, nil
}

const maxDepth = 64

type markerParser struct {
	s string
	i int
}

// ws skips pyparsing's default whitespace.
func (p *markerParser) ws() {
	for p.i < len(p.s) && strings.IndexByte(" \t\n\r", p.s[p.i]) >= 0 {
		p.i++
	}
}

// expr is MARKER_ATOM + ZeroOrMore(BOOLOP + MARKER_EXPR), flattened.
func (p *markerParser) expr(depth int) ([]node, error) {
	if depth > maxDepth {
		return nil, errors.New("nested too deeply")
	}
	var out []node
	for {
		n, err := p.atom(depth)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
		save := p.i
		p.ws()
		switch {
		case strings.HasPrefix(p.s[p.i:], "and"):
			p.i += 3
			out = append(out, node{boolOp: "and"})
		case strings.HasPrefix(p.s[p.i:], "or"):
			p.i += 2
			out = append(out, node{boolOp: "or"})
		default:
			p.i = save
			return out, nil
		}
	}
}

func (p *markerParser) atom(depth int) (node, error) {
	p.ws()
	if p.i < len(p.s) && p.s[p.i] == '(' {
		p.i++
		g, err := p.expr(depth + 1)
		if err != nil {
			return node{}, err
		}
		p.ws()
		if p.i >= len(p.s) || p.s[p.i] != ')' {
			return node{}, errors.New("expected ')'")
		}
		p.i++
		return node{group: g}, nil
	}
	lhs, err := p.operand()
	if err != nil {
		return node{}, err
	}
	p.ws()
	op := ""
	for _, o := range markerOps {
		if strings.HasPrefix(p.s[p.i:], o) {
			op = o
			break
		}
	}
	if op == "" {
		return node{}, errors.New("expected a comparison operator")
	}
	p.i += len(op)
	rhs, err := p.operand()
	if err != nil {
		return node{}, err
	}
	return node{lhs: lhs, op: op, rhs: rhs}, nil
}

func (p *markerParser) operand() (operand, error) {
	p.ws()
	if p.i >= len(p.s) {
		return operand{}, errors.New("expected a marker variable or a quoted string")
	}
	if q := p.s[p.i]; q == '"' || q == '\'' {
		end := strings.IndexByte(p.s[p.i+1:], q)
		if end < 0 {
			return operand{}, errors.New("unterminated string")
		}
		v := p.s[p.i+1 : p.i+1+end]
		if strings.ContainsAny(v, "\n\r") {
			return operand{}, errors.New("line break in a string")
		}
		p.i += end + 2
		return operand{value: v}, nil
	}
	for _, v := range variables {
		if strings.HasPrefix(p.s[p.i:], v) {
			p.i += len(v)
			if a, ok := aliases[v]; ok {
				v = a
			}
			return operand{variable: true, value: v}, nil
		}
	}
	return operand{}, errors.New("expected a marker variable or a quoted string")
}

// String renders the marker as packaging does (str(Marker)): double
// quotes, one blank between tokens, parentheses around groups.
func (m *Marker) String() string { return formatMarker(m.expr, true) }

func formatMarker(expr []node, first bool) string {
	if len(expr) == 1 && expr[0].isGroup() {
		return formatMarker(expr[0].group, first)
	}
	parts := make([]string, len(expr))
	for i, n := range expr {
		switch {
		case n.isGroup():
			parts[i] = formatGroup(n.group)
		case n.isItem():
			parts[i] = n.lhs.String() + " " + n.op + " " + n.rhs.String()
		default:
			parts[i] = n.boolOp
		}
	}
	s := strings.Join(parts, " ")
	if !first {
		return "(" + s + ")"
	}
	return s
}

// formatGroup is _format_marker of a nested list (first=False).
func formatGroup(g []node) string {
	if len(g) == 1 && (g[0].isGroup() || g[0].isItem()) {
		if g[0].isGroup() {
			return formatGroup(g[0].group)
		}
		return g[0].lhs.String() + " " + g[0].op + " " + g[0].rhs.String()
	}
	return formatMarker(g, false)
}

// Evaluate evaluates the marker in env (which must hold every variable
// the marker names; "extra" is usually set by the caller). Like
// packaging, every comparison is evaluated, and one it cannot evaluate
// is an error (ErrUnsupported) whatever the others give.
func (m *Marker) Evaluate(env Env) (bool, error) { return evaluate(m.expr, env) }

func evaluate(expr []node, env Env) (bool, error) {
	groups := [][]bool{{}}
	for _, n := range expr {
		switch {
		case n.isGroup():
			v, err := evaluate(n.group, env)
			if err != nil {
				return false, err
			}
			groups[len(groups)-1] = append(groups[len(groups)-1], v)
		case n.isItem():
			var lhs, rhs string
			switch {
			case n.lhs.variable:
				v, ok := env[n.lhs.value]
				if !ok {
					return false, fmt.Errorf("marker variable %s is not defined: %w", n.lhs.value, ErrUnsupported)
				}
				lhs, rhs = v, n.rhs.value
			case n.rhs.variable:
				v, ok := env[n.rhs.value]
				if !ok {
					return false, fmt.Errorf("marker variable %s is not defined: %w", n.rhs.value, ErrUnsupported)
				}
				lhs, rhs = n.lhs.value, v
			default:
				return false, fmt.Errorf("marker compares two literals (%s %s %s): %w", n.lhs, n.op, n.rhs, ErrUnsupported)
			}
			v, err := evalOp(lhs, n.op, rhs)
			if err != nil {
				return false, err
			}
			groups[len(groups)-1] = append(groups[len(groups)-1], v)
		case n.boolOp == "or":
			groups = append(groups, []bool{})
		}
	}
	for _, g := range groups {
		all := true
		for _, v := range g {
			all = all && v
		}
		if all {
			return true, nil
		}
	}
	return false, nil
}

// evalOp is packaging 21.3's _eval_op: a version comparison when op+rhs
// is a PEP 440 specifier, else a string comparison.
func evalOp(lhs, op, rhs string) (bool, error) {
	if sp, err := pep440.ParseSpecifier(op + rhs); err == nil {
		v, err := pep440.Parse(lhs)
		if err != nil {
			// A LegacyVersion: packaging compares it only with "===",
			// by its text; every other operator is false.
			if !isASCIIString(lhs) {
				return false, fmt.Errorf("marker value %q: %w", lhs, ErrUnsupported)
			}
			if sp.Op == "===" {
				return strings.EqualFold(lhs, sp.Version), nil
			}
			return false, nil
		}
		return sp.Contains(v, nil), nil
	}
	switch op {
	case "in":
		return strings.Contains(rhs, lhs), nil
	case "not in":
		return !strings.Contains(rhs, lhs), nil
	case "<":
		return lhs < rhs, nil
	case "<=":
		return lhs <= rhs, nil
	case "==":
		return lhs == rhs, nil
	case "!=":
		return lhs != rhs, nil
	case ">=":
		return lhs >= rhs, nil
	case ">":
		return lhs > rhs, nil
	}
	return false, fmt.Errorf("marker operator %s between %q and %q is undefined: %w", op, lhs, rhs, ErrUnsupported)
}

func isASCIIString(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
