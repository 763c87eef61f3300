package llb

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/moby/buildkit/solver/pb"
	"github.com/skillbuild/skillbuild/lock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDistInfo(t *testing.T) {
	t.Parallel()
	d := lock.Dist{Name: "zope-interface", Version: "6.0", Meta: &lock.Metadata{
		Name: "zope.interface", RequiresPython: ">=3.7", ProvidesExtra: []string{"docs", "test"},
		RequiresDist: []string{"setuptools", `Sphinx ; extra == "docs"`},
	}}
	dir, md, err := DistInfo(d)
	require.NoError(t, err)
	assert.Equal(t, "zope_interface-6.0.dist-info", dir)
	assert.Equal(t, "Metadata-Version: 2.1\nName: zope.interface\nVersion: 6.0\nRequires-Python: >=3.7\n"+
		"Provides-Extra: docs\nProvides-Extra: test\nRequires-Dist: setuptools\nRequires-Dist: Sphinx ; extra == \"docs\"\n", md)

	_, md, err = DistInfo(lock.Dist{Name: "plain", Version: "1!2.0+local", Meta: &lock.Metadata{Name: "Plain"}})
	require.NoError(t, err)
	assert.Equal(t, "Metadata-Version: 2.1\nName: Plain\nVersion: 1!2.0+local\n", md, "no empty fields")

	for name, bad := range map[string]lock.Dist{
		"no metadata":             {Name: "a", Version: "1"},
		"header injection":        {Name: "a", Version: "1", Meta: &lock.Metadata{Name: "a", RequiresDist: []string{"b\nRequires-Dist: evil"}}},
		"empty requirement":       {Name: "a", Version: "1", Meta: &lock.Metadata{Name: "a", RequiresDist: []string{""}}},
		"path in the name":        {Name: "../a", Version: "1", Meta: &lock.Metadata{Name: "../a"}},
		"path in the version":     {Name: "a", Version: "1/../../x", Meta: &lock.Metadata{Name: "a"}},
		"metadata of another one": {Name: "a", Version: "1", Meta: &lock.Metadata{Name: "b"}},
	} {
		_, _, err := DistInfo(bad)
		require.Error(t, err, name)
		assert.True(t, errdefs.IsInvalidArgument(err), name)
	}
}

// TestInstalledViewHoldsOnlyMetadata: the view pip resolves on is made
// of dist-info METADATA and INSTALLER files only: no module, no .pth, no
// script of any package.
func TestInstalledViewHoldsOnlyMetadata(t *testing.T) {
	t.Parallel()
	b, err := installedView(withMeta(testLock))
	require.NoError(t, err)
	var view struct {
		Dists []struct {
			Dir   string            `json:"dir"`
			Files map[string]string `json:"files"`
		} `json:"dists"`
	}
	require.NoError(t, json.Unmarshal(b, &view))
	require.Len(t, view.Dists, len(testLock))
	for _, d := range view.Dists {
		assert.True(t, strings.HasSuffix(d.Dir, ".dist-info"), d.Dir)
		assert.NotContains(t, d.Dir, "/")
		keys := []string{}
		for k := range d.Files {
			keys = append(keys, k)
		}
		assert.ElementsMatch(t, []string{"METADATA", "INSTALLER"}, keys)
	}
	_, err = installedView(testLock)
	assert.Error(t, err, "a lock without metadata makes no view")
}

func withMeta(l lock.Lock) lock.Lock {
	out := append(lock.Lock{}, l...)
	for i := range out {
		out[i].Meta = &lock.Metadata{Name: out[i].Name}
	}
	return out
}

