package runtime

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCheckFiles(t *testing.T) {
	t.Parallel()
	deep := strings.Repeat("d/", maxNameLevels-1) + "f"
	for name, files := range map[string]map[string][]byte{
		"none":     nil,
		"plain":    {"a.txt": []byte("x")},
		"nested":   {"a/b/c.csv": nil, "a/d": nil},
		"deepest":  {deep: nil},
		"dots in":  {".hidden": nil, "a..b": nil},
		"longest":  {strings.Repeat("n", maxNamePart): nil},
		"max size": {"a": make([]byte, MaxInBytes)},
	} {
		assert.NoError(t, CheckFiles(files), name)
	}
	many := map[string][]byte{}
	for i := range MaxInFiles + 1 {
		many[filepath.Join("f", string(rune('a'+i%26)), strings.Repeat("x", i))] = nil
	}
	for name, c := range map[string]struct {
		files map[string][]byte
		says  string
	}{
		"empty":       {map[string][]byte{"": nil}, `file ""`},
		"dot":         {map[string][]byte{"a/./b": nil}, `"a/./b"`},
		"dotdot":      {map[string][]byte{"../etc/passwd": nil}, `".."`},
		"absolute":    {map[string][]byte{"/etc/passwd": nil}, "absolute"},
		"empty part":  {map[string][]byte{"a//b": nil}, `"a//b"`},
		"trailing":    {map[string][]byte{"a/": nil}, `"a/"`},
		"nul":         {map[string][]byte{"a\x00b": nil}, "NUL"},
		"backslash":   {map[string][]byte{`a\b`: nil}, "backslash"},
		"too long":    {map[string][]byte{strings.Repeat("n", maxNamePart+1): nil}, "longer than 255"},
		"too deep":    {map[string][]byte{deep + "/g": nil}, "more than 8 levels"},
		"too many":    {many, "more than the 64"},
		"file as dir": {map[string][]byte{"a": nil, "a/b/c": nil}, `"a" is a file`},
		"too big":     {map[string][]byte{"a": make([]byte, MaxInBytes/2+1), "b": make([]byte, MaxInBytes/2)}, "more than the"},
	} {
		err := CheckFiles(c.files)
		require.Error(t, err, name)
		assert.ErrorIs(t, err, errdefs.ErrInvalidArgument, name)
		assert.Contains(t, err.Error(), c.says, name)
	}
}

func TestWriteInFilesReadOnlyAndNoFollow(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	require.NoError(t, makeInDir(dir, map[string][]byte{"a": []byte("1"), "d/e/b": []byte("2")}))
	in := filepath.Join(dir, inName)
	for name, want := range map[string]string{"a": "1", "d/e/b": "2"} {
		data, err := os.ReadFile(filepath.Join(in, name))
		require.NoError(t, err)
		assert.Equal(t, want, string(data))
		st, err := os.Stat(filepath.Join(in, name))
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o444), st.Mode().Perm(), name)
	}
	st, err := os.Stat(filepath.Join(in, "d/e"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o755), st.Mode().Perm())
	// A later call replaces a file whole.
	require.NoError(t, writeInFiles(in, map[string][]byte{"a": []byte("new")}))
	data, err := os.ReadFile(filepath.Join(in, "a"))
	require.NoError(t, err)
	assert.Equal(t, "new", string(data))
	// A link planted in the directory is not followed out of it.
	outside := t.TempDir()
	require.NoError(t, os.Symlink(outside, filepath.Join(in, "link")))
	require.Error(t, writeInFiles(in, map[string][]byte{"link/x": []byte("escape")}))
	_, err = os.Stat(filepath.Join(outside, "x"))
	assert.True(t, os.IsNotExist(err), "nothing written through the link")
}

func reported(name string, content []byte) reportFile {
	sum := sha256.Sum256(content)
	return reportFile{Name: name, Size: int64(len(content)), SHA256: hex.EncodeToString(sum[:]), Content: base64.StdEncoding.EncodeToString(content)}
}

func TestCheckOutFiles(t *testing.T) {
	t.Parallel()
	good := reported("b/ok", []byte("fine"))
	lying := reported("size", []byte("abc"))
	lying.Size = 1 << 40
	badSum := reported("sum", []byte("abc"))
	badSum.SHA256 = strings.Repeat("0", 64)
	badB64 := reported("b64", []byte("abc"))
	badB64.Content = "!!!"
	omitted := reported("omitted", nil)
	omitted.Omitted, omitted.Content, omitted.Size = true, "", 99
	files, n := checkOutFiles([]reportFile{good, lying, badSum, badB64, omitted, reported("../escape", []byte("x")), reported("b/ok", []byte("dup"))}, 2)
	assert.Equal(t, 4, n, "the bad name and the duplicate are counted, not listed")
	require.Len(t, files, 5)
	byName := map[string]File{}
	for _, f := range files {
		byName[f.Name] = f
	}
	assert.Equal(t, []byte("fine"), byName["b/ok"].Content)
	assert.False(t, byName["b/ok"].Omitted)
	for _, name := range []string{"size", "sum", "b64", "omitted"} {
		assert.True(t, byName[name].Omitted, name)
		assert.Nil(t, byName[name].Content, name)
	}
	assert.Equal(t, "b/ok", files[0].Name, "name order")

	// The cap holds whatever the report says: past MaxOutBytes, content
	// is dropped.
	big := bytes.Repeat([]byte("x"), MaxOutBytes-1)
	files, _ = checkOutFiles([]reportFile{reported("a", big), reported("b", []byte("yy"))}, 0)
	require.Len(t, files, 2)
	assert.False(t, files[0].Omitted)
	assert.True(t, files[1].Omitted)

	var many []reportFile
	for i := range MaxOutFiles + 3 {
		many = append(many, reported(strings.Repeat("f", i+1), nil))
	}
	files, n = checkOutFiles(many, 0)
	assert.Len(t, files, MaxOutFiles)
	assert.Equal(t, 3, n)
}

func TestMountpointsTar(t *testing.T) {
	t.Parallel()
	tr := tar.NewReader(bytes.NewReader(mountpointsTar))
	modes := map[string]os.FileMode{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		require.Equal(t, byte(tar.TypeDir), h.Typeflag, h.Name)
		modes["/"+strings.TrimSuffix(h.Name, "/")] = h.FileInfo().Mode()
	}
	assert.Equal(t, map[string]os.FileMode{
		"/data": os.ModeDir | 0o755,
		InDir:   os.ModeDir | 0o755,
		OutDir:  os.ModeDir | os.ModeSticky | 0o777, // runc gives OutDir's tmpfs this mode
	}, modes)
}
