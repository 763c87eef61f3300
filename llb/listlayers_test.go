package llb

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestListLayersScript runs listlayers.py with the host's python3 on two
// crafted layers: every entry is listed with its type and image path, and
// a link is listed as a link, not followed.
func TestListLayersScript(t *testing.T) {
	t.Parallel()
	py, err := exec.LookPath("python3")
	require.NoError(t, err)
	dir := t.TempDir()
	layers, out := filepath.Join(dir, "layers"), filepath.Join(dir, "out")
	outside := filepath.Join(dir, "outside")
	for _, d := range []string{"layers/0/opt/skill/venv/bin", "layers/1/etc", "out", "outside/secret"} {
		require.NoError(t, os.MkdirAll(filepath.Join(dir, d), 0o755))
	}
	require.NoError(t, os.WriteFile(filepath.Join(layers, "0/opt/skill/venv/bin/tool"), []byte("x"), 0o755))
	require.NoError(t, os.Symlink(outside, filepath.Join(layers, "0/opt/skill/venv/bin/link")))
	require.NoError(t, os.WriteFile(filepath.Join(layers, "1/etc/x\nweird"), []byte("x"), 0o644))
	script := filepath.Join(dir, "listlayers.py")
	require.NoError(t, os.WriteFile(script, listLayersScript, 0o644))

	venv := filepath.Join(dir, "venv")
	require.NoError(t, os.MkdirAll(filepath.Join(venv, "bin"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(venv, "pyvenv.cfg"), []byte("x"), 0o644))
	require.NoError(t, os.Symlink("/usr/bin/python3", filepath.Join(venv, "bin", "python")))

	cmd := exec.Command(py, "-I", script, layers, out, "2", venv)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LANG=C.UTF-8"}
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", b)

	l0, err := os.ReadFile(filepath.Join(out, "0.jsonl"))
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{
		`["d", "/opt"]`, `["d", "/opt/skill"]`, `["d", "/opt/skill/venv"]`, `["d", "/opt/skill/venv/bin"]`,
		`["f", "/opt/skill/venv/bin/tool"]`, `["l", "/opt/skill/venv/bin/link"]`,
	}, strings.Split(strings.TrimSpace(string(l0)), "\n"))
	assert.NotContains(t, string(l0), "secret", "a link to a directory is not followed")
	l1, err := os.ReadFile(filepath.Join(out, "1.jsonl"))
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{`["d", "/etc"]`, `["f", "/etc/x\nweird"]`}, strings.Split(strings.TrimSpace(string(l1)), "\n"),
		"a name with a newline stays one line")
	lv, err := os.ReadFile(filepath.Join(out, "venv.jsonl"))
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{
		`["d", "` + venv + `"]`, `["d", "` + venv + `/bin"]`, `["f", "` + venv + `/pyvenv.cfg"]`, `["l", "` + venv + `/bin/python"]`,
	}, strings.Split(strings.TrimSpace(string(lv)), "\n"), "the venv's own files, at their paths in the step's root")
}
