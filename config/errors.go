package config

import (
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
)

// Error is a configuration error that points at its input: a file and line,
// a skill.yaml field, a flag or a command-line argument. It wraps
// errdefs.ErrInvalidArgument, so errdefs.IsInvalidArgument reports true.
type Error struct {
	// Source names the input: a file path, "args" or "flags".
	Source string `json:"source,omitempty"`
	// Line is the 1-based line in Source, 0 when unknown or not a file.
	Line int `json:"line,omitempty"`
	// Field is the skill.yaml field ("run.memory") or flag ("--memory").
	Field string `json:"field,omitempty"`
	// Msg says what is wrong and, where it helps, what to do.
	Msg string `json:"message"`
}

// Error renders "source:line: field: message", omitting empty parts.
func (e *Error) Error() string {
	var b strings.Builder
	if e.Source != "" {
		b.WriteString(e.Source)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
		}
		b.WriteString(": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Unwrap classifies every configuration error as an invalid argument.
func (e *Error) Unwrap() error { return errdefs.ErrInvalidArgument }

// invalidf builds an *Error with a formatted message.
func invalidf(source string, line int, field, format string, args ...any) *Error {
	return &Error{Source: source, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)}
}

// redactURL masks a URL's whole userinfo (a lone user name is often a
// token); text that does not parse as a URL is masked by pattern.
func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil && u.User != nil {
		u.User = url.User("xxxxx")
		return u.String()
	}
	return userinfoRE.ReplaceAllString(s, "${1}xxxxx@")
}

var userinfoRE = regexp.MustCompile(`(://)[^/@\s]*@`)

// quote renders user input for an error message: credentials in URLs are
// redacted, long input shortened, and everything but printable ASCII
// escaped (\u0430 for a Cyrillic a, \u212a for the Kelvin sign), so a
// look-alike character never passes for the ASCII one in a message.
func quote(s string) string {
	s = userinfoRE.ReplaceAllString(s, "${1}xxxxx@")
	if r := []rune(s); len(r) > 80 {
		s = string(r[:77]) + "..."
	}
	return strconv.QuoteToASCII(s)
}
