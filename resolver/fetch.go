package resolver

import (
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"mime"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/skillbuild/skillbuild/pydist"
)

// acceptHeader is what pip 23.0 asks an index for.
const acceptHeader = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"

// MaxWheel bounds one downloaded wheel.
const MaxWheel = 4 << 30

// fetcher does the resolver's I/O: index pages, metadata files and
// wheels over HTTP (through the caller's transport), find-links files
// from the host directories.
//
// Every answer is kept, by URL, and a request in flight is shared: the
// resolver's prefetching goroutines and its resolution ask for the same
// pages and files, and each is fetched once.
type fetcher struct {
	client   *http.Client
	wheelDir string
	// localFiles maps the file:// URL of every find-links file (as the
	// step sees it) to the host file.
	localFiles map[string]string
	requests   atomic.Int64

	mu      sync.Mutex
	pages   map[string]*flight[[]pydist.Link]
	files   map[string]*flight[[]byte]
	wheels  map[string]*flight[*wheelFile] // by URL without fragment
	limiter chan struct{}                  // bounds the requests in flight
}

// flight is one fetch: done is closed when v and err are set.
type flight[T any] struct {
	done chan struct{}
	v    T
	err  error
}

// once runs fetch for key once, sharing its result with every caller; a
// fetch cut by its context is forgotten (a later caller fetches again).
func once[T any](f *fetcher, m map[string]*flight[T], key string, fetch func() (T, error)) (T, error) {
	f.mu.Lock()
	fl, ok := m[key]
	if !ok {
		fl = &flight[T]{done: make(chan struct{})}
		m[key] = fl
	}
	f.mu.Unlock()
	if ok {
		<-fl.done
		return fl.v, fl.err
	}
	f.limiter <- struct{}{}
	fl.v, fl.err = fetch()
	<-f.limiter
	if fl.err != nil && (errors.Is(fl.err, context.Canceled) || errors.Is(fl.err, context.DeadlineExceeded)) {
		f.mu.Lock()
		delete(m, key)
		f.mu.Unlock()
	}
	close(fl.done)
	return fl.v, fl.err
}

// maxInFlight bounds the requests the resolver makes at once.
const maxInFlight = 8

func newFetcher(client *http.Client, wheelDir string) *fetcher {
	return &fetcher{client: client, wheelDir: wheelDir, pages: map[string]*flight[[]pydist.Link]{},
		files: map[string]*flight[[]byte]{}, wheels: map[string]*flight[*wheelFile]{}, limiter: make(chan struct{}, maxInFlight)}
}

// wheelFile is a wheel the resolver has read: where it is kept, its
// size and its digests.
type wheelFile struct {
	path   string
	size   int64
	sums   map[string]string // algorithm -> hex digest
	remote bool              // downloaded (not a find-links file)
}

func newHash(name string) (hash.Hash, bool) {
	switch name {
	case "md5":
		return md5.New(), true
	case "sha1":
		return sha1.New(), true
	case "sha224":
		return sha256.New224(), true
	case "sha256":
		return sha256.New(), true
	case "sha384":
		return sha512.New384(), true
	case "sha512":
		return sha512.New(), true
	}
	return nil, false
}

// page fetches a project page and reads its links. A 404 is a project the
// index does not have (no links, as pip treats it); every other failure
// is an ErrUnsupported (pip would skip that index with a warning, a
// reading this resolver leaves to pip).
func (f *fetcher) page(ctx context.Context, url string) ([]pydist.Link, error) {
	return once(f, f.pages, url, func() ([]pydist.Link, error) { return f.fetchPage(ctx, url) })
}

func (f *fetcher) fetchPage(ctx context.Context, url string) ([]pydist.Link, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("index page %s: %v: %w", url, err, ErrUnsupported)
	}
	req.Header.Set("Accept", acceptHeader)
	req.Header.Set("Cache-Control", "max-age=0")
	f.requests.Add(1)
	resp, err := f.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("index page %s: %v: %w", redact(url), err, ErrUnsupported)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil, nil
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, fmt.Errorf("index page %s: HTTP %d: %w", redact(url), resp.StatusCode, ErrUnsupported)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, pydist.MaxPage+1))
	if err != nil {
		return nil, fmt.Errorf("index page %s: %v: %w", redact(url), err, ErrUnsupported)
	}
	final := resp.Request.URL.String()
	mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil {
		return nil, fmt.Errorf("index page %s: content type %q: %w", redact(url), resp.Header.Get("Content-Type"), ErrUnsupported)
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "utf8") {
		return nil, fmt.Errorf("index page %s is in %s: %w", redact(url), cs, ErrUnsupported)
	}
	switch strings.ToLower(mt) {
	case "application/vnd.pypi.simple.v1+json":
		return pydist.ParseJSON(body, final)
	case "text/html", "application/vnd.pypi.simple.v1+html":
		return pydist.ParseHTML(body, final)
	}
	return nil, fmt.Errorf("index page %s has content type %s: %w", redact(url), mt, ErrUnsupported)
}

