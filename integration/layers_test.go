package integration

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	sbllb "github.com/skillbuild/skillbuild/llb"

	"github.com/skillbuild/skillbuild/internal/pyindex"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// layers lists the layer digests of an image's manifest.
func layers(t *testing.T, ref string) []string {
	t.Helper()
	l, _ := imageBlobs(t, ref)
	return l
}

func installSteps(steps []string) []string {
	var out []string
	for _, s := range steps {
		if strings.HasPrefix(s, sbllb.StepInstall) {
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

func TestLayersSharedAcrossSkills(t *testing.T) {
	var wheels []pyindex.Wheel
	var common []string
	for i := 0; i < 4; i++ {
		name := fmt.Sprintf("shared-%d", i)
		wheels = append(wheels, pyindex.Wheel{Name: name, Version: "1.0"})
		common = append(common, name+"==1.0")
	}
	wheels = append(wheels, pyindex.Wheel{Name: "only-a", Version: "1.0"}, pyindex.Wheel{Name: "only-b", Version: "1.0"}, pyindex.Wheel{Name: "extra", Version: "1.0"})
	srv, _ := index(t, wheels...)

	a, r := install(t, srv, "layers-a", nil, append(common, "only-a==1.0")...)
	require.Equal(t, 0, r.code, r.stderr)
	b, r := install(t, srv, "layers-b", nil, append(common, "only-b==1.0")...)
	require.Equal(t, 0, r.code, r.stderr)

	// Building the second skill installed only what it does not share.
	assert.Equal(t, []string{"install only-b==1.0"}, installSteps(b.Steps))

	la, lb := layers(t, a.ImageTag), layers(t, b.ImageTag)
	require.Len(t, lb, len(la))
	shared := 0
	for i := range la {
		if la[i] == lb[i] {
			shared++
		}
	}
	// base, venv, 4 shared distributions and the lock file: only the
	// unshared distribution's layer and the lock file's differ.
	assert.Equal(t, len(la)-2, shared, "every layer but the unshared distribution's and the lock's is the same blob")

	// Adding one requirement installs only the new distribution.
	a2, r := install(t, srv, "layers-a", []string{"--version", "2"}, append(common, "only-a==1.0", "extra==1.0")...)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, []string{"install extra==1.0"}, installSteps(a2.Steps))
}

func TestLayersMergedImageBehavesLikeOneInstall(t *testing.T) {
	srv, _ := index(t,
		pyindex.Wheel{Name: "cli-tool", Version: "2.1", ConsoleScripts: map[string]string{"cli-tool": "cli_tool:main"},
			Init: "def main():\n    print('cli-tool says hi')\n    return 0\n"},
		pyindex.Wheel{Name: "nsa-alpha", Version: "1.0", NoPackage: true, Files: map[string]string{"nsx/alpha/__init__.py": "NAME = 'alpha'\n"}},
		pyindex.Wheel{Name: "nsa-beta", Version: "1.1", NoPackage: true, Files: map[string]string{"nsx/beta/__init__.py": "NAME = 'beta'\n"}},
		pyindex.Wheel{Name: "pth-user", Version: "0.5", Files: map[string]string{"pth_user.pth": "import sys; sys.pth_user_loaded = True\n"}},
	)
	out, r := install(t, srv, "merged", nil, "cli-tool", "nsa-alpha", "nsa-beta", "pth-user")
	require.Equal(t, 0, r.code, r.stderr)
	img := "docker.io/library/" + out.ImageTag

	got, err := runIn(t, img, "cli-tool")
	require.NoError(t, err)
	assert.Equal(t, "cli-tool says hi\n", got, "console script from entry_points.txt")

	got, err = runIn(t, img, "python3", "-c", `
import importlib.metadata as m, sys
import nsx.alpha, nsx.beta
print(sorted((d.metadata["Name"], d.version) for d in m.distributions()))
print(nsx.alpha.NAME, nsx.beta.NAME, getattr(sys, "pth_user_loaded", False))
`)
	require.NoError(t, err)
	assert.Equal(t, "[('cli-tool', '2.1'), ('nsa-alpha', '1.0'), ('nsa-beta', '1.1'), ('pth-user', '0.5')]\nalpha beta True\n", got)

	got, err = runIn(t, img, "sh", "-c", "ls /opt/skill/venv/lib/python3*/site-packages/cli_tool/__pycache__/ | wc -l")
	require.NoError(t, err)
	assert.Equal(t, "1\n", got, "bytecode compiled at build time")
}

func TestLayersConflictingFilesAreReported(t *testing.T) {
	srv, _ := index(t,
		pyindex.Wheel{Name: "clash-one", Version: "1.0", NoPackage: true, Files: map[string]string{"clash/__init__.py": "WHO = 1\n"}},
		pyindex.Wheel{Name: "clash-two", Version: "1.0", NoPackage: true, Files: map[string]string{"clash/__init__.py": "WHO = 2\n"}},
	)
	out, r := install(t, srv, "clash", nil, "clash-one", "clash-two")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, out.Error, "clash/__init__.py")
	assert.Contains(t, out.Error, "clash-one==1.0")
	assert.Contains(t, out.Error, "clash-two==1.0")
	assert.False(t, imageExists(t, "atom-skill:clash-v1"))
}

func TestLayersManyDistributions(t *testing.T) {
	srv, dir := index(t)
	files, err := pyindex.GenerateSet(dir, "many", 150)
	require.NoError(t, err)
	require.Len(t, files, 150)
	var reqs []string
	for i := range files {
		reqs = append(reqs, fmt.Sprintf("many-%03d", i))
	}
	out, r := install(t, srv, "many", nil, reqs...)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Len(t, out.Packages, 150)
	assert.LessOrEqual(t, len(layers(t, out.ImageTag)), 110, "layer count stays under the policy bound")
	got, err := runIn(t, "docker.io/library/"+out.ImageTag, "python3", "-c",
		"import importlib.metadata as m; print(len([d for d in m.distributions() if d.metadata['Name'].startswith('many')]))")
	require.NoError(t, err)
	assert.Equal(t, "150\n", got)
	lock, err := runIn(t, "docker.io/library/"+out.ImageTag, "cat", "/opt/skill/requirements.lock")
	require.NoError(t, err)
	assert.Equal(t, 150, strings.Count(lock, "--hash=sha256:"), "the full lock is in the image")
}
