package cli

import (
	"bytes"
	"context"
	"github.com/skillbuild/skillbuild/skill/api"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestServeRefusesBadInput: a server that would listen where it must not,
// or with options it cannot honour, is refused (exit 2) before it touches
// containerd.
func TestServeRefusesBadInput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(token, []byte("0123456789abcdef0123\n"), 0o600))
	short := filepath.Join(dir, "short")
	require.NoError(t, os.WriteFile(short, []byte("abc"), 0o600))
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--listen", "tcp://127.0.0.1:0"}, "without a bearer token"},
		{[]string{"--listen", "tcp://10.1.2.3:80", "--token-file", token}, "loopback"},
		{[]string{"--listen", "tcp://0.0.0.0:0", "--token-file", token}, "loopback"},
		{[]string{"--listen", "unix://relative.sock"}, "absolute path"},
		{[]string{"--listen", "tcp://127.0.0.1:0", "--token-file", short}, "shorter than 16"},
		{[]string{"--token-file", filepath.Join(dir, "none")}, "--token-file"},
		{[]string{"--max-warm", "-1"}, "must not be negative"},
		{[]string{"--idle-timeout", "soon"}, "--idle-timeout"},
		{[]string{"--max-body", "big"}, "--max-body"},
		{[]string{"--max-memory", "lots"}, "--max-memory"},
		{[]string{"--max-timeout", "soon"}, "--max-timeout"},
		{[]string{"--listen", "unix://" + filepath.Join(dir, "a.sock"), "extra"}, "no arguments"},
	} {
		var out, errb bytes.Buffer
		args := append([]string{"skillbuild", "--address", filepath.Join(dir, "no-containerd.sock"), "--root", dir, "serve"}, tc.args...)
		code := Main(context.Background(), args, nil, &out, &errb)
		assert.Equal(t, api.ExitBadInput, code, "%v: %s", tc.args, errb.String())
		assert.Contains(t, errb.String(), tc.msg, "%v", tc.args)
	}
}
