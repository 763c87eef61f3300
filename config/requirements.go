package config

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/skillbuild/skillbuild/lock"
)

// maxLineLen bounds one requirement line; longer lines are errors.
const maxLineLen = 64 << 10

// maxLineErrors bounds how many line errors one source reports.
const maxLineErrors = 20

var (
	// nameRE is the PEP 508 project name (and extra name) grammar.
	nameRE = regexp.MustCompile(`^([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9])$`)
	// versionRE440 is packaging's PEP 440 VERSION_PATTERN.
	versionRE440 = regexp.MustCompile(`(?i)^v?(?:[0-9]+!)?[0-9]+(?:\.[0-9]+)*` +
		`(?:[-_.]?(?:alpha|a|beta|b|preview|pre|c|rc)[-_.]?[0-9]*)?` +
		`(?:-[0-9]+|[-_.]?(?:post|rev|r)[-_.]?[0-9]*)?` +
		`(?:[-_.]?dev[-_.]?[0-9]*)?` +
		`(\+[a-z0-9]+(?:[-_.][a-z0-9]+)*)?$`)
	// wildcardRE is the prefix of a "==1.2.*" or "!=1.*" specifier.
	wildcardRE = regexp.MustCompile(`^v?(?:[0-9]+!)?[0-9]+(?:\.[0-9]+)*$`)
	urlRE      = regexp.MustCompile(`(?i)[a-z][a-z0-9+.-]*://`)
)

// archiveSuffixes mark a requirement that names a local file.
var archiveSuffixes = []string{".whl", ".tar.gz", ".tgz", ".tar.bz2", ".tbz", ".tar.xz", ".txz", ".tar", ".zip", ".egg"}

// String renders the requirement as one canonical line pip accepts:
// normalized name, extras, comma-separated specifiers, then "; marker".
func (r Requirement) String() string {
	var b strings.Builder
	b.WriteString(r.Name)
	if len(r.Extras) > 0 {
		b.WriteString("[" + strings.Join(r.Extras, ",") + "]")
	}
	b.WriteString(r.Specifier)
	if r.Marker != "" {
		b.WriteString("; " + r.Marker)
	}
	return b.String()
}

// Pin is one exact "name==version" pin, as used by `skillbuild scan
// --no-resolve`.
type Pin struct {
	// Name is the PEP 503-normalized project name.
	Name string `json:"name"`
	// Version is the PEP 440 version as written.
	Version string `json:"version"`
	// Source and Line locate the pin (Line is 0 for command-line args).
	Source string `json:"source,omitempty"`
	Line   int    `json:"line,omitempty"`
}

