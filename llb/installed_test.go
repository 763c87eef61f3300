package llb

import (
	"encoding/json"
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
