package pydist

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Metadata is core metadata (METADATA, PKG-INFO, WHEEL) as Python's email
// parser reads it with the compat32 policy: header fields in order, each
// value without the blanks after its colon and without its final line
// break, continuation lines kept with their line breaks.
type Metadata struct {
	fields [][2]string // name as written, value
}

// ParseMetadata reads the header of a core metadata file (the body, the
// description, is not kept). The file must be UTF-8; header lines the
// email parser would take for something else (a "From " line, a field
// without a name) are an ErrUnsupported.
func ParseMetadata(b []byte) (*Metadata, error) {
	if len(b) > MaxMetadata {
		return nil, fmt.Errorf("metadata larger than %d bytes: %w", MaxMetadata, ErrUnsupported)
	}
	if !utf8.Valid(b) {
		return nil, fmt.Errorf("metadata is not UTF-8: %w", ErrUnsupported)
	}
	m := &Metadata{}
	s := string(b)
	var name string
	var lines []string
	flush := func() {
		if name == "" {
			return
		}
		_, v, _ := strings.Cut(lines[0], ":")
		v = strings.TrimLeft(v, " \t") + strings.Join(lines[1:], "")
		m.fields = append(m.fields, [2]string{name, strings.TrimRight(v, "\r\n")})
		name, lines = "", nil
	}
	for len(s) > 0 {
		line := s
		if i := strings.IndexAny(s, "\r\n"); i >= 0 {
			end := i + 1
			if s[i] == '\r' && i+1 < len(s) && s[i+1] == '\n' {
				end++
			}
			line = s[:end]
		}
		s = s[len(line):]
		body := strings.TrimRight(line, "\r\n")
		switch {
		case body == "":
			flush()
			return m, nil
		case body[0] == ' ' || body[0] == '\t':
			if name == "" {
				return nil, fmt.Errorf("metadata starts with a continuation line: %w", ErrUnsupported)
			}
			lines = append(lines, line)
		case strings.HasPrefix(body, "From "):
			return nil, fmt.Errorf("metadata has a \"From \" line: %w", ErrUnsupported)
		default:
			i := strings.IndexByte(body, ':')
			if i <= 0 || !headerName(body[:i]) {
				// The email parser ends the header here and reads the rest
				// as the body (a defect it records).
				return nil, fmt.Errorf("metadata line %q is not a header field: %w", body, ErrUnsupported)
			}
			flush()
			name, lines = body[:i], []string{line}
		}
	}
	flush()
	return m, nil
}

// headerName: printable ASCII but ':' and blank (the email parser's
// header line pattern).
func headerName(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e || s[i] == ':' {
			return false
		}
	}
	return true
}

// Get is the first value of the field (names compare case-insensitively).
func (m *Metadata) Get(name string) (string, bool) {
	for _, f := range m.fields {
		if strings.EqualFold(f[0], name) {
			return f[1], true
		}
	}
	return "", false
}

// GetAll is every value of the field, in order.
func (m *Metadata) GetAll(name string) []string {
	var out []string
	for _, f := range m.fields {
		if strings.EqualFold(f[0], name) {
			out = append(out, f[1])
		}
	}
	return out
}