// ParseRequirements reads PEP 508 requirement lines from r. source names r
// in errors and in each Requirement. Blank lines and comments (a '#' at the
// start of a line or after whitespace) are skipped. Everything that is not
// a plain "name[extras] specifiers ; markers" requirement is rejected with
// a message naming source and line: pip options, URLs and direct
// references, local paths and archives, line continuations, environment
// variables, control characters and invalid UTF-8. A project named on two
// lines is an error naming both. No lines at all is not an error.
func ParseRequirements(source string, r io.Reader) ([]Requirement, error) {
	var reqs []Requirement
	err := eachLine(source, r, func(n int, text string) error {
		req, err := parseRequirementLine(text)
		if err != nil {
			return err
		}
		req.Source, req.Line = source, n
		reqs = append(reqs, req)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := checkDuplicates(reqs); err != nil {
		return nil, err
	}
	return reqs, nil
}

// ParseRequirementArgs parses requirements given as command-line
// arguments, one requirement per argument, with Source "args".
func ParseRequirementArgs(args []string) ([]Requirement, error) {
	var reqs []Requirement
	var errs []error
	for i, a := range args {
		if strings.ContainsAny(a, "\r\n") {
			errs = append(errs, invalidf("args", 0, "", "argument %d %s: one requirement per argument, without line breaks", i+1, quote(a)))
			continue
		}
		text, err := cleanLine(a)
		if err == nil && text == "" {
			err = errors.New("empty requirement")
		}
		if err == nil {
			var req Requirement
			if req, err = parseRequirementLine(text); err == nil {
				req.Source = "args"
				reqs = append(reqs, req)
				continue
			}
		}
		errs = append(errs, invalidf("args", 0, "", "argument %d: %v", i+1, err))
		if len(errs) >= maxLineErrors {
			errs = append(errs, &Error{Source: "args", Msg: "too many errors; stopped"})
			break
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if err := checkDuplicates(reqs); err != nil {
		return nil, err
	}
	return reqs, nil
}

// ParsePins reads "name==version" lines (comments and blank lines allowed)
// from r, such as the output of `pip freeze` for a plain environment.
// Versions must be exact PEP 440 versions; a name pinned twice is an error.
func ParsePins(source string, r io.Reader) ([]Pin, error) {
	var pins []Pin
	seen := map[string]int{}
	err := eachLine(source, r, func(n int, text string) error {
		req, err := parseRequirementLine(text)
		if err != nil {
			return err
		}
		ver, ok := strings.CutPrefix(req.Specifier, "==")
		if !ok || strings.ContainsAny(ver, ",*") || len(req.Extras) > 0 || req.Marker != "" {
			return fmt.Errorf("%s: expected an exact pin name==version", quote(text))
		}
		if first, dup := seen[req.Name]; dup {
			return fmt.Errorf("%s: %s is pinned twice (first at %s:%d)", quote(text), quote(req.Name), source, first)
		}
		seen[req.Name] = n
		pins = append(pins, Pin{Name: req.Name, Version: ver, Source: source, Line: n})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return pins, nil
}

// eachLine splits r into lines, checks and strips each one (cleanLine) and
// calls fn with every non-empty line. Errors name source and line; up to
// maxLineErrors are reported together.
func eachLine(source string, r io.Reader, fn func(n int, text string) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxLineLen)
	var errs []error
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if n == 1 {
			line = strings.TrimPrefix(line, "\ufeff")
		}
		text, err := cleanLine(strings.TrimSuffix(line, "\r"))
		if err == nil && text != "" {
			err = fn(n, text)
		}
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) {
				err = &Error{Source: source, Line: n, Msg: err.Error()}
			}
			errs = append(errs, err)
			if len(errs) >= maxLineErrors {
				errs = append(errs, &Error{Source: source, Msg: "too many errors; stopped"})
				return errors.Join(errs...)
			}
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			err = fmt.Errorf("line longer than %d bytes", maxLineLen)
		}
		errs = append(errs, &Error{Source: source, Line: n + 1, Msg: err.Error()})
	}
	return errors.Join(errs...)
}

// isControl reports control characters other than tab.
func isControl(r rune) bool { return r != '\t' && unicode.IsControl(r) }

// cleanLine rejects control characters, invalid UTF-8 and line
// continuations, then strips a comment and surrounding blanks.
func cleanLine(line string) (string, error) {
	if !utf8.ValidString(line) {
		return "", errors.New("line is not valid UTF-8")
	}
	if i := strings.IndexFunc(line, isControl); i >= 0 {
		r, _ := utf8.DecodeRuneInString(line[i:])
		return "", fmt.Errorf("control character %U at column %d is not allowed", r, utf8.RuneCountInString(line[:i])+1)
	}
	trimmed := strings.TrimSpace(line)
	if strings.HasPrefix(trimmed, "#") {
		return "", nil
	}
	if strings.HasSuffix(trimmed, `\`) {
		return "", fmt.Errorf("%s: line continuations ('\\' at the end of a line) are not allowed; write each requirement on one line", quote(trimmed))
	}
	// A comment starts at a '#' preceded by whitespace, as in pip.
	for i := 1; i < len(line); i++ {
		if line[i] == '#' && (line[i-1] == ' ' || line[i-1] == '\t') {
			line = line[:i]
			break
		}
	}
	return strings.TrimSpace(line), nil
}

// parseRequirementLine checks one comment-free, trimmed line for the
// forms pip would treat as something other than a requirement, then parses
// it as a PEP 508 requirement without a URL.
func parseRequirementLine(text string) (Requirement, error) {
	if err := rejectNonRequirement(text); err != nil {
		return Requirement{}, fmt.Errorf("%s: %w", quote(text), err)
	}
	p := &reqParser{s: text}
	req, err := p.requirement()
	if err != nil {
		return Requirement{}, fmt.Errorf("%s: %w", quote(text), err)
	}
	req.Raw = text
	return req, nil
}

// rejectNonRequirement returns a specific error for pip options, URLs,
// direct references, environment variables and local paths.
func rejectNonRequirement(text string) error {
	if strings.HasPrefix(text, "-") {
		opt, _, _ := strings.Cut(text, " ")
		opt, _, _ = strings.Cut(opt, "=")
		switch {
		case strings.HasPrefix(opt, "-i") || strings.HasPrefix(opt, "-f") ||
			strings.HasPrefix(opt, "--index-url") || strings.HasPrefix(opt, "--extra-index-url") ||
			strings.HasPrefix(opt, "--find-links") || strings.HasPrefix(opt, "--no-index") ||
			strings.HasPrefix(opt, "--trusted-host"):
			return fmt.Errorf("pip option %s is not allowed in requirements: set the package index in skill.yaml (index:) or with --index-url, --extra-index-url and --find-links", opt)
		case strings.HasPrefix(opt, "-r") || strings.HasPrefix(opt, "--requirement") || strings.HasPrefix(opt, "-c") || strings.HasPrefix(opt, "--constraint"):
			return fmt.Errorf("pip option %s is not allowed: nested requirement and constraint files are not supported; list the requirements directly or pass -r FILE to skillbuild", opt)
		case strings.HasPrefix(opt, "-e") || strings.HasPrefix(opt, "--editable"):
			return fmt.Errorf("pip option %s is not allowed: editable installs are not supported", opt)
		default:
			return fmt.Errorf("pip option %s is not allowed in requirements: only PEP 508 requirements (name[extras] specifiers ; markers) are accepted", opt)
		}
	}
	if strings.Contains(text, "$") {
		return errors.New("'$' is not allowed: environment variables ($VAR, ${VAR}) are not expanded; write the value")
	}
	if urlRE.MatchString(text) {
		return errors.New("URLs are not allowed in requirements: publish the package to the index or a --find-links directory and require it by name")
	}
	quoted := byte(0)
	for i := 0; i < len(text); i++ {
		c := text[i]
		switch {
		// pip splits a requirements-file line at the first blank-separated
		// word starting with '-' and reads the rest as options, quotes or
		// not: `x; "a" != " --pre"` would reach pip as `x; "a" != "` plus
		// the option --pre. So a blank before '-' is refused even inside a
		// marker's quoted string.
		case (c == ' ' || c == '\t') && i+1 < len(text) && text[i+1] == '-':
			opt, _, _ := strings.Cut(text[i+1:], " ")
			opt, _, _ = strings.Cut(opt, "=")
			opt = strings.TrimRight(opt, `"'`)
			if quoted != 0 {
				return fmt.Errorf("a blank followed by '-' inside a quoted marker value (%s) is not allowed: pip would read it as the option %s", quote(text[i:]), quote(opt))
			}
			return fmt.Errorf("per-requirement pip option %s is not allowed: hashes and install options are decided by skillbuild", opt)
		case quoted != 0:
			if c == quoted {
				quoted = 0
			}
		case c == '"' || c == '\'':
			quoted = c
		case c == '@':
			return errors.New("direct references (name @ url) are not allowed: require the package by name and version")
		}
	}
	head, _, _ := strings.Cut(text, ";")
	head = strings.TrimSpace(head)
	if strings.HasPrefix(head, ".") || strings.HasPrefix(head, "~") || strings.ContainsAny(head, `/\`) {
		return errors.New("local paths are not allowed in requirements: put wheels in a --find-links directory and require them by name")
	}
	lower := strings.ToLower(head)
	for _, suf := range archiveSuffixes {
		if strings.HasSuffix(lower, suf) {
			return fmt.Errorf("local archive files (%s) are not allowed in requirements: put wheels in a --find-links directory and require them by name", suf)
		}
	}
	return nil
}

// reqParser is a recursive-descent parser for the PEP 508 grammar without
// URLs: name [extras] [versionspec] [; marker].
type reqParser struct {
	s string
	i int
}

func (p *reqParser) ws() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

func (p *reqParser) peek() byte {
	if p.i < len(p.s) {
		return p.s[p.i]
	}
	return 0
}

func (p *reqParser) rest() string { return p.s[p.i:] }

// identifier reads a run of name characters.
func (p *reqParser) identifier() string {
	start := p.i
	for p.i < len(p.s) {
		c := p.s[p.i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_' {
			p.i++
			continue
		}
		break
	}
	return p.s[start:p.i]
}

func (p *reqParser) requirement() (Requirement, error) {
	var req Requirement
	name := p.identifier()
	if name == "" {
		return req, fmt.Errorf("expected a project name, found %s", quote(p.rest()))
	}
	if !nameRE.MatchString(name) {
		return req, fmt.Errorf("invalid project name %s: use letters, digits, '-', '_' and '.', starting and ending with a letter or digit", quote(name))
	}
	req.Name = lock.NormalizeName(name)
	p.ws()
	if p.peek() == '[' {
		extras, err := p.extras()
		if err != nil {
			return req, err
		}
		req.Extras = extras
		p.ws()
	}
	switch c := p.peek(); {
	case c == '(':
		p.i++
		spec, err := p.versionMany()
		if err != nil {
			return req, err
		}
		p.ws()
		if p.peek() != ')' {
			return req, fmt.Errorf("expected ')' to close the version specifier, found %s", quote(p.rest()))
		}
		p.i++
		req.Specifier = spec
	case strings.IndexByte("<>=!~", c) >= 0 && c != 0:
		spec, err := p.versionMany()
		if err != nil {
			return req, err
		}
		req.Specifier = spec
	}
	p.ws()
	if p.peek() == ';' {
		p.i++
		m, err := parseMarker(p.rest())
		if err != nil {
			return req, err
		}
		req.Marker = m
		p.i = len(p.s)
	}
	if p.i < len(p.s) {
		return req, fmt.Errorf("unexpected %s after the requirement; expected a version specifier or '; marker'", quote(p.rest()))
	}
	return req, nil
}

func (p *reqParser) extras() ([]string, error) {
	p.i++ // '['
	var extras []string
	for {
		p.ws()
		if p.peek() == ']' && len(extras) == 0 {
			p.i++
			return extras, nil
		}
		e := p.identifier()
		if !nameRE.MatchString(e) {
			return nil, fmt.Errorf("invalid extra name %s in [extras]", quote(e+p.rest()))
		}
		extras = append(extras, e)
		p.ws()
		switch p.peek() {
		case ',':
			p.i++
		case ']':
			p.i++
			return extras, nil
		default:
			return nil, fmt.Errorf("expected ',' or ']' in [extras], found %s", quote(p.rest()))
		}
	}
}

// specOps lists the version comparison operators, longest first.
var specOps = []string{"===", "~=", "==", "!=", "<=", ">=", "<", ">"}

// versionMany parses comma-separated "op version" clauses and returns them
// joined with ',' and without blanks.
func (p *reqParser) versionMany() (string, error) {
	var clauses []string
	for {
		p.ws()
		op := ""
		for _, o := range specOps {
			if strings.HasPrefix(p.rest(), o) {
				op = o
				break
			}
		}
		if op == "" {
			return "", fmt.Errorf("expected a version operator (~= == != <= >= < > ===), found %s", quote(p.rest()))
		}
		p.i += len(op)
		p.ws()
		start := p.i
		for p.i < len(p.s) {
			c := p.s[p.i]
			if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-_.*+!", c) >= 0 {
				p.i++
				continue
			}
			break
		}
		v := p.s[start:p.i]
		if err := checkSpecVersion(op, v); err != nil {
			return "", err
		}
		clauses = append(clauses, op+v)
		p.ws()
		if p.peek() != ',' {
			return strings.Join(clauses, ","), nil
		}
		p.i++
	}
}

// checkSpecVersion applies PEP 440's rules for the version after op.
func checkSpecVersion(op, v string) error {
	if v == "" {
		return fmt.Errorf("missing version after %q", op)
	}
	if op == "===" {
		return nil // arbitrary equality: any string of version characters
	}
	if prefix, ok := strings.CutSuffix(v, ".*"); ok {
		if op != "==" && op != "!=" {
			return fmt.Errorf("version wildcard %s is only allowed with == and !=", quote(op+v))
		}
		if !wildcardRE.MatchString(prefix) {
			return fmt.Errorf("invalid version wildcard %s: use a release number followed by .*, e.g. ==1.2.*", quote(op+v))
		}
		return nil
	}
	m := versionRE440.FindStringSubmatch(v)
	if m == nil {
		return fmt.Errorf("invalid version %s in %s: not a PEP 440 version", quote(v), quote(op+v))
	}
	if m[1] != "" && op != "==" && op != "!=" {
		return fmt.Errorf("local version %s is only allowed with == and !=", quote(op+v))
	}
	if op == "~=" && !strings.Contains(releaseOf(v), ".") {
		return fmt.Errorf("%s needs at least two release components, e.g. ~=1.4", quote(op+v))
	}
	return nil
}

// releaseOf returns the dotted release segment of a valid PEP 440 version.
func releaseOf(v string) string {
	v = strings.TrimLeft(v, "vV")
	if _, after, ok := strings.Cut(v, "!"); ok {
		v = after
	}
	end := 0
	for end < len(v) && (v[end] >= '0' && v[end] <= '9' || v[end] == '.' && end+1 < len(v) && v[end+1] >= '0' && v[end+1] <= '9') {
		end++
	}
	return v[:end]
}

// checkDuplicates rejects a project named by two requirements, naming
// both; like line errors, at most maxLineErrors are reported.
func checkDuplicates(reqs []Requirement) error {
	seen := map[string]Requirement{}
	var errs []error
	for _, r := range reqs {
		if first, dup := seen[r.Name]; dup {
			if len(errs) == maxLineErrors {
				errs = append(errs, &Error{Source: r.Source, Msg: "too many errors; stopped"})
				break
			}
			errs = append(errs, &Error{Source: r.Source, Line: r.Line, Msg: fmt.Sprintf(
				"%s: project %s is already required at %s; combine the specifiers into one requirement",
				quote(r.Raw), quote(r.Name), where(first))})
			continue
		}
		seen[r.Name] = r
	}
	return errors.Join(errs...)
}

// where renders a requirement's location: "file:line" or "args".
func where(r Requirement) string {
	if r.Line > 0 {
		return fmt.Sprintf("%s:%d", r.Source, r.Line)
	}
	return fmt.Sprintf("%s %s", r.Source, quote(r.Raw))
}