// get fetches a small file (PEP 658 metadata): its content, at most max
// bytes; anything but 200 is an ErrUnsupported (pip fails on it).
func (f *fetcher) get(ctx context.Context, url string, max int64) ([]byte, error) {
	return once(f, f.files, url, func() ([]byte, error) { return f.fetchFile(ctx, url, max) })
}

func (f *fetcher) fetchFile(ctx context.Context, url string, max int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %v: %w", url, err, ErrUnsupported)
	}
	f.requests.Add(1)
	resp, err := f.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%s: %v: %w", redact(url), err, ErrUnsupported)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: HTTP %d: %w", redact(url), resp.StatusCode, ErrUnsupported)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil || int64(len(b)) > max {
		return nil, fmt.Errorf("%s: unreadable or larger than %d bytes: %w", redact(url), max, ErrUnsupported)
	}
	return b, nil
}

// wheel reads the file of link (downloaded into the wheel directory, or
// a find-links file), computing its sha256 and the digest of the link's
// own hash, once per URL.
func (f *fetcher) wheel(ctx context.Context, link pydist.Link) (*wheelFile, error) {
	key := link.WithoutFragment()
	return once(f, f.wheels, key, func() (*wheelFile, error) { return f.fetchWheel(ctx, key, link) })
}

func (f *fetcher) fetchWheel(ctx context.Context, key string, link pydist.Link) (*wheelFile, error) {
	algos := []string{"sha256"}
	if h, ok := link.Hash(); ok && h.Name != "sha256" {
		algos = append(algos, h.Name)
	}
	var w *wheelFile
	var err error
	if strings.HasPrefix(key, "file://") {
		w, err = f.localWheel(key, algos)
	} else {
		w, err = f.download(ctx, key, algos)
	}
	return w, err
}

func (f *fetcher) localWheel(url string, algos []string) (*wheelFile, error) {
	p, ok := f.localFiles[url]
	if !ok {
		return nil, fmt.Errorf("%s is not in a find-links directory: %w", url, ErrUnsupported)
	}
	fh, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("find-links file %s: %v: %w", p, err, ErrUnsupported)
	}
	defer fh.Close()
	sums, size, err := digest(fh, algos, MaxWheel)
	if err != nil {
		return nil, fmt.Errorf("find-links file %s: %v: %w", p, err, ErrUnsupported)
	}
	return &wheelFile{path: p, size: size, sums: sums}, nil
}

func (f *fetcher) download(ctx context.Context, url string, algos []string) (*wheelFile, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %v: %w", url, err, ErrUnsupported)
	}
	f.requests.Add(1)
	resp, err := f.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("download %s: %v: %w", redact(url), err, ErrUnsupported)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("download %s: HTTP %d: %w", redact(url), resp.StatusCode, ErrUnsupported)
	}
	if f.wheelDir == "" {
		return nil, errors.New("resolver: no directory for downloaded wheels (WithWheelDir)")
	}
	tmp, err := os.CreateTemp(f.wheelDir, "wheel-*")
	if err != nil {
		return nil, fmt.Errorf("keep a downloaded wheel: %w", err)
	}
	sums, size, err := digest(io.TeeReader(resp.Body, tmp), algos, MaxWheel)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp.Name())
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("download %s: %v: %w", redact(url), err, ErrUnsupported)
	}
	return &wheelFile{path: tmp.Name(), size: size, sums: sums, remote: true}, nil
}

// digest reads r to its end (at most max bytes), returning the hex
// digests of algos and the size.
func digest(r io.Reader, algos []string, max int64) (map[string]string, int64, error) {
	hs := map[string]hash.Hash{}
	var ws []io.Writer
	for _, a := range algos {
		h, ok := newHash(a)
		if !ok {
			return nil, 0, fmt.Errorf("hash %s is not supported", a)
		}
		hs[a] = h
		ws = append(ws, h)
	}
	n, err := io.Copy(io.MultiWriter(ws...), io.LimitReader(r, max+1))
	if err != nil {
		return nil, 0, err
	}
	if n > max {
		return nil, 0, fmt.Errorf("larger than %d bytes", max)
	}
	sums := map[string]string{}
	for a, h := range hs {
		sums[a] = hex.EncodeToString(h.Sum(nil))
	}
	return sums, n, nil
}

// redact drops userinfo and query from a URL for errors.
func redact(u string) string {
	if i := strings.IndexAny(u, "?#"); i >= 0 {
		u = u[:i]
	}
	if i := strings.Index(u, "://"); i >= 0 {
		if at := strings.LastIndexByte(u[i+3:], '@'); at >= 0 && !strings.Contains(u[i+3:i+3+at], "/") {
			u = u[:i+3] + u[i+3+at+1:]
		}
	}
	return u
}
