package engine

import (
	"fmt"
	"net/http"
	"sync"

	"github.com/containerd/errdefs"
	httpsource "github.com/moby/buildkit/source/http"
	"github.com/moby/buildkit/worker/base"
	"github.com/skillbuild/skillbuild/indexproxy"
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

func (fp *fetchPolicy) RoundTrip(req *http.Request) (*http.Response, error) {
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
