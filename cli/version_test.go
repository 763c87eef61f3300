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

func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := Main(context.Background(), append([]string{"skillbuild"}, args...), strings.NewReader(""), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestVersionReportsLibrariesAndAnUnreachableDaemon(t *testing.T) {
	t.Parallel()
	code, out, stderr := run(t, "version", "--json", "--address", filepath.Join(t.TempDir(), "none.sock"))
	require.Equal(t, api.ExitOK, code, stderr)
	var v versionInfo
	require.NoError(t, json.Unmarshal([]byte(out), &v), out)
	// Module versions are in a real binary's build info only; the
	// integration suite checks them.
	assert.NotEmpty(t, v.BuildKit)
	assert.Nil(t, v.Daemon)
	assert.Contains(t, v.DaemonErr, "none.sock")

	code, out, _ = run(t, "--address", filepath.Join(t.TempDir(), "none.sock"), "--version")
	assert.Equal(t, api.ExitOK, code)
	assert.Contains(t, out, "BuildKit:")
	assert.Contains(t, out, "not reachable")
}

func TestCompletion(t *testing.T) {
	t.Parallel()
	for _, sh := range []string{"bash", "zsh", "fish"} {
		code, out, stderr := run(t, "completion", sh)
		require.Equal(t, api.ExitOK, code, stderr)
		assert.Contains(t, out, "skillbuild", sh)
	}
	code, _, stderr := run(t, "completion", "tcsh")
	assert.Equal(t, api.ExitBadInput, code)
	assert.Contains(t, stderr, "bash, zsh or fish")

	// Whether the scripts complete is tested against the real binary in
	// the integration suite: urfave/cli reads os.Args while completing.
}
