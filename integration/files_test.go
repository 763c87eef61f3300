package integration

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/skillbuild/skillbuild/skill/api"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// cliFilesCode reads its files under /data/in, finds it cannot write there,
// and writes files (one in a subdirectory) under /data/out.
const cliFilesCode = `import os
a = open('/data/in/a.csv').read()
b = open('/data/in/data/b.txt').read()
try:
    open('/data/in/a.csv', 'w')
    ro = False
except OSError:
    ro = True
os.makedirs('/data/out/nested/dir', exist_ok=True)
open('/data/out/copy.csv', 'w').write(a.upper())
open('/data/out/nested/dir/b.txt', 'w').write(b * 2)
print('read', len(a) + len(b))
result = {'read_only': ro, 'in': sorted(os.listdir('/data/in'))}
`

// TestRunFilesLocalAndRemote: `run --in --out-dir` here and through
// --host take the same files, print the same document and save the same
// files; the API returns them too.
func TestRunFilesLocalAndRemote(t *testing.T) {
	s := startServe(t, "--warm-per-skill", "1", "--max-warm", "1")
	host := "unix://" + s.sock
	in := t.TempDir()
	a, b := filepath.Join(in, "a.csv"), filepath.Join(in, "b.txt")
	require.NoError(t, os.WriteFile(a, []byte("x,y\n1,2\n"), 0o644))
	require.NoError(t, os.WriteFile(b, []byte("bee"), 0o644))
	outLocal, outRemote := filepath.Join(t.TempDir(), "out"), filepath.Join(t.TempDir(), "out")

	args := func(out string) []string {
		return []string{"run", "--json", "--image", env.base, "--in", a, "--in", "data/b.txt=" + b, "--out-dir", out, "-c", cliFilesCode, "files"}
	}
	local := sb(t, args(outLocal)...)
	remote := sb(t, append([]string{"--host", host}, args(outRemote)...)...)
	require.Equal(t, 0, local.code, local.stderr)
	require.Equal(t, 0, remote.code, remote.stderr)
	ld, rd := jsonDoc(t, local), jsonDoc(t, remote)
	differ := []string{"duration_ms", "uid", "gid"}
	assert.Equal(t, without(ld, differ...), without(rd, differ...), "run --json document")

	var doc api.RunResult
	require.NoError(t, json.Unmarshal([]byte(local.stdout), &doc))
	require.Nil(t, doc.Error, "%s", doc.Stderr)
	assert.JSONEq(t, `{"read_only": true, "in": ["a.csv", "data"]}`, string(doc.Result))
	want := map[string][]byte{"copy.csv": []byte("X,Y\n1,2\n"), "nested/dir/b.txt": []byte("beebee")}
	require.Len(t, doc.Files, len(want))
	assert.Equal(t, "copy.csv", doc.Files[0].Name, "in name order")
	for _, f := range doc.Files {
		content, err := base64.StdEncoding.DecodeString(f.Content)
		require.NoError(t, err)
		assert.Equal(t, want[f.Name], content, f.Name)
		assert.Equal(t, sha(want[f.Name]), f.SHA256, f.Name)
		assert.Equal(t, int64(len(want[f.Name])), f.Size, f.Name)
		assert.False(t, f.Omitted)
	}
	for _, dir := range []string{outLocal, outRemote} {
		for name, content := range want {
			got, err := os.ReadFile(filepath.Join(dir, name))
			require.NoError(t, err, "%s saved under %s", name, dir)
			assert.Equal(t, content, got)
		}
	}

	// The API: files in base64, the same files back.
	status, code, body := s.call(t, http.MethodPost, "/v1/run", map[string]any{"skill_id": "files", "image": env.base, "code": cliFilesCode,
		"files": map[string]string{"a.csv": base64.StdEncoding.EncodeToString([]byte("x,y\n1,2\n")), "data/b.txt": base64.StdEncoding.EncodeToString([]byte("bee"))}})
	require.Equal(t, 200, status, "exit %s: %s", code, body)
	var apiDoc api.RunResult
	require.NoError(t, json.Unmarshal(body, &apiDoc))
	assert.Equal(t, doc.Files, apiDoc.Files)
	assert.Zero(t, apiDoc.FilesOmitted)

	// More files than are returned: counted, and said on stderr.
	many := "import os\nfor i in range(70):\n    open('/data/out/f%02d' % i, 'w').write(str(i))\n"
	r := sb(t, "run", "--image", env.base, "--out-dir", t.TempDir(), "-c", many, "files")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "6 more files not returned")
}

// TestRunFilesBadInput: a bad name, too many files or bad base64 is bad
// input (exit 2, 400) that names the file, here and through --host, and
// nothing runs.
func TestRunFilesBadInput(t *testing.T) {
	s := startServe(t, "--warm-per-skill", "1", "--max-warm", "1")
	host := "unix://" + s.sock
	f := filepath.Join(t.TempDir(), "f.txt")
	require.NoError(t, os.WriteFile(f, []byte("x"), 0o644))
	tooMany := []string{}
	for i := range 65 {
		tooMany = append(tooMany, "--in", fmt.Sprintf("f%d=%s", i, f))
	}
	for name, tc := range map[string]struct {
		flags []string
		want  string
	}{
		"parent":   {[]string{"--in", "../up.txt=" + f}, "../up.txt"},
		"absolute": {[]string{"--in", "/etc/passwd=" + f}, "/etc/passwd"},
		"too many": {tooMany, "65 files"},
	} {
		t.Run(name, func(t *testing.T) {
			args := append(append([]string{"run", "--json", "--image", env.base}, tc.flags...), "-c", "print('ran')", "files")
			local, remote := both(t, host, args...)
			for who, r := range map[string]result{"here": local, "--host": remote} {
				assert.Equal(t, 2, r.code, "%s: %s", who, r.stderr)
				assert.Contains(t, r.stderr, tc.want, who)
				assert.NotContains(t, r.stdout, `"stdout":"ran`, who)
			}
		})
	}
	for name, tc := range map[string]struct {
		files map[string]string
		want  string
	}{
		"bad base64": {map[string]string{"data.bin": "not base64!"}, `"data.bin": content is not standard base64`},
		"bad name":   {map[string]string{"a/../../b": "eA=="}, "a/../../b"},
		"NUL":        {map[string]string{"a\x00b": "eA=="}, `"a\x00b"`},
	} {
		t.Run("API "+name, func(t *testing.T) {
			status, code, body := s.call(t, http.MethodPost, "/v1/run", map[string]any{"skill_id": "files", "image": env.base, "code": "print('ran')", "files": tc.files})
			assert.Equal(t, 400, status, "%s", body)
			assert.Equal(t, "2", code)
			var doc api.RunResult
			require.NoError(t, json.Unmarshal(body, &doc), "%s", body)
			require.NotNil(t, doc.Error, "%s", body)
			assert.Equal(t, "InvalidRequest", doc.Error.Type)
			assert.Contains(t, doc.Error.Message, tc.want)
			assert.Nil(t, doc.ExitCode, "nothing ran")
		})
	}
}
