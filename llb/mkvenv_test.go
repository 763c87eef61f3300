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

// TestMkvenvIsVenvWithFixedTimes: mkvenv.py makes what `python3 -m venv
// --without-pip` makes, and everything it made (the venv, the parents it
// created, the existing parent it added to) has SOURCE_DATE_EPOCH as its
// time.
func TestMkvenvIsVenvWithFixedTimes(t *testing.T) {
	t.Parallel()
	py, err := exec.LookPath("python3")
	require.NoError(t, err, "the host python3 runs the script in this test")
	script := filepath.Join(t.TempDir(), "mkvenv.py")
	require.NoError(t, os.WriteFile(script, mkvenvScript, 0o644))
	env := []string{"PATH=/usr/bin:/bin", "SOURCE_DATE_EPOCH=7", "LANG=C.UTF-8"}

	top := t.TempDir()
	venv := filepath.Join(top, "opt", "skill", "venv")
	want := filepath.Join(t.TempDir(), "want")
	cmd := exec.Command(py, "-m", "venv", "--without-pip", venv)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.NoError(t, os.Rename(filepath.Join(top, "opt"), want))

	cmd = exec.Command(py, "-I", script, venv)
	cmd.Env = env
	out, err = cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)

	wantTree := map[string]string{}
	for p, v := range treeSnapshot(t, want) {
		wantTree[strings.TrimPrefix(p, want)] = v
	}
	gotTree := map[string]string{}
	for p, v := range treeSnapshot(t, filepath.Join(top, "opt")) {
		gotTree[strings.TrimPrefix(p, filepath.Join(top, "opt"))] = v
	}
	assert.Equal(t, wantTree, gotTree, "the same venv as python3 -m venv --without-pip")

	for p, m := range mtimes(t, filepath.Join(top, "opt")) {
		assert.EqualValues(t, 7, m, "%s", p)
	}
	fi, err := os.Stat(top)
	require.NoError(t, err)
	assert.EqualValues(t, 7, fi.ModTime().Unix(), "the existing parent it added to")
	fi, err = os.Stat(filepath.Dir(top))
	require.NoError(t, err)
	assert.NotEqualValues(t, 7, fi.ModTime().Unix(), "nothing above that")
}
