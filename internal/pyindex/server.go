package pyindex

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
)

// Server is a PEP 503 simple index over the distributions in one directory,
// listening on 127.0.0.1. Create it with Serve; stop it with Close.
type Server struct {
	dir string
	ln  net.Listener
	srv *http.Server

	coreMetadata bool
	json         bool
	yanked       map[string]string

	mu        sync.Mutex
	requests  []string
	downloads []string
	cache     map[string]*distFile // by file name
}

// Opt configures Serve.
type Opt func(*Server) error

// WithCoreMetadata makes the index offer each wheel's METADATA as a
// separate file, /files/<wheel>.metadata, announced on the project page with
// data-dist-info-metadata (PEP 658) and data-core-metadata (PEP 714), as
// PyPI does. Without it the index is plain PEP 503 and pip downloads a wheel
// to read its dependencies.
//
// Two pip 23.0.x behaviours (Debian 12's pip) show with it: pip checks that
// the Name in METADATA equals the requirement as spelled, not normalized, so
// it rejects a wheel whose METADATA says "Foo.Bar" when asked for "foo-bar";
// and `pip install --dry-run` still downloads every resolved wheel, twice.
// (measured here). Later pips are said to fix both; check before relying
// on either.
func WithCoreMetadata() Opt {
	return func(s *Server) error {
		s.coreMetadata = true
		return nil
	}
}

// WithYanked marks files as yanked (PEP 592): each file name maps to its
// reason ("" for none). Pages announce them with data-yanked (HTML) or
// "yanked" (JSON).
func WithYanked(reasons map[string]string) Opt {
	return func(s *Server) error {
		s.yanked = map[string]string{}
		for k, v := range reasons {
			s.yanked[k] = v
		}
		return nil
	}
}

// WithJSON serves project pages as PEP 691 JSON
// (application/vnd.pypi.simple.v1+json) to clients whose Accept header
// lists that type, as PyPI does; HTML to the others.
func WithJSON() Opt {
	return func(s *Server) error {
		s.json = true
		return nil
	}
}

// distFile is what the index needs to know about one file in dir.
type distFile struct {
	name    string // file name
	project string // PEP 503-normalized project name
	size    int64
	modTime time.Time

	sha256         string // hex
	requiresPython string
	metadata       []byte // a wheel's METADATA, for PEP 658; nil for sdists
}

const metadataSuffix = ".metadata"

// Serve starts an index over the *.whl and *.tar.gz files in dir on
// 127.0.0.1 (a free port). Files are discovered, hashed and read anew on
// every request (hashes are cached by size and modification time), so files
// added to dir later are served too.
func Serve(dir string, opts ...Opt) (*Server, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("serve index: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("serve index: %s is not a directory: %w", dir, errdefs.ErrInvalidArgument)
	}
	s := &Server{dir: dir, cache: map[string]*distFile{}}
	for _, o := range opts {
		if err := o(s); err != nil {
			return nil, fmt.Errorf("serve index: %w", err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("serve index: %w", err)
	}
	s.ln = ln
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 30 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// URL returns the index URL for pip's --index-url:
// "http://127.0.0.1:PORT/simple".
func (s *Server) URL() string { return "http://" + s.Addr() + "/simple" }

// Addr returns the listening address, "127.0.0.1:PORT".
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Requests returns the path of every request served so far, in order.
func (s *Server) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.requests...)
}

// Downloads returns the names of the distribution files served so far
// (GET requests answered with content), in order. Metadata files (PEP 658)
// and failed requests are left out: empty means no package was downloaded.
func (s *Server) Downloads() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.downloads...)
}

// ResetRequests forgets the requests and downloads recorded so far.
func (s *Server) ResetRequests() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = nil
	s.downloads = nil
}

// Close stops the server and closes its open connections.
func (s *Server) Close() error {
	return s.srv.Close()
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests = append(s.requests, r.URL.Path)
	s.mu.Unlock()

	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	p := r.URL.Path
	switch {
	case p == "/simple":
		http.Redirect(w, r, "/simple/", http.StatusMovedPermanently)
	case p == "/simple/":
		s.serveRoot(w)
	case strings.HasPrefix(p, "/simple/"):
		s.serveProject(w, r, strings.TrimPrefix(p, "/simple/"))
	case strings.HasPrefix(p, "/files/"):
		s.serveFile(w, r, strings.TrimPrefix(p, "/files/"))
	default:
		http.NotFound(w, r)
	}
}

const pageHead = "<!DOCTYPE html>\n<html>\n<head>\n<meta name=\"pypi:repository-version\" content=\"1.0\">\n<title>%s</title>\n</head>\n<body>\n"

