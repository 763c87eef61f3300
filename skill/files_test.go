package skill

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/skillbuild/skillbuild/runtime"
	"github.com/skillbuild/skillbuild/skill/api"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestInFiles(t *testing.T) {
	t.Parallel()
	b64 := base64.StdEncoding.EncodeToString
	many := map[string]string{}
	for i := range runtime.MaxInFiles + 1 {
		many[fmt.Sprintf("f%d", i)] = ""
	}
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  map[string][]byte
		err   string
	}{
		{"none", nil, nil, ""},
		{"decoded", map[string]string{"a.csv": b64([]byte("x,y\n1,2\n")), "d/e": ""}, map[string][]byte{"a.csv": []byte("x,y\n1,2\n"), "d/e": {}}, ""},
		{"bad base64 names the file", map[string]string{"ok": b64([]byte("1")), "data.bin": "not base64!"}, nil, `"data.bin": content is not standard base64`},
		{"URL alphabet is not standard", map[string]string{"u": "_-_-"}, nil, `"u": content is not standard base64`},
		{"too many", many, nil, fmt.Sprintf("%d files, at most %d", runtime.MaxInFiles+1, runtime.MaxInFiles)},
		{"too large", map[string]string{"big": strings.Repeat("AAAA", runtime.MaxInBytes/3+2)}, nil, `"big" passes the cap`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := inFiles(tc.files)
			if tc.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.err)
				assert.True(t, errdefs.IsInvalidArgument(err), "bad input: %v", err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestMaxFilesBytes(t *testing.T) {
	t.Parallel()
	assert.Equal(t, runtime.MaxInBytes, api.MaxFilesBytes)
	assert.Equal(t, runtime.MaxOutBytes, api.MaxFilesBytes)
}

func TestOutFiles(t *testing.T) {
	t.Parallel()
	got := outFiles([]runtime.File{
		{Name: "a.txt", Size: 2, SHA256: "ab", Content: []byte("hi")},
		{Name: "big", Size: 1 << 30, SHA256: "cd", Omitted: true},
	})
	require.Len(t, got, 2)
	assert.Equal(t, "aGk=", got[0].Content)
	assert.False(t, got[0].Omitted)
	assert.Equal(t, "", got[1].Content, "no content for an omitted file")
	assert.True(t, got[1].Omitted)
	assert.Nil(t, outFiles(nil))
}
