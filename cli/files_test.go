package cli

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/skillbuild/skillbuild/skill/api"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func runFile(name, content string) api.RunFile {
	sum := sha256.Sum256([]byte(content))
	return api.RunFile{Name: name, Size: int64(len(content)), SHA256: hex.EncodeToString(sum[:]), Content: base64.StdEncoding.EncodeToString([]byte(content))}
}

func TestInFilesFlags(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a := filepath.Join(dir, "a,b.csv") // a comma stays in the path
	require.NoError(t, os.WriteFile(a, []byte("x,y\n"), 0o644))
	got, err := inFiles([]string{a, "data/in.txt=" + a})
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"a,b.csv": "eCx5Cg==", "data/in.txt": "eCx5Cg=="}, got)

	for spec, want := range map[string]string{
		"=" + a:                           "expected NAME=PATH or PATH",
		"x=":                              "expected NAME=PATH or PATH",
		"x=" + filepath.Join(dir, "none"): "--in x=",
	} {
		_, err := inFiles([]string{spec})
		require.Error(t, err, spec)
		assert.Contains(t, err.Error(), want)
	}
	_, err = inFiles([]string{"x=" + a, "x=" + a})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `a file named "x" is given twice`)
	assert.True(t, errdefs.IsInvalidArgument(err))
}

func TestSaveFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var stderr bytes.Buffer
	out := &api.RunResult{Files: []api.RunFile{runFile("a.txt", "A"), runFile("d/e/f.txt", "F"),
		{Name: "big.bin", Size: 20 << 20, SHA256: "00", Omitted: true}}, FilesOmitted: 3}
	require.NoError(t, saveFiles(&stderr, dir, out))
	b, err := os.ReadFile(filepath.Join(dir, "a.txt"))
	require.NoError(t, err)
	assert.Equal(t, "A", string(b))
	b, err = os.ReadFile(filepath.Join(dir, "d/e/f.txt"))
	require.NoError(t, err)
	assert.Equal(t, "F", string(b))
	assert.NoFileExists(t, filepath.Join(dir, "big.bin"))
	assert.Contains(t, stderr.String(), "big.bin (20971520 bytes) not saved")
	assert.Contains(t, stderr.String(), "3 more files not returned")

	stderr.Reset()
	require.NoError(t, saveFiles(&stderr, "", out))
	assert.Contains(t, stderr.String(), "the code left 6 files in /data/out; --out-dir DIR saves them")
}

// TestSaveFileRefuses: a name that would leave the directory, a symbolic
// link anywhere below it, or content that is not what the document says
// is refused, and nothing is written outside.
func TestSaveFileRefuses(t *testing.T) {
	t.Parallel()
	outside := t.TempDir()
	dir := t.TempDir()
	require.NoError(t, os.Symlink(outside, filepath.Join(dir, "link")))
	require.NoError(t, os.Symlink(filepath.Join(outside, "target"), filepath.Join(dir, "file")))
	for name, f := range map[string]api.RunFile{
		"parent":        runFile("../x", "X"),
		"absolute":      runFile("/x", "X"),
		"dot-dot below": runFile("a/../../x", "X"),
		"unclean":       runFile("a//x", "X"),
		"empty":         runFile("", "X"),
		"backslash":     runFile(`a\x`, "X"),
		"dir link":      runFile("link/x", "X"),
		"file link":     runFile("file", "X"),
		"bad sha256":    {Name: "x", Size: 1, SHA256: "00", Content: "WA=="},
	} {
		err := saveFile(dir, f)
		assert.Error(t, err, name)
	}
	entries, err := os.ReadDir(outside)
	require.NoError(t, err)
	assert.Empty(t, entries, "nothing written through a link")
	assert.NoFileExists(t, filepath.Join(dir, "x"))
}