func (s *Server) serveRoot(w http.ResponseWriter) {
	files, err := s.scan()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	seen := map[string]bool{}
	var projects []string
	for _, f := range files {
		if !seen[f.project] {
			seen[f.project] = true
			projects = append(projects, f.project)
		}
	}
	sort.Strings(projects)
	var b bytes.Buffer
	fmt.Fprintf(&b, pageHead, "Simple index")
	for _, p := range projects {
		e := html.EscapeString(p)
		fmt.Fprintf(&b, "<a href=\"%s/\">%s</a><br>\n", e, e)
	}
	b.WriteString("</body>\n</html>\n")
	writePage(w, b.Bytes())
}

func (s *Server) serveProject(w http.ResponseWriter, r *http.Request, rest string) {
	name, tail, _ := strings.Cut(rest, "/")
	if tail != "" || name == "" {
		http.NotFound(w, r)
		return
	}
	norm := Normalize(name)
	if norm != name || !strings.HasSuffix(rest, "/") {
		// pip normalizes names itself; follow PyPI and redirect the rest.
		http.Redirect(w, r, "/simple/"+norm+"/", http.StatusMovedPermanently)
		return
	}
	files, err := s.scan()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if s.json && strings.Contains(r.Header.Get("Accept"), "application/vnd.pypi.simple.v1+json") {
		s.serveProjectJSON(w, r, norm, files)
		return
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, pageHead, "Links for "+html.EscapeString(norm))
	fmt.Fprintf(&b, "<h1>Links for %s</h1>\n", html.EscapeString(norm))
	found := false
	for _, f := range files {
		if f.project != norm {
			continue
		}
		found = true
		fmt.Fprintf(&b, "<a href=\"../../files/%s#sha256=%s\"", html.EscapeString(url.PathEscape(f.name)), f.sha256)
		if f.requiresPython != "" {
			fmt.Fprintf(&b, " data-requires-python=\"%s\"", html.EscapeString(f.requiresPython))
		}
		if reason, ok := s.yanked[f.name]; ok {
			fmt.Fprintf(&b, " data-yanked=\"%s\"", html.EscapeString(reason))
		}
		if f.metadata != nil && s.coreMetadata {
			sum := sha256.Sum256(f.metadata)
			h := "sha256=" + hex.EncodeToString(sum[:])
			// PEP 658 named the attribute data-dist-info-metadata (pip 23.0
			// reads that one); PEP 714 renamed it data-core-metadata.
			fmt.Fprintf(&b, " data-dist-info-metadata=\"%s\" data-core-metadata=\"%s\"", h, h)
		}
		fmt.Fprintf(&b, ">%s</a><br>\n", html.EscapeString(f.name))
	}
	if !found {
		http.NotFound(w, r)
		return
	}
	b.WriteString("</body>\n</html>\n")
	writePage(w, b.Bytes())
}

// serveProjectJSON writes a PEP 691 project page.
func (s *Server) serveProjectJSON(w http.ResponseWriter, r *http.Request, norm string, files []*distFile) {
	type file struct {
		Filename       string            `json:"filename"`
		URL            string            `json:"url"`
		Hashes         map[string]string `json:"hashes"`
		RequiresPython *string           `json:"requires-python,omitempty"`
		Yanked         any               `json:"yanked,omitempty"`
		Metadata       any               `json:"dist-info-metadata,omitempty"`
	}
	page := struct {
		Meta  map[string]string `json:"meta"`
		Name  string            `json:"name"`
		Files []file            `json:"files"`
	}{Meta: map[string]string{"api-version": "1.0"}, Name: norm, Files: []file{}}
	for _, f := range files {
		if f.project != norm {
			continue
		}
		jf := file{Filename: f.name, URL: "../../files/" + url.PathEscape(f.name), Hashes: map[string]string{"sha256": f.sha256}}
		if f.requiresPython != "" {
			rp := f.requiresPython
			jf.RequiresPython = &rp
		}
		if reason, ok := s.yanked[f.name]; ok {
			jf.Yanked = true
			if reason != "" {
				jf.Yanked = reason
			}
		}
		if f.metadata != nil && s.coreMetadata {
			// pip 23.0 reads only a string here.
			sum := sha256.Sum256(f.metadata)
			jf.Metadata = "sha256=" + hex.EncodeToString(sum[:])
		}
		page.Files = append(page.Files, jf)
	}
	if len(page.Files) == 0 {
		http.NotFound(w, r)
		return
	}
	b, err := json.Marshal(page)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/vnd.pypi.simple.v1+json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(b)
}

func writePage(w http.ResponseWriter, page []byte) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	// Tests add files while pip runs: never let a page be cached.
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(page)
}

