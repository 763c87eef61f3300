package integration

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestVersion: the binary reports its embedded BuildKit and containerd
// client (from its build info) and the daemon it talks to.
func TestVersion(t *testing.T) {
	t.Parallel()
	r := sb(t, "version", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	var v struct {
		BuildKit   string `json:"buildkit"`
		Containerd string `json:"containerd_client"`
		Daemon     *struct {
			Version string `json:"version"`
		} `json:"containerd_daemon"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &v), r.stdout)
	assert.True(t, strings.HasPrefix(v.BuildKit, "v0."), "BuildKit module version, got %q", v.BuildKit)
	assert.True(t, strings.HasPrefix(v.Containerd, "v2."), "containerd client version, got %q", v.Containerd)
	require.NotNil(t, v.Daemon, "the suite's containerd answers")
	ctr, err := exec.Command("ctr", "--address", env.socket, "version").Output()
	require.NoError(t, err)
	assert.Contains(t, string(ctr), v.Daemon.Version, "the daemon's own version")

	r = sb(t, "--version")
	assert.Equal(t, 0, r.code)
	assert.Contains(t, r.stdout, v.Daemon.Version)
}

// TestShellCompletion sources the bash script and completes as bash would.
func TestShellCompletion(t *testing.T) {
	t.Parallel()
	script := `source <("$BIN" completion bash)
COMP_WORDS=("$BIN" insta); COMP_CWORD=1; _skillbuild_complete; echo "${COMPREPLY[@]}"
COMP_WORDS=("$BIN" install --jso); COMP_CWORD=2; _skillbuild_complete; echo "${COMPREPLY[@]}"`
	cmd := exec.Command("bash", "-c", script)
	cmd.Env = append(cleanEnv(), "BIN="+env.bin)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	require.Len(t, lines, 2, "%s", out)
	assert.Equal(t, "install", lines[0])
	assert.Equal(t, "--json", lines[1])
}
