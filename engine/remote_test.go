package engine

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWithBuilder(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in, want string
		bad      bool
	}{
		{in: "", want: BuilderEmbedded},
		{in: "embedded", want: BuilderEmbedded},
		{in: "embedded-oci", want: BuilderEmbeddedOCI},
		{in: "unix:///run/buildkit/buildkitd.sock", want: "unix:///run/buildkit/buildkitd.sock"},
		{in: "tcp://10.0.0.5:1234", want: "tcp://10.0.0.5:1234"},
		{in: "tcp://builder.internal:1234", want: "tcp://builder.internal:1234"},
		{in: "unix://relative.sock", bad: true},
		{in: "tcp://10.0.0.5", bad: true},
		{in: "tcp://:1234", bad: true},
		{in: "docker-container://buildkit", bad: true},
		{in: "oci", bad: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			o := defaultOptions()
			err := WithBuilder(tc.in)(&o)
			if tc.bad {
				assert.True(t, errdefs.IsInvalidArgument(err), "%v", err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, o.builder)
			assert.Equal(t, tc.want != BuilderEmbedded && tc.want != BuilderEmbeddedOCI, remoteBuilder(o.builder))
		})
	}
}

func TestWithBuilderTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	f := filepath.Join(dir, "x.pem")
	require.NoError(t, os.WriteFile(f, []byte("x"), 0o600))
	for name, tc := range map[string]struct {
		ca, cert, key string
		ok            bool
	}{
		"none":              {ok: true},
		"server only":       {ca: f, ok: true},
		"mutual":            {ca: f, cert: f, key: f, ok: true},
		"cert without key":  {ca: f, cert: f},
		"key without cert":  {ca: f, key: f},
		"client without CA": {cert: f, key: f},
		"missing file":      {ca: filepath.Join(dir, "nope.pem")},
	} {
		o := defaultOptions()
		err := WithBuilderTLS(tc.ca, tc.cert, tc.key)(&o)
		if tc.ok {
			assert.NoError(t, err, name)
		} else {
			assert.True(t, errdefs.IsInvalidArgument(err), "%s: %v", name, err)
		}
	}
}

func TestRemoteBuilderUnreachableIsUnavailable(t *testing.T) {
	t.Parallel()
	addr := "unix://" + filepath.Join(t.TempDir(), "none.sock")
	_, err := New(context.Background(), WithBuilder(addr), WithRoot(t.TempDir()))
	require.Error(t, err)
	assert.True(t, errdefs.IsUnavailable(err), "%v", err)
	assert.Contains(t, err.Error(), addr)
}

func TestTLSFilesAreForTCPBuilders(t *testing.T) {
	t.Parallel()
	f := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(f, []byte("x"), 0o600))
	_, err := New(context.Background(), WithBuilder("unix:///x.sock"), WithBuilderTLS(f, "", ""), WithRoot(t.TempDir()))
	assert.True(t, errdefs.IsInvalidArgument(err), "%v", err)
}