func (s *Server) serveFile(w http.ResponseWriter, r *http.Request, name string) {
	if name == "" || strings.ContainsAny(name, "/\\") || name == "." || name == ".." {
		http.NotFound(w, r)
		return
	}
	if dist, ok := strings.CutSuffix(name, metadataSuffix); ok {
		files, err := s.scan()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		for _, f := range files {
			if f.name == dist && f.metadata != nil && s.coreMetadata {
				w.Header().Set("Content-Type", "text/plain; charset=utf-8")
				_, _ = w.Write(f.metadata)
				return
			}
		}
		http.NotFound(w, r)
		return
	}
	if !isDist(name) {
		http.NotFound(w, r)
		return
	}
	f, err := os.Open(filepath.Join(s.dir, name))
	if err != nil {
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		http.NotFound(w, r)
		return
	}
	if r.Method == http.MethodGet {
		s.mu.Lock()
		s.downloads = append(s.downloads, name)
		s.mu.Unlock()
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	http.ServeContent(w, r, name, st.ModTime(), f)
}

func isDist(name string) bool {
	return !strings.HasPrefix(name, ".") && (strings.HasSuffix(name, ".whl") || strings.HasSuffix(name, ".tar.gz"))
}

// scan lists the distributions in dir, sorted by file name, reusing cached
// hashes and metadata of files whose size and modification time are
// unchanged. Files whose name or contents cannot be parsed are left out.
func (s *Server) scan() ([]*distFile, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("scan %s: %w", s.dir, err)
	}
	var out []*distFile
	for _, e := range entries {
		name := e.Name()
		if !isDist(name) || !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		s.mu.Lock()
		f := s.cache[name]
		s.mu.Unlock()
		if f == nil || f.size != info.Size() || !f.modTime.Equal(info.ModTime()) {
			f, err = readDist(filepath.Join(s.dir, name), info)
			if err != nil {
				continue
			}
			s.mu.Lock()
			s.cache[name] = f
			s.mu.Unlock()
		}
		out = append(out, f)
	}
	return out, nil
}

// projectOf returns the normalized project name in a distribution file name.
func projectOf(name string) (string, error) {
	var proj string
	switch {
	case strings.HasSuffix(name, ".whl"):
		parts := strings.Split(strings.TrimSuffix(name, ".whl"), "-")
		if len(parts) != 5 && len(parts) != 6 {
			return "", fmt.Errorf("wheel file name %q is not name-version[-build]-python-abi-platform.whl", name)
		}
		proj = parts[0]
	case strings.HasSuffix(name, ".tar.gz"):
		stem := strings.TrimSuffix(name, ".tar.gz")
		i := strings.LastIndexByte(stem, '-')
		if i <= 0 {
			return "", fmt.Errorf("sdist file name %q is not name-version.tar.gz", name)
		}
		proj = stem[:i]
	}
	if !nameRE.MatchString(proj) {
		return "", fmt.Errorf("file name %q has no valid project name", name)
	}
	return Normalize(proj), nil
}

func readDist(path string, info os.FileInfo) (*distFile, error) {
	name := filepath.Base(path)
	proj, err := projectOf(name)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(data)
	f := &distFile{
		name:    name,
		project: proj,
		size:    info.Size(),
		modTime: info.ModTime(),
		sha256:  hex.EncodeToString(sum[:]),
	}
	var meta []byte
	if strings.HasSuffix(name, ".whl") {
		meta, err = wheelMetadata(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		f.metadata = meta
	} else {
		meta, err = sdistPkgInfo(data)
		if err != nil {
			// An sdist without readable PKG-INFO is still installable.
			meta = nil
		}
	}
	if meta != nil {
		f.requiresPython = metadataField(meta, "Requires-Python")
	}
	return f, nil
}

// wheelMetadata returns <name>-<version>.dist-info/METADATA from a wheel.
func wheelMetadata(data []byte) ([]byte, error) {
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return nil, err
	}
	for _, zf := range zr.File {
		dir, file, ok := strings.Cut(zf.Name, "/")
		if ok && file == "METADATA" && strings.HasSuffix(dir, ".dist-info") {
			rc, err := zf.Open()
			if err != nil {
				return nil, err
			}
			defer rc.Close()
			return io.ReadAll(io.LimitReader(rc, 16<<20))
		}
	}
	return nil, errors.New("no .dist-info/METADATA")
}

// sdistPkgInfo returns <top>/PKG-INFO from a .tar.gz sdist.
func sdistPkgInfo(data []byte) ([]byte, error) {
	gz, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err != nil {
			return nil, err
		}
		_, file, ok := strings.Cut(strings.TrimPrefix(h.Name, "./"), "/")
		if ok && file == "PKG-INFO" && h.Typeflag == tar.TypeReg {
			return io.ReadAll(io.LimitReader(tr, 16<<20))
		}
	}
}

// metadataField returns the first value of a core-metadata header field.
func metadataField(meta []byte, key string) string {
	tp := textproto.NewReader(bufio.NewReader(bytes.NewReader(append(bytes.TrimRight(meta, "\n"), "\n\n"...))))
	h, _ := tp.ReadMIMEHeader() // the body after the blank line is ignored
	return strings.TrimSpace(h.Get(key))
}
