package layers

import (
	"fmt"
	"strings"
	"testing"

	"github.com/skillbuild/skillbuild/lock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCheck(t *testing.T) {
	t.Parallel()
	const site = VenvDir + "/lib/python3.11/site-packages"
	list := func(entries ...string) []byte {
		var b strings.Builder
		for _, e := range entries {
			typ, p, _ := strings.Cut(e, " ")
			fmt.Fprintf(&b, "[%q, %q]\n", typ, p)
		}
		return []byte(b.String())
	}
	a := lock.Lock{{Name: "a", Version: "1.0"}}
	b := lock.Lock{{Name: "b-c", Version: "2.0-1"}}
	good := [][]byte{
		list("d /opt", "d /opt/skill", "d "+VenvDir, "d "+site, "d "+site+"/a-1.0.dist-info", "f "+site+"/ns/__init__.py", "d "+site+"/ns"),
		list("d "+site, "d "+site+"/B_c-2.0_1.dist-info", "d "+site+"/ns", "f "+site+"/ns/b.py",
			"d "+site+"/b_c/_vendor/x-9.dist-info", "l "+VenvDir+"/bin/b-link"),
	}
	venv := list("d /opt", "d /opt/skill", "d "+VenvDir, "f "+VenvDir+"/pyvenv.cfg", "d "+VenvDir+"/bin",
		"l "+VenvDir+"/bin/python", "f "+VenvDir+"/bin/activate", "d "+site, "l "+VenvDir+"/lib64")
	require.NoError(t, Check(venv, []lock.Lock{a, b}, good))

	tests := []struct {
		name  string
		locks []lock.Lock
		lists [][]byte
		want  []string
	}{
		{"file outside the venv", []lock.Lock{a}, [][]byte{list("d /etc", "f /etc/x", "d "+site+"/a-1.0.dist-info")},
			[]string{"writes outside the virtual environment", "a==1.0 writes /etc/x", "a==1.0 writes /etc;"}},
		{"link beside the venv", []lock.Lock{a}, [][]byte{list("l /opt/skill/venv2", "d "+site+"/a-1.0.dist-info")},
			[]string{"a==1.0 writes /opt/skill/venv2"}},
		{"another distribution's dist-info", []lock.Lock{a}, [][]byte{list("d "+site+"/a-1.0.dist-info", "d "+site+"/evil-6.6.dist-info")},
			[]string{"does not hold the distribution its lock entry names", "the layer of a==1.0 contains evil-6.6.dist-info"}},
		{"wrong version", []lock.Lock{a}, [][]byte{list("d " + site + "/a-2.0.dist-info")},
			[]string{"contains a-2.0.dist-info", "has no dist-info of a 1.0"}},
		{"no dist-info", []lock.Lock{a}, [][]byte{list("f " + site + "/a.py")}, []string{"has no dist-info of a 1.0"}},
		{"same file in two layers", []lock.Lock{a, b}, [][]byte{
			list("d "+site+"/a-1.0.dist-info", "f "+site+"/ns/__init__.py"),
			list("d "+site+"/b_c-2.0_1.dist-info", "f "+site+"/ns/__init__.py")},
			[]string{"overwrite each other's files", site + "/ns/__init__.py is written by both a==1.0 and b-c==2.0-1"}},
		{"a file where another layer has a directory", []lock.Lock{a, b}, [][]byte{
			list("d "+site+"/a-1.0.dist-info", "d "+site+"/x"),
			list("d "+site+"/b_c-2.0_1.dist-info", "f "+site+"/x")},
			[]string{site + "/x is written by both"}},
		{"the venv's config", []lock.Lock{a}, [][]byte{list("d "+site+"/a-1.0.dist-info", "f "+VenvDir+"/pyvenv.cfg")},
			[]string{"replaces or deletes the virtual environment's own files", "a==1.0 replaces " + VenvDir + "/pyvenv.cfg"}},
		{"the venv's activate script deleted", []lock.Lock{a, b}, [][]byte{list("d " + site + "/a-1.0.dist-info"),
			list("d "+site+"/b_c-2.0_1.dist-info", "o "+VenvDir+"/bin/activate")},
			[]string{"b-c==2.0-1 replaces " + VenvDir + "/bin/activate"}},
		{"a directory over the venv's link", []lock.Lock{a}, [][]byte{list("d "+site+"/a-1.0.dist-info", "d "+VenvDir+"/lib64", "f "+VenvDir+"/lib64/x")},
			[]string{"a==1.0 replaces " + VenvDir + "/lib64"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := Check(venv, tt.locks, tt.lists)
			var le *Error
			require.ErrorAs(t, err, &le)
			assert.NotEmpty(t, le.Hint)
			for _, w := range tt.want {
				assert.Contains(t, le.Error(), w)
			}
		})
	}
}

func TestCheckNamesAtMostTenProblems(t *testing.T) {
	t.Parallel()
	var entries []string
	for i := range 500 {
		entries = append(entries, fmt.Sprintf(`["f", "/etc/x%d"]`, i))
	}
	err := Check(nil, []lock.Lock{{{Name: "a", Version: "1"}}}, [][]byte{[]byte(strings.Join(entries, "\n"))})
	require.Error(t, err)
	assert.Equal(t, maxProblems, strings.Count(err.Error(), " writes /etc/"))
	assert.Contains(t, err.Error(), "and 490 more")
}
