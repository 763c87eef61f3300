package engine

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"sync"

	"github.com/containerd/errdefs"
	httpsource "github.com/moby/buildkit/source/http"
	"github.com/moby/buildkit/worker/base"
	"github.com/skillbuild/skillbuild/internal/indexproxy"
)

// fetchPolicy is the transport of the engine's HTTP source (llb.HTTP, which
// fetches the locked files): a request goes out only through the index
// proxy of a build in progress that permits its host, under that proxy's
// policy (allowed hosts, credentials, virtual hosts). Without one, nothing
// is fetched over the network. BuildKit's own source would dial anything
// from the host's network.
type fetchPolicy struct {
	mu      sync.Mutex
	proxies []*indexproxy.Proxy
	// files are wheels the builtin resolver downloaded for a build in
	// progress (by URL): answered from disk, not fetched again. BuildKit
	// checks them against the lock's sha256 like any download.
	files map[string]string
}

// useFetchPolicy replaces w's HTTP source with one whose every request
// goes through the returned policy.
func useFetchPolicy(w *base.Worker) (*fetchPolicy, error) {
	fp := &fetchPolicy{}
	hs, err := httpsource.NewSource(httpsource.Opt{CacheAccessor: w.CacheMgr, Transport: fp})
	if err != nil {
		return nil, fmt.Errorf("http source: %w", err)
	}
	w.SourceManager.Register(hs)
	w.HTTPSource = hs
	return fp, nil
}

// add lets p's allowed hosts be fetched from until the returned func runs.
func (fp *fetchPolicy) add(p *indexproxy.Proxy) (remove func()) {
	fp.mu.Lock()
	fp.proxies = append(fp.proxies, p)
	fp.mu.Unlock()
	return func() {
		fp.mu.Lock()
		defer fp.mu.Unlock()
		for i, q := range fp.proxies {
			if q == p {
				fp.proxies = append(fp.proxies[:i], fp.proxies[i+1:]...)
				return
			}
		}
	}
}

// serveFiles answers GET requests for the URLs of files (URL to path)
// from those files until the returned func runs.
func (fp *fetchPolicy) serveFiles(files map[string]string) (remove func()) {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	if fp.files == nil {
		fp.files = map[string]string{}
	}
	mine := map[string]string{}
	for u, p := range files {
		k := fileKey(u)
		fp.files[k] = p
		mine[k] = p
	}
	return func() {
		fp.mu.Lock()
		defer fp.mu.Unlock()
		for k, p := range mine {
			if fp.files[k] == p { // not replaced by another build's
				delete(fp.files, k)
			}
		}
	}
}

// fileKey is how serveFiles matches a request's URL to a file's.
func fileKey(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	u.Fragment = ""
	return u.String()
}

// serveFile answers req from a file serveFiles registered, if any.
func (fp *fetchPolicy) serveFile(req *http.Request) (*http.Response, bool) {
	if req.Method != http.MethodGet {
		return nil, false
	}
	fp.mu.Lock()
	p, ok := fp.files[fileKey(req.URL.String())]
	fp.mu.Unlock()
	if !ok {
		return nil, false
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, false
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, false
	}
	return &http.Response{
		Status: "200 OK", StatusCode: http.StatusOK, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": []string{"application/octet-stream"}},
		Body:          f,
		ContentLength: st.Size(),
		Request:       req,
	}, true
}

func (fp *fetchPolicy) RoundTrip(req *http.Request) (*http.Response, error) {
	if resp, ok := fp.serveFile(req); ok {
		return resp, nil
	}
	fp.mu.Lock()
	var via *indexproxy.Proxy
	for _, p := range fp.proxies {
		if p.Permits(req.URL) {
			via = p
			break
		}
	}
	fp.mu.Unlock()
	if via == nil {
		return nil, fmt.Errorf("fetch %s: not on an allowed index host of this build: %w", indexproxy.Redact(req.URL.String()), errdefs.ErrPermissionDenied)
	}
	return via.RoundTrip(req)
}
