package integration

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/platforms"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/skillbuild/skillbuild/internal/pyindex"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// securedIndex puts an index in front of srv that answers only requests
// carrying the basic credentials user:password and the query parameter
// token=tok, as a private index does; it counts what it let through.
func securedIndex(t *testing.T, srv *pyindex.Server, user, password, tok string) (host string, served *atomic.Int32) {
	t.Helper()
	target, err := url.Parse("http://" + srv.Addr())
	require.NoError(t, err)
	rp := httputil.NewSingleHostReverseProxy(target)
	served = &atomic.Int32{}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || u != user || p != password || r.URL.Query().Get("token") != tok {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		served.Add(1)
		q := r.URL.Query()
		q.Del("token")
		r.URL.RawQuery = q.Encode()
		rp.ServeHTTP(w, r)
	})
	l, err := newLocalListener()
	require.NoError(t, err)
	s := &http.Server{Handler: h}
	go s.Serve(l) //nolint:errcheck
	t.Cleanup(func() { s.Close() })
	return l.Addr().String(), served
}

// leaks names where in b one of secrets appears (b gunzipped first when
// it is gzip, as layers are).
func leaks(what string, b []byte, secrets []string) []string {
	if len(b) > 2 && b[0] == 0x1f && b[1] == 0x8b {
		if zr, err := gzip.NewReader(bytes.NewReader(b)); err == nil {
			if plain, err := io.ReadAll(zr); err == nil {
				b = plain
			}
		}
	}
	var out []string
	for _, s := range secrets {
		if bytes.Contains(b, []byte(s)) {
			out = append(out, fmt.Sprintf("%s holds %q", what, s))
		}
	}
	return out
}

// TestRegistrySecretsStayOut builds a skill from an index that needs a
// password and a token in the query, with the registry build cache and a
// push, and looks for the password and the token everywhere the build
// leaves something: its output, every blob the registry stored (the
// build cache, the image, its attestations), the image's config, history
// and labels in containerd, and `inspect`. A failing build's output is
// searched too. The index really was reached with both.
func TestRegistrySecretsStayOut(t *testing.T) {
	registries(t)
	const user, password, tok = "index-user", "pw-b6f1c2e9-secret", "tok-9d3a77e0-secret"
	secrets := []string{password, tok}
	srv, _ := index(t, payloadWheels("secretive", 2, 4<<10)...)
	host, served := securedIndex(t, srv, user, password, tok)
	indexURL := fmt.Sprintf("http://%s:%s@%s/simple?token=%s", user, password, host, tok)

	before, err := regs.tls.Blobs()
	require.NoError(t, err)
	ref := regs.tls.Host + "/skills/secretive:v1"
	args := append([]string{"install", "--json", "--progress", "plain", "--base", env.base, "--index-url", indexURL,
		"--cache-to", regs.tls.Host + "/cache/secretive:buildcache", "--push", ref}, tlsFlags()...)
	r := sb(t, append(args, "reg-secretive", "secretive-0", "secretive-1")...)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Positive(t, served.Load(), "the index was reached with the password and the token")
	var found []string
	found = append(found, leaks("install's stdout", []byte(r.stdout), secrets)...)
	found = append(found, leaks("install's stderr", []byte(r.stderr), secrets)...)

	after, err := regs.tls.Blobs()
	require.NoError(t, err)
	added := newBlobs(before, after)
	require.NotEmpty(t, added, "the cache and the image were pushed")
	for d := range added {
		b, err := regs.tls.BlobData(d)
		require.NoError(t, err)
		found = append(found, leaks("registry blob "+d, b, secrets)...)
	}

	// The image in containerd: index, manifests, config (labels, history).
	ctx := context.Background()
	c := suiteClient(t)
	img, err := c.ImageService().Get(ctx, fullName(t, "atom-skill:reg-secretive-v1"))
	require.NoError(t, err)
	cs := c.ContentStore()
	err = images.Walk(ctx, images.HandlerFunc(func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		if images.IsLayerType(desc.MediaType) {
			return nil, nil
		}
		b, err := content.ReadBlob(ctx, cs, desc)
		if err != nil {
			return nil, err
		}
		found = append(found, leaks(desc.MediaType+" "+desc.Digest.String(), b, secrets)...)
		return images.Children(ctx, cs, desc)
	}), img.Target)
	require.NoError(t, err)
	m, err := images.Manifest(ctx, cs, img.Target, platforms.Default())
	require.NoError(t, err)
	cfg, err := content.ReadBlob(ctx, cs, m.Config)
	require.NoError(t, err)
	assert.Contains(t, string(cfg), `"history"`)

	r = sb(t, append([]string{"inspect", "--json"}, append(tlsFlags(), ref)...)...)
	require.Equal(t, 0, r.code, r.stderr)
	found = append(found, leaks("inspect", []byte(r.stdout+r.stderr), secrets)...)

	// A failing resolution explains itself without them.
	r = sb(t, append(append([]string{"install", "--json", "--progress", "plain", "--base", env.base, "--index-url", indexURL}, tlsFlags()...),
		"reg-secretive-missing", "secretive-missing")...)
	assert.NotEqual(t, 0, r.code)
	found = append(found, leaks("a failed install's output", []byte(r.stdout+r.stderr), secrets)...)

	assert.Empty(t, found, "the index's password and token leaked")
}
