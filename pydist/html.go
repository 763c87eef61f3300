package pydist

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxPage bounds the project pages the parsers read.
const MaxPage = 64 << 20

// ParseHTML reads the links of a PEP 503 project page as pip 23.0 does
// (html.parser, a <base href> honoured, anchors without href skipped),
// page being the page's UTF-8 text and pageURL where it was served from
// (after redirects). Markup pip's parser would read in ways this reader
// does not reproduce (script or style elements, unusual attribute syntax,
// an entity other than &amp; &lt; &gt; &quot; &apos; &#N; &#xN;, an
// unterminated comment or tag) is an ErrUnsupported.
func ParseHTML(page []byte, pageURL string) ([]Link, error) {
	if len(page) > MaxPage {
		return nil, fmt.Errorf("project page %s is larger than %d bytes: %w", pageURL, MaxPage, ErrUnsupported)
	}
	if !utf8.Valid(page) {
		return nil, fmt.Errorf("project page %s is not UTF-8: %w", pageURL, ErrUnsupported)
	}
	if err := checkURLText(pageURL); err != nil {
		return nil, err
	}
	s := string(page)
	var anchors []map[string]*string
	var base *string
	for i := 0; i < len(s); {
		lt := strings.IndexByte(s[i:], '<')
		if lt < 0 {
			break
		}
		i += lt
		rest := s[i:]
		switch {
		case strings.HasPrefix(rest, "<!--"):
			end := strings.Index(rest[4:], "-->")
			if end < 0 {
				return nil, unsupportedHTML(pageURL, "an unterminated comment")
			}
			i += 4 + end + 3
		case strings.HasPrefix(rest, "<!["):
			return nil, unsupportedHTML(pageURL, "a marked section")
		case strings.HasPrefix(rest, "<!") || strings.HasPrefix(rest, "<?"):
			end := strings.IndexByte(rest, '>')
			if end < 0 || strings.Contains(rest[1:end], "<") {
				return nil, unsupportedHTML(pageURL, "an unusual declaration")
			}
			i += end + 1
		case strings.HasPrefix(rest, "</"):
			end := strings.IndexByte(rest, '>')
			if end < 0 {
				return nil, unsupportedHTML(pageURL, "an unterminated end tag")
			}
			i += end + 1
		case len(rest) > 1 && isAlpha(rest[1]):
			tag, attrs, n, err := startTag(rest)
			if err != nil {
				return nil, unsupportedHTML(pageURL, err.Error())
			}
			i += n
			switch tag {
			case "script", "style":
				// html.parser reads their content as text up to the end
				// tag, by rules this reader does not reproduce.
				return nil, unsupportedHTML(pageURL, "a <"+tag+"> element")
			case "base":
				if base == nil {
					if h, ok := attrs["href"]; ok && h != nil {
						base = h
					}
				}
			case "a":
				anchors = append(anchors, attrs)
			}
		default:
			i++
		}
	}
	baseURL := pageURL
	if base != nil {
		baseURL = *base
		if err := checkURLText(baseURL); err != nil {
			return nil, err
		}
	}
	var links []Link
	for _, a := range anchors {
		href := a["href"]
		if href == nil || *href == "" {
			continue
		}
		u, err := cleanLink(baseURL, *href)
		if err != nil {
			return nil, err
		}
		l := newLink(u, nil)
		if rp := a["data-requires-python"]; rp != nil && *rp != "" {
			l.RequiresPython = rp
		}
		l.Yanked = a["data-yanked"]
		l.DistInfoMetadata = a["data-dist-info-metadata"]
		links = append(links, l)
	}
	return links, nil
}

func unsupportedHTML(page, what string) error {
	return fmt.Errorf("project page %s has %s: %w", page, what, ErrUnsupported)
}

