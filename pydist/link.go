package pydist

import (
	"fmt"
	"regexp"
	"strings"
)

// Hash is one hash of a file as an index gives it.
type Hash struct {
	Name, Value string
}

// Link is one file on a project page, as pip 23.0's Link holds it.
type Link struct {
	// URL is the file's URL as pip cleans it (_ensure_quoted_url of the
	// href resolved against the page), with its fragment.
	URL string
	// RequiresPython is data-requires-python ("requires-python"), nil
	// when absent or empty.
	RequiresPython *string
	// Yanked is the yanked reason ("" when yanked without one), nil when
	// the file is not yanked (PEP 592).
	Yanked *string
	// DistInfoMetadata is data-dist-info-metadata (PEP 658): nil when
	// absent, "true", or "NAME=HEX" of the metadata file.
	DistInfoMetadata *string
	// Hashes are the JSON page's hashes in their order, then the hash in
	// the URL (which replaces one of the same name): pip's Link._hashes.
	Hashes []Hash
}

// hashRE is pip's LinkHash pattern, searched anywhere in the URL.
var hashRE = regexp.MustCompile(`(sha512|sha384|sha256|sha224|sha1|md5)=(.*)`)

// newLink fills Hashes from hashes (a JSON page's, in order) and the URL.
func newLink(url string, hashes []Hash) Link {
	l := Link{URL: url, Hashes: append([]Hash{}, hashes...)}
	if m := hashRE.FindStringSubmatch(url); m != nil {
		replaced := false
		for i := range l.Hashes {
			if l.Hashes[i].Name == m[1] {
				l.Hashes[i].Value = m[2]
				replaced = true
			}
		}
		if !replaced {
			l.Hashes = append(l.Hashes, Hash{Name: m[1], Value: m[2]})
		}
	}
	return l
}

// Hash is the link's first hash (pip's Link.hash_name and Link.hash,
// what its installation report records).
func (l Link) Hash() (Hash, bool) {
	if len(l.Hashes) == 0 {
		return Hash{}, false
	}
	return l.Hashes[0], true
}

// split is the URL split as urllib.parse.urlsplit does.
func (l Link) split() pyURL { return urlsplit(l.URL, "") }

// WithoutFragment is the URL without its fragment: what pip's
// installation report gives as the file's URL.
func (l Link) WithoutFragment() string {
	u := l.split()
	u.fragment = ""
	return u.unsplit()
}

// Path is the URL's path, unquoted (pip's Link.path).
func (l Link) Path() string {
	p, _ := unquote(l.split().path)
	return p
}

// Filename is pip's Link.filename: the last element of the unquoted path,
// unquoted once more.
func (l Link) Filename() string {
	name := basename(strings.TrimRight(l.Path(), "/"))
	if name == "" {
		return l.split().netloc
	}
	n, _ := unquote(name)
	return n
}

// Ext is pip's Link.ext: the file's extension, ".tar.gz" and the like
// whole, as written (".whl" only in lowercase is a wheel).
func (l Link) Ext() string {
	_, ext := splitext(basename(strings.TrimRight(l.Path(), "/")))
	return ext
}

// basename is posixpath.basename: what follows the last "/".
func basename(p string) string { return p[strings.LastIndexByte(p, '/')+1:] }

// splitext is pip's splitext: posixpath.splitext that keeps ".tar".
func splitext(p string) (string, string) {
	base, ext := pySplitext(p)
	if strings.HasSuffix(strings.ToLower(base), ".tar") {
		ext = base[len(base)-4:] + ext
		base = base[:len(base)-4]
	}
	return base, ext
}

// pySplitext is posixpath.splitext: the extension starts at the last dot
// that is not part of the leading dots.
func pySplitext(p string) (string, string) {
	slash := strings.LastIndexByte(p, '/')
	dot := strings.LastIndexByte(p, '.')
	if dot > slash {
		i := slash + 1
		for i < dot && p[i] == '.' {
			i++
		}
		if i < dot {
			return p[:dot], p[dot:]
		}
	}
	return p, ""
}

// MetadataURL is the URL of the file's PEP 658 metadata and the hash it
// must have (pip's Link.metadata_link); ok is false without one.
func (l Link) MetadataURL() (url string, hash *Hash, ok bool) {
	if l.DistInfoMetadata == nil {
		return "", nil, false
	}
	url = l.WithoutFragment() + ".metadata"
	if *l.DistInfoMetadata != "true" {
		if m := hashRE.FindStringSubmatch(*l.DistInfoMetadata); m != nil {
			hash = &Hash{Name: m[1], Value: m[2]}
		}
	}
	return url, hash, true
}

// cleanLink is pip's Link.from_element/from_json URL handling: href
// resolved against base, then _ensure_quoted_url.
func cleanLink(base, href string) (string, error) {
	if err := checkURLText(href); err != nil {
		return "", err
	}
	joined := urljoin(base, href)
	u := urlsplit(joined, "")
	if u.scheme != "http" && u.scheme != "https" {
		return "", fmt.Errorf("link %q is not http or https: %w", joined, ErrUnsupported)
	}
	return ensureQuotedURL(joined)
}

// PathToURL is pip's path_to_url for an absolute, clean POSIX path: the
// file:// URL of a find-links file.
func PathToURL(p string) string { return "file://" + quote(p) }

// FileLink is the link pip makes of a find-links file at path p.
func FileLink(p string) Link { return newLink(PathToURL(p), nil) }
