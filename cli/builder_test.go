package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"github.com/skillbuild/skillbuild/skill/api"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestBuilderFlagsBadInput: a wrong builder, TLS or output is bad input
// (exit 2) with a message naming it, before any daemon is contacted.
func TestBuilderFlagsBadInput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown builder", []string{"--builder", "docker-container://x"}, `builder "docker-container://x"`},
		{"tcp without port", []string{"--builder", "tcp://10.0.0.1"}, "tcp://HOST:PORT"},
		{"client cert without key", []string{"--builder", "tcp://10.0.0.1:1234", "--builder-ca", "ca.pem", "--builder-cert", "c.pem"}, "both a client certificate and its key"},
		{"two bases", []string{"--builder", "embedded-oci", "--base-archive", "a.tar", "--base-layout", "d"}, "give one"},
		{"unknown output", []string{"install", "--output", "docker=x"}, `unknown destination "docker"`},
		{"output without kind", []string{"install", "--output", "x.tar"}, "oci-archive=FILE"},
		{"archive in a missing directory", []string{"install", "--output", "oci-archive=" + filepath.Join(dir, "no", "x.tar")}, "does not exist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			args := []string{"skillbuild", "--root", t.TempDir(), "--address", filepath.Join(dir, "none.sock")}
			global, cmd := tc.args, []string{"install"}
			if tc.args[0] == "install" {
				global, cmd = nil, tc.args
			}
			args = append(append(append(args, global...), cmd...), "--json", "--no-scan", "s", "pkg")
			var stdout, stderr bytes.Buffer
			code := Main(context.Background(), args, strings.NewReader(""), &stdout, &stderr)
			assert.Equal(t, api.ExitBadInput, code, "stdout: %s\nstderr: %s", stdout.String(), stderr.String())
			var doc api.InstallResult
			require.NoError(t, json.Unmarshal(stdout.Bytes(), &doc), stdout.String())
			assert.Contains(t, doc.Error, tc.want)
		})
	}
}
