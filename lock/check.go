package lock

import (
	"fmt"
	"net"
	"net/url"
	"path"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
)

// Sources is where a lock's files may come from: the resolve step ran
// package code (with --allow-sdist), so its report is untrusted until
// every URL in it is checked against these.
type Sources struct {
	// Origins are the allowed http(s) origins, scheme://host:port, e.g.
	// "https://pypi.org:443" (see Origin): the index URLs as the resolve
	// step was given them and the file hosts their pages may link to.
	Origins []string
	// FindLinks are the find-links directories as the resolve step saw
	// them (absolute paths, e.g. /run/skillbuild/find-links/0): a file://
	// entry must name its own file directly in one of them.
	FindLinks []string
}

// Origin returns the canonical scheme://host:port of an http(s) URL
// (lowercase scheme and host, explicit default port), or an error.
func Origin(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	scheme := strings.ToLower(u.Scheme)
	if (scheme != "http" && scheme != "https") || u.Hostname() == "" {
		return "", fmt.Errorf("%q is not an absolute http or https URL", raw)
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[scheme]
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("%q has a bad port", raw)
	}
	return scheme + "://" + net.JoinHostPort(strings.ToLower(u.Hostname()), port), nil
}

// Check makes sure every distribution of the lock comes from an allowed
// source: an http(s) URL on one of src.Origins (scheme, host and port
// exactly), without credentials, or a file:// URL naming the entry's own
// file directly in one of the find-links directories. The first entry that
// does not is an errdefs.ErrPermissionDenied naming the distribution, its
// URL and the allowed sources; nothing of the lock may be fetched then.
func (l Lock) Check(src Sources) error {
	allowed := map[string]bool{}
	for _, o := range src.Origins {
		allowed[o] = true
	}
	for _, d := range l {
		if err := checkSource(d, allowed, src.FindLinks); err != nil {
			return fmt.Errorf("%s %s resolved to %s, %v; allowed are %s: refusing the whole resolution (a build script may have rewritten it): %w",
				d.Name, d.Version, strconv.QuoteToASCII(d.URL), err, src.describe(), errdefs.ErrPermissionDenied)
		}
	}
	return nil
}

func (src Sources) describe() string {
	var parts []string
	if len(src.Origins) > 0 {
		parts = append(parts, "files on "+strings.Join(src.Origins, ", "))
	}
	if len(src.FindLinks) > 0 {
		parts = append(parts, "files directly in "+strings.Join(src.FindLinks, ", "))
	}
	if len(parts) == 0 {
		return "no sources"
	}
	return strings.Join(parts, " and ")
}

func checkSource(d Dist, allowed map[string]bool, findLinks []string) error {
	if strings.ContainsAny(d.URL, "\x00\r\n\t ") {
		return fmt.Errorf("which has control characters or spaces")
	}
	u, err := url.Parse(d.URL)
	if err != nil {
		return fmt.Errorf("which is not a URL")
	}
	if u.User != nil {
		return fmt.Errorf("which carries credentials")
	}
	if d.Filename == "" || d.Filename != path.Base(u.Path) || strings.ContainsAny(d.Filename, "/\\") || d.Filename == "." || d.Filename == ".." {
		return fmt.Errorf("whose file name %q is not the URL's last path element", d.Filename)
	}
	if p := filenameProject(d.Filename); NormalizeName(p) != d.Name {
		return fmt.Errorf("whose file %s is not a distribution of %s", strconv.QuoteToASCII(d.Filename), d.Name)
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https":
		o, err := Origin(d.URL)
		if err != nil {
			return fmt.Errorf("which %v", err)
		}
		if !allowed[o] {
			return fmt.Errorf("which is not on an allowed index host (%s)", o)
		}
		return nil
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return fmt.Errorf("which names a file on another host")
		}
		if path.Clean(u.Path) != u.Path {
			return fmt.Errorf("which is not a clean path")
		}
		for _, dir := range findLinks {
			if u.Path == path.Join(dir, d.Filename) {
				return nil
			}
		}
		return fmt.Errorf("which is not a file directly in one of the find-links directories")
	default:
		return fmt.Errorf("whose scheme %q is not http, https or file", u.Scheme)
	}
}

// filenameProject is the project part of a distribution file name: before
// the first '-' of a wheel (names are escaped to '_' there), before the
// last '-' of a source archive ("python-dateutil-2.8.2.tar.gz").
func filenameProject(f string) string {
	if strings.HasSuffix(f, ".whl") {
		p, _, _ := strings.Cut(f, "-")
		return p
	}
	i := strings.LastIndex(f, "-")
	if i < 0 {
		return ""
	}
	return f[:i]
}
