package engine

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/skillbuild/skillbuild/indexproxy"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFetchPolicyGoesThroughTheIndexProxy(t *testing.T) {
	t.Parallel()
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "from another host")
	}))
	defer other.Close()
	var auth string
	index := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth = r.Header.Get("Authorization")
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, other.URL+"/file.whl", http.StatusFound)
			return
		}
		io.WriteString(w, "wheel bytes")
	}))
	defer index.Close()

	withCreds := strings.Replace(index.URL, "http://", "http://user:secret@", 1) + "/simple"
	p, err := indexproxy.New([]string{withCreds})
	require.NoError(t, err)
	defer p.Close()
	fp := &fetchPolicy{}
	c := &http.Client{Transport: fp}

	_, err = c.Get(index.URL + "/file.whl")
	require.Error(t, err, "no build in progress: nothing is fetched")
	assert.True(t, errdefs.IsPermissionDenied(err), "%v", err)

	remove := fp.add(p)
	resp, err := c.Get(index.URL + "/file.whl")
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, "wheel bytes", string(b))
	assert.True(t, strings.HasPrefix(auth, "Basic "), "the proxy adds the index credentials")

	_, err = c.Get(other.URL + "/file.whl")
	require.Error(t, err, "a host the proxy does not allow")
	assert.True(t, errdefs.IsPermissionDenied(err), "%v", err)

	_, err = c.Get(index.URL + "/redirect")
	require.Error(t, err, "a redirect to another host is checked like any request")
	assert.True(t, errdefs.IsPermissionDenied(err), "%v", err)

	remove()
	_, err = c.Get(index.URL + "/file.whl")
	require.Error(t, err, "the build's proxy is gone")
}