// startTag reads "<name attrs...>" at the start of s: the lowercase tag
// name, its attributes (name lowercased; value unescaped, nil without
// "="; a later duplicate replaces an earlier one, as pip's dict(attrs)
// does) and the length read.
func startTag(s string) (string, map[string]*string, int, error) {
	i := 1
	for i < len(s) && !strings.ContainsRune("\t\n\r\f />\x00", rune(s[i])) {
		i++
	}
	tag := strings.ToLower(s[1:i])
	if !isPlainName(tag) {
		return "", nil, 0, fmt.Errorf("an unusual tag name %q", tag)
	}
	attrs := map[string]*string{}
	for {
		j := i
		for i < len(s) && isBlank(s[i]) {
			i++
		}
		if i >= len(s) {
			return "", nil, 0, fmt.Errorf("an unterminated <%s> tag", tag)
		}
		switch {
		case s[i] == '>':
			return tag, attrs, i + 1, nil
		case strings.HasPrefix(s[i:], "/>"):
			return tag, attrs, i + 2, nil
		case i == j:
			return "", nil, 0, fmt.Errorf("an attribute of <%s> not separated by a blank", tag)
		}
		start := i
		for i < len(s) && (isAlpha(s[i]) || s[i] >= '0' && s[i] <= '9' || s[i] == '-' || s[i] == '_' || s[i] == ':' || s[i] == '.') {
			i++
		}
		if i == start {
			return "", nil, 0, fmt.Errorf("an unusual attribute in <%s>", tag)
		}
		name := strings.ToLower(s[start:i])
		k := i
		for k < len(s) && isBlank(s[k]) {
			k++
		}
		if k >= len(s) || s[k] != '=' {
			attrs[name] = nil
			continue
		}
		i = k + 1
		for i < len(s) && isBlank(s[i]) {
			i++
		}
		if i >= len(s) {
			return "", nil, 0, fmt.Errorf("an unterminated <%s> tag", tag)
		}
		var raw string
		switch q := s[i]; q {
		case '"', '\'':
			end := strings.IndexByte(s[i+1:], q)
			if end < 0 {
				return "", nil, 0, fmt.Errorf("an unterminated attribute value in <%s>", tag)
			}
			raw = s[i+1 : i+1+end]
			i += end + 2
		case '=':
			return "", nil, 0, fmt.Errorf("an unusual attribute value in <%s>", tag)
		default:
			start := i
			for i < len(s) && !isBlank(s[i]) && s[i] != '>' {
				i++
			}
			raw = s[start:i]
			if strings.ContainsAny(raw, "\"'=<`/") {
				return "", nil, 0, fmt.Errorf("an unusual unquoted attribute value in <%s>", tag)
			}
		}
		if strings.Contains(raw, "<") {
			return "", nil, 0, fmt.Errorf("'<' in an attribute value of <%s>", tag)
		}
		v, err := unescape(raw)
		if err != nil {
			return "", nil, 0, err
		}
		attrs[name] = &v
	}
}

func isPlainName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !(isAlpha(s[i]) || s[i] >= '0' && s[i] <= '9' || s[i] == '-') {
			return false
		}
	}
	return true
}

// isBlank is html.parser's attribute separator class (\s).
func isBlank(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

var namedEntities = map[string]string{"amp": "&", "lt": "<", "gt": ">", "quot": `"`, "apos": "'"}

// unescape decodes the character references html.unescape would decode
// the same way in every context: the five named ones and numeric ones,
// each with its ';'.
func unescape(s string) (string, error) {
	if !strings.Contains(s, "&") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '&' {
			b.WriteByte(s[i])
			continue
		}
		end := strings.IndexByte(s[i:], ';')
		if end < 0 {
			return "", fmt.Errorf("an unterminated character reference in %q: %w", s, ErrUnsupported)
		}
		ref := s[i+1 : i+end]
		switch {
		case namedEntities[ref] != "":
			b.WriteString(namedEntities[ref])
		case strings.HasPrefix(ref, "#x") || strings.HasPrefix(ref, "#X"):
			n, err := strconv.ParseUint(ref[2:], 16, 32)
			if err != nil || !plainRune(n) {
				return "", fmt.Errorf("character reference &%s; in %q: %w", ref, s, ErrUnsupported)
			}
			b.WriteRune(rune(n))
		case strings.HasPrefix(ref, "#"):
			n, err := strconv.ParseUint(ref[1:], 10, 32)
			if err != nil || !plainRune(n) {
				return "", fmt.Errorf("character reference &%s; in %q: %w", ref, s, ErrUnsupported)
			}
			b.WriteRune(rune(n))
		default:
			return "", fmt.Errorf("character reference &%s; in %q: %w", ref, s, ErrUnsupported)
		}
		i += end
	}
	return b.String(), nil
}

// plainRune: a code point html.unescape passes through unchanged
// (printable ASCII; it remaps controls, surrogates and some others).
func plainRune(n uint64) bool { return n >= 0x20 && n < 0x7f }
