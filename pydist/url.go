package pydist

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// This file ports the parts of Python 3.11's urllib.parse that pip uses on
// index links (urlsplit, urljoin, quote, unquote), for http(s) and file
// URLs made of printable ASCII without ';' (checkURLText refuses others).

// pyURL is urllib.parse.SplitResult.
type pyURL struct {
	scheme, netloc, path, query, fragment string
}

// checkURLText refuses what the port does not handle: non-ASCII,
// blanks and controls, backslashes and ';' (URL parameters), and "[" or
// "]" (IPv6 hosts).
func checkURLText(s string) error {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || c == '\\' || c == ';' || c == '[' || c == ']' {
			return fmt.Errorf("URL %q has a character the in-process reader does not handle: %w", s, ErrUnsupported)
		}
	}
	return nil
}

const schemeChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-."

// urlsplit is urllib.parse.urlsplit(url, scheme).
func urlsplit(url, scheme string) pyURL {
	var u pyURL
	u.scheme = scheme
	if i := strings.IndexByte(url, ':'); i > 0 && isAlpha(url[0]) {
		ok := true
		for j := 0; j < i; j++ {
			if strings.IndexByte(schemeChars, url[j]) < 0 {
				ok = false
				break
			}
		}
		if ok {
			u.scheme, url = strings.ToLower(url[:i]), url[i+1:]
		}
	}
	if strings.HasPrefix(url, "//") {
		end := len(url)
		for _, c := range "/?#" {
			if j := strings.IndexRune(url[2:], c); j >= 0 && j+2 < end {
				end = j + 2
			}
		}
		u.netloc, url = url[2:end], url[end:]
	}
	if i := strings.IndexByte(url, '#'); i >= 0 {
		url, u.fragment = url[:i], url[i+1:]
	}
	if i := strings.IndexByte(url, '?'); i >= 0 {
		url, u.query = url[:i], url[i+1:]
	}
	u.path = url
	return u
}

func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// usesNetloc and usesRelative are urllib.parse's scheme lists, as far as
// they concern this port.
var usesNetloc = map[string]bool{"": true, "http": true, "https": true, "file": true, "ftp": true}

// unsplit is urllib.parse.urlunsplit.
func (u pyURL) unsplit() string {
	url := u.path
	if u.netloc != "" || (u.scheme != "" && usesNetloc[u.scheme] && !strings.HasPrefix(url, "//")) {
		if url != "" && url[0] != '/' {
			url = "/" + url
		}
		url = "//" + u.netloc + url
	}
	if u.scheme != "" {
		url = u.scheme + ":" + url
	}
	if u.query != "" {
		url += "?" + u.query
	}
	if u.fragment != "" {
		url += "#" + u.fragment
	}
	return url
}

// urljoin is urllib.parse.urljoin(base, url) for the schemes above.
func urljoin(base, url string) string {
	if base == "" {
		return url
	}
	if url == "" {
		return base
	}
	b := urlsplit(base, "")
	u := urlsplit(url, b.scheme)
	if u.scheme != b.scheme || !usesNetloc[u.scheme] {
		return url
	}
	if u.netloc != "" {
		return u.unsplit()
	}
	u.netloc = b.netloc
	if u.path == "" {
		u.path = b.path
		if u.query == "" {
			u.query = b.query
		}
		return u.unsplit()
	}
	baseParts := strings.Split(b.path, "/")
	if baseParts[len(baseParts)-1] != "" {
		baseParts = baseParts[:len(baseParts)-1]
	}
	var segments []string
	if strings.HasPrefix(u.path, "/") {
		segments = strings.Split(u.path, "/")
	} else {
		segments = append(baseParts, strings.Split(u.path, "/")...)
		if len(segments) > 2 {
			mid := []string{}
			for _, s := range segments[1 : len(segments)-1] {
				if s != "" {
					mid = append(mid, s)
				}
			}
			segments = append(append([]string{segments[0]}, mid...), segments[len(segments)-1])
		}
	}
	var resolved []string
	for _, seg := range segments {
		switch seg {
		case "..":
			if len(resolved) > 0 {
				resolved = resolved[:len(resolved)-1]
			}
		case ".":
		default:
			resolved = append(resolved, seg)
		}
	}
	if last := segments[len(segments)-1]; last == "." || last == ".." {
		resolved = append(resolved, "")
	}
	u.path = strings.Join(resolved, "/")
	if u.path == "" {
		u.path = "/"
	}
	return u.unsplit()
}

// unquote is urllib.parse.unquote: %XX escapes decoded, the bytes read as
// UTF-8. Python replaces invalid UTF-8 by its own rules; ok is false
// then, and the caller gives up.
func unquote(s string) (string, bool) {
	if !strings.Contains(s, "%") {
		return s, true
	}
	var b []byte
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
			continue
		}
		b = append(b, s[i])
	}
	return string(b), utf8.Valid(b)
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// quote is urllib.parse.quote(s, safe="/"): every byte of s's UTF-8 but
// letters, digits, "_.-~" and "/" escaped as %XX.
func quote(s string) string {
	const hexdigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isAlpha(c) || c >= '0' && c <= '9' || strings.IndexByte("_.-~/", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexdigits[c>>4])
		b.WriteByte(hexdigits[c&15])
	}
	return b.String()
}

// ensureQuotedURL is pip's _ensure_quoted_url for URLs with a host: the
// path re-quoted part by part between "@" and "%2F" (which are kept, the
// latter uppercased).
func ensureQuotedURL(url string) (string, error) {
	u := urlsplit(url, "")
	if u.netloc == "" {
		return "", fmt.Errorf("link %q has no host: %w", url, ErrUnsupported)
	}
	var b strings.Builder
	p := u.path
	for {
		i, n := nextReserved(p)
		part := p
		if i >= 0 {
			part = p[:i]
		}
		uq, ok := unquote(part)
		if !ok {
			return "", fmt.Errorf("link %q escapes bytes that are not UTF-8: %w", url, ErrUnsupported)
		}
		b.WriteString(quote(uq))
		if i < 0 {
			break
		}
		b.WriteString(strings.ToUpper(p[i : i+n]))
		p = p[i+n:]
	}
	u.path = b.String()
	return u.unsplit(), nil
}

// nextReserved finds the next "@" or "%2F" (any case) in p.
func nextReserved(p string) (int, int) {
	for i := 0; i < len(p); i++ {
		if p[i] == '@' {
			return i, 1
		}
		if p[i] == '%' && i+2 < len(p) && p[i+1] == '2' && (p[i+2] == 'F' || p[i+2] == 'f') {
			return i, 3
		}
	}
	return -1, 0
}
