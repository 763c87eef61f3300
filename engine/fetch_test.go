package engine

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/skillbuild/skillbuild/internal/indexproxy"
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

// TestFetchPolicyServesTheResolversWheels: a wheel the builtin resolver
// downloaded is answered from its file while its build runs (no request
// leaves), by URL, and only for GET; after that the policy is back to
// refusing what no proxy permits.
func TestFetchPolicyServesTheResolversWheels(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := filepath.Join(dir, "w")
	require.NoError(t, os.WriteFile(p, []byte("downloaded wheel"), 0o644))
	fp := &fetchPolicy{}
	c := &http.Client{Transport: fp}
	const u = "http://127.0.0.1:9/files/a%2Bb-1.0-py3-none-any.whl"
	remove := fp.serveFiles(map[string]string{u: p})

	resp, err := c.Get(u)
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, "downloaded wheel", string(b))
	assert.EqualValues(t, len("downloaded wheel"), resp.ContentLength)

	_, err = c.Head(u)
	assert.True(t, errdefs.IsPermissionDenied(err), "only GET is answered from the file: %v", err)
	_, err = c.Get("http://127.0.0.1:9/files/other.whl")
	assert.True(t, errdefs.IsPermissionDenied(err), "%v", err)

	other := fp.serveFiles(map[string]string{u: p + "-other"})
	remove()
	fp.mu.Lock()
	assert.Equal(t, p+"-other", fp.files[fileKey(u)], "a build's removal leaves another build's file")
	fp.mu.Unlock()
	other()
	_, err = c.Get(u)
	assert.True(t, errdefs.IsPermissionDenied(err), "%v", err)
}
