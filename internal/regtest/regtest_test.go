package regtest

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRegistryTLSAuth starts a registry with TLS and htpasswd and checks
// that it answers only to its credentials, over its CA's certificate.
func TestRegistryTLSAuth(t *testing.T) {
	dir := t.TempDir()
	ca, err := NewCA(filepath.Join(dir, "ca"))
	require.NoError(t, err)
	r, err := Start(filepath.Join(dir, "reg"), os.Environ(), WithTLS(ca), WithAuth("alice", "s3cret"))
	require.NoError(t, err)
	t.Cleanup(r.Stop)

	get := func(user, pass string) int {
		req, err := http.NewRequest(http.MethodGet, r.URL()+"/v2/", nil)
		require.NoError(t, err)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := r.HTTPClient().Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	assert.Equal(t, http.StatusUnauthorized, get("", ""))
	assert.Equal(t, http.StatusUnauthorized, get("alice", "wrong"))
	assert.Equal(t, http.StatusOK, get("alice", "s3cret"))

	// A client without the CA refuses the certificate.
	_, err = http.Get(r.URL() + "/v2/")
	assert.Error(t, err)

	blobs, err := r.Blobs()
	require.NoError(t, err)
	assert.Empty(t, blobs)
}

// TestRegistryPlainHTTP starts a registry without TLS or auth.
func TestRegistryPlainHTTP(t *testing.T) {
	r, err := Start(t.TempDir(), os.Environ())
	require.NoError(t, err)
	t.Cleanup(r.Stop)
	resp, err := r.HTTPClient().Get(r.URL() + "/v2/")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
}
