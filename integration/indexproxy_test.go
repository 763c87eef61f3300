package integration

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	bkclient "github.com/moby/buildkit/client"
	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/session"
	"github.com/skillbuild/skillbuild/engine"
	"github.com/skillbuild/skillbuild/internal/indexproxy"
	sbllb "github.com/skillbuild/skillbuild/llb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestIndexProxyInSolve runs the index bridge in a real step of the
// embedded BuildKit engine: inside a network-none step the index answers
// through skillbuild's proxy, another host gets 403, and the host's
// loopback cannot be reached around the proxy. Not parallel: the engine
// points TMPDIR at its state root while it runs.
func TestIndexProxyInSolve(t *testing.T) {
	index := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "index ok\n")
	}))
	defer index.Close()
	var hits atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer other.Close()
	u, err := url.Parse(index.URL)
	require.NoError(t, err)
	_, indexPort, err := net.SplitHostPort(u.Host)
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	e, err := engine.New(ctx, engine.WithAddress(env.socket), engine.WithNamespace(namespace), engine.WithRoot(t.TempDir()))
	require.NoError(t, err, "the engine was asked for and must start")
	defer e.Close()

	script := fmt.Sprintf(`
import os, socket, sys, urllib.request, urllib.error
proxy = os.environ["http_proxy"]
op = urllib.request.build_opener(urllib.request.ProxyHandler({"http": proxy, "https": proxy}))
body = op.open(%[1]q + "/simple/").read()
assert body == b"index ok\n", body
try:
    op.open(%[2]q + "/x")
    sys.exit("another host was reached")
except urllib.error.HTTPError as e:
    assert e.code == 403, e.code
s = socket.socket()
s.settimeout(5)
try:
    s.connect(("127.0.0.1", %[3]s))
    sys.exit("the host's index port was reached directly")
except OSError as e:
    sys.stderr.write("direct connect refused: %%s\n" %% e)
`, index.URL, other.URL, indexPort)
	argv, opts := sbllb.WithIndexAccess("index", []string{"python3", "-c", script})
	st := llb.Image(env.base, llb.ResolveModePreferLocal).Run(append(opts, llb.Args(argv), llb.IgnoreCache)...).Root()
	def, err := st.Marshal(ctx)
	require.NoError(t, err)

	t.Run("with the proxy attached", func(t *testing.T) {
		p, err := indexproxy.New([]string{index.URL + "/simple"})
		require.NoError(t, err)
		defer p.Close()
		_, err = e.Client().Solve(ctx, def, bkclient.SolveOpt{Session: []session.Attachable{p.Attachable("index")}}, nil)
		require.NoError(t, err)
		assert.Contains(t, p.Allowed(), "GET "+index.URL+"/simple/")
		assert.Contains(t, p.Denied(), "GET "+other.URL+"/x: host not allowed")
		assert.Zero(t, hits.Load())
	})
	t.Run("without it", func(t *testing.T) {
		_, err := e.Client().Solve(ctx, def, bkclient.SolveOpt{}, nil)
		require.Error(t, err)
		assert.Contains(t, err.Error(), `no SSH key "index" forwarded from the client`)
	})
}