func TestResolveAddedGraph(t *testing.T) {
	t.Parallel()
	s := testSkill(t)
	st, err := ResolveAdded(Base(s.Base), s, withMeta(testLock), ResolveOpts{Trusted: []string{"index.example"}})
	require.NoError(t, err)
	g := marshal(t, st)
	require.Len(t, g.execs, 1)
	e := g.execs[0]
	assert.Equal(t, StepResolve+" added to 2 locked distributions (1 requirements)", g.names[e])
	assert.True(t, strings.HasPrefix(g.names[e], StepResolve), "the engine tells steps by their name's prefix")
	assert.Equal(t, pb.NetMode_NONE, e.Network)
	assert.NotNil(t, g.execMD[e].LinuxResources, "the build limits")
	args := strings.Join(e.Meta.Args, " ")
	assert.Contains(t, args, "/run/skillbuild/view/installedview.py "+inputDir+"/installed.json "+viewVenv+" -- install")
	assert.Contains(t, args, "--dry-run")
	assert.NotContains(t, args, "--ignore-installed", "pip keeps what the view has installed")
	assert.Contains(t, args, "--report "+reportDir+ReportFile)
	assert.Contains(t, args, "--only-binary=:all:")
	assert.Contains(t, args, "--index-url http://127.0.0.1:9/simple")
	assert.Contains(t, args, "--trusted-host index.example")
	ssh := false
	for _, m := range e.Mounts {
		ssh = ssh || m.MountType == pb.MountType_SSH
	}
	assert.True(t, ssh, "the index only through the session socket")

	_, err = ResolveAdded(Base(s.Base), s, testLock, ResolveOpts{})
	assert.Error(t, err, "no recorded metadata: no view")
}

// TestInstalledViewScript runs installedview.py with the host's python3
// and its pip: the venv it makes holds exactly the view's dist-info
// directories (METADATA and INSTALLER, nothing else), pip run there lists
// them as installed with their versions, and an entry naming a path
// outside site-packages is refused before pip runs.
func TestInstalledViewScript(t *testing.T) {
	t.Parallel()
	if err := exec.Command("python3", "-I", "-c", "import pip").Run(); err != nil {
		t.Skipf("the host's python3 has no pip (%v): installedview.py runs the interpreter's own pip", err)
	}
	dir := t.TempDir()
	script := filepath.Join(dir, "installedview.py")
	require.NoError(t, os.WriteFile(script, installedViewScript, 0o644))
	run := func(view []byte, venv string, args ...string) (string, error) {
		viewFile := filepath.Join(dir, filepath.Base(venv)+".json")
		require.NoError(t, os.WriteFile(viewFile, view, 0o644))
		cmd := exec.Command("python3", append([]string{"-I", script, viewFile, venv, "--"}, args...)...)
		cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + dir, "PIP_CONFIG_FILE=/dev/null", "PIP_DISABLE_PIP_VERSION_CHECK=1"}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	locked := withMeta(testLock)
	locked[1].Meta.RequiresDist = []string{"certifi>=2017"}
	view, err := installedView(locked)
	require.NoError(t, err)
	venv := filepath.Join(dir, "v")
	out, err := run(view, venv, "list", "--format=json", "--no-index")
	require.NoError(t, err, out)
	assert.Contains(t, out, `{"name": "certifi", "version": "2024.2.2"}`)
	assert.Contains(t, out, `{"name": "requests", "version": "2.31.0"}`)

	sites, err := filepath.Glob(filepath.Join(venv, "lib", "python3*", "site-packages"))
	require.NoError(t, err)
	require.Len(t, sites, 1)
	var found []string
	require.NoError(t, filepath.WalkDir(sites[0], func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(sites[0], p)
			found = append(found, rel)
		}
		return err
	}))
	assert.ElementsMatch(t, []string{
		"certifi-2024.2.2.dist-info/METADATA", "certifi-2024.2.2.dist-info/INSTALLER",
		"requests-2.31.0.dist-info/METADATA", "requests-2.31.0.dist-info/INSTALLER",
	}, found, "site-packages holds the synthesized metadata and nothing else")

	evil := filepath.Join(dir, "evil")
	out, err = run([]byte(`{"dists": [{"dir": "../../../x.dist-info", "files": {"METADATA": "x"}}]}`), evil, "--version")
	require.Error(t, err)
	assert.Contains(t, out, "refusing dist-info entry")
	_, statErr := os.Stat(filepath.Join(dir, "x.dist-info"))
	assert.True(t, os.IsNotExist(statErr))
}
