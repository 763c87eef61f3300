package llb

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/solver/pb"
	digest "github.com/opencontainers/go-digest"
	"github.com/skillbuild/skillbuild/config"
	"github.com/skillbuild/skillbuild/lock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// graph is a marshalled LLB definition, decoded for assertions.
type graph struct {
	execs   []*pb.ExecOp
	names   map[*pb.ExecOp]string
	sources []*pb.SourceOp
	merges  int
	diffs   int
	meta    []*pb.OpMetadata
	execMD  map[*pb.ExecOp]*pb.OpMetadata
}

func marshal(t *testing.T, st llb.State) graph {
	t.Helper()
	def, err := st.Marshal(context.Background())
	require.NoError(t, err)
	g := graph{names: map[*pb.ExecOp]string{}, execMD: map[*pb.ExecOp]*pb.OpMetadata{}}
	for _, dt := range def.Def {
		var op pb.Op
		require.NoError(t, op.UnmarshalVT(dt))
		md := def.Metadata[digest.FromBytes(dt)]
		switch o := op.Op.(type) {
		case *pb.Op_Exec:
			g.execs = append(g.execs, o.Exec)
			g.execMD[o.Exec] = md.ToPB()
			g.names[o.Exec] = md.Description["llb.customname"]
		case *pb.Op_Source:
			g.sources = append(g.sources, o.Source)
		case *pb.Op_Merge:
			g.merges++
		case *pb.Op_Diff:
			g.diffs++
		}
	}
	return g
}

func testSkill(t *testing.T) config.Skill {
	return config.Skill{
		ID: "weather", Version: "1", Repo: "docker.io/library/atom-skill", Base: "docker.io/library/python:3.11-slim",
		Requirements: []config.Requirement{{Raw: "requests>=2", Name: "requests", Specifier: ">=2"}},
		Index:        config.Index{URL: "http://127.0.0.1:9/simple"},
		Build:        config.BuildLimits{MemoryBytes: 512 << 20, CPUs: 1.5, Pids: 100},
	}
}

var testLock = lock.Lock{
	{Name: "certifi", Version: "2024.2.2", Filename: "certifi-2024.2.2-py3-none-any.whl", URL: "http://127.0.0.1:9/files/certifi-2024.2.2-py3-none-any.whl", SHA256: strings.Repeat("a", 64)},
	{Name: "requests", Version: "2.31.0", Filename: "requests-2.31.0-py3-none-any.whl", URL: "http://127.0.0.1:9/files/requests-2.31.0-py3-none-any.whl", SHA256: strings.Repeat("b", 64), Requested: true},
}

func TestResolveGraph(t *testing.T) {
	t.Parallel()
	s := testSkill(t)
	g := marshal(t, Resolve(Base(s.Base), s, ResolveOpts{Trusted: []string{"index.example"}}))
	require.Len(t, g.execs, 1, "resolution runs in the base: it needs no venv")
	for _, e := range g.execs {
		assert.Equal(t, pb.NetMode_NONE, e.Network, "%s: every step has its network off", g.names[e])
		md := g.execMD[e]
		require.NotNil(t, md.LinuxResources, "%s: limits present", g.names[e])
		assert.EqualValues(t, 512<<20, md.LinuxResources.Memory)
		assert.EqualValues(t, 512<<20, md.LinuxResources.MemorySwap, "no swap beyond the memory limit")
		assert.EqualValues(t, 150000, md.LinuxResources.CpuQuota)
		assert.EqualValues(t, 100000, md.LinuxResources.CpuPeriod)
		for _, kv := range e.Meta.Env {
			assert.False(t, strings.HasPrefix(kv, "PIP_FIND_LINKS") || strings.HasPrefix(kv, "PIP_INDEX"), "no host pip settings: %s", kv)
		}
	}
	var resolve *pb.ExecOp
	for _, e := range g.execs {
		if g.names[e] == "resolve requirements" {
			resolve = e
		}
	}
	require.NotNil(t, resolve)
	args := strings.Join(resolve.Meta.Args, " ")
	assert.Contains(t, args, "--dry-run")
	assert.Contains(t, args, "--report "+reportDir+ReportFile)
	assert.Contains(t, args, "--only-binary=:all:", "sdists refused by default")
	assert.Contains(t, args, "--index-url http://127.0.0.1:9/simple")
	assert.Contains(t, args, "--trusted-host index.example")
	ssh := false
	for _, m := range resolve.Mounts {
		if m.MountType == pb.MountType_SSH {
			ssh = true
		}
	}
	assert.True(t, ssh, "the resolve step reaches the index only through the session socket")
}

func TestResolveAllowsSdistWhenAsked(t *testing.T) {
	t.Parallel()
	s := testSkill(t)
	s.Index.AllowSdist = true
	g := marshal(t, Resolve(Base(s.Base), s, ResolveOpts{}))
	require.Len(t, g.execs, 1)
	e := g.execs[0]
	assert.NotContains(t, strings.Join(e.Meta.Args, " "), "--only-binary")
	// setup.py runs in this step: as the unprivileged build user, who owns
	// the forwarded index socket and the report's directory.
	assert.Equal(t, BuildUser, e.Meta.User)
	assertSocketOwner(t, e, BuildUID, BuildGID)

	s.Index.AllowSdist = false
	g = marshal(t, Resolve(Base(s.Base), s, ResolveOpts{}))
	require.Len(t, g.execs, 1)
	assert.Empty(t, g.execs[0].Meta.User, "wheels only: no package code runs, pip keeps its root-owned HTTP cache")
}

func assertSocketOwner(t *testing.T, e *pb.ExecOp, uid, gid uint32) {
	t.Helper()
	for _, m := range e.Mounts {
		if m.MountType == pb.MountType_SSH {
			assert.Equal(t, uid, m.SSHOpt.Uid)
			assert.Equal(t, gid, m.SSHOpt.Gid)
			return
		}
	}
	t.Errorf("no index socket in %v", e.Meta.Args)
}

func TestSdistBuildRunsUnprivileged(t *testing.T) {
	t.Parallel()
	s := testSkill(t)
	s.Index.AllowSdist = true
	sdist := lock.Dist{Name: "legacy", Version: "1.0", Filename: "legacy-1.0.tar.gz", URL: "http://127.0.0.1:9/files/legacy-1.0.tar.gz", SHA256: strings.Repeat("c", 64), Sdist: true}
	in, err := Install(Venv(Base(s.Base), s), s, lock.Lock{sdist}, InstallOpts{})
	require.NoError(t, err)
	g := marshal(t, in.Root)
	var build, install *pb.ExecOp
	for _, e := range g.execs {
		switch {
		case strings.HasPrefix(g.names[e], StepBuildWheel):
			build = e
		case strings.HasPrefix(g.names[e], StepInstall):
			install = e
		}
	}
	require.NotNil(t, build)
	require.NotNil(t, install)
	assert.Equal(t, BuildUser, build.Meta.User, "the sdist's build code runs unprivileged")
	assertSocketOwner(t, build, BuildUID, BuildGID)
	assert.Contains(t, build.Meta.Args, wheelDir+wheelSub)
	assert.Empty(t, install.Meta.User, "installing the built wheel writes the root-owned venv and runs no package code")
	for _, src := range g.sources {
		if strings.HasPrefix(src.Identifier, "http") {
			assert.Equal(t, "0644", src.Attrs[pb.AttrHTTPPerm], "the build user can read the fetched sdist")
		}
	}
}

func TestInstallGraphLayers(t *testing.T) {
	t.Parallel()
	s := testSkill(t)
	venv := Venv(Base(s.Base), s)
	in, err := Install(venv, s, testLock, InstallOpts{})
	require.NoError(t, err)
	require.Len(t, in.Layers, 2, "one layer per distribution")
	assert.Equal(t, []lock.Lock{{testLock[0]}, {testLock[1]}}, in.Locks)
	g := marshal(t, in.Root)
	assert.Equal(t, 2, g.diffs, "one diff per distribution")
	assert.Equal(t, 1, g.merges)
	installs := 0
	for _, e := range g.execs {
		name := g.names[e]
		assert.Equal(t, pb.NetMode_NONE, e.Network, "%s: network off", name)
		for _, m := range e.Mounts {
			assert.NotEqual(t, pb.MountType_SSH, m.MountType, "%s: no socket into an install step", name)
		}
		if strings.HasPrefix(name, StepInstall) {
			installs++
			require.NotNil(t, g.execMD[e].LinuxResources, "%s: limits present", name)
			args := strings.Join(e.Meta.Args, " ")
			assert.Contains(t, args, "wheelinstall.py")
		}
	}
	assert.Equal(t, 2, installs)
	var urls []string
	for _, src := range g.sources {
		if strings.HasPrefix(src.Identifier, "http") {
			urls = append(urls, src.Identifier)
			assert.True(t, strings.HasPrefix(src.Attrs[pb.AttrHTTPChecksum], "sha256:"), "fetched by hash: %s", src.Identifier)
		}
	}
	assert.Len(t, urls, 2)
}

func TestInstallSingleLayerUsesPipRequireHashes(t *testing.T) {
	t.Parallel()
	s := testSkill(t)
	in, err := Install(Venv(Base(s.Base), s), s, testLock, InstallOpts{SingleLayer: true})
	require.NoError(t, err)
	require.Len(t, in.Layers, 1, "the single layer is still checked")
	assert.Equal(t, []lock.Lock{testLock}, in.Locks)
	g := marshal(t, in.Root)
	assert.Zero(t, g.diffs)
	var args string
	for _, e := range g.execs {
		if strings.HasPrefix(g.names[e], StepInstall) {
			args = strings.Join(e.Meta.Args, " ")
		}
	}
	assert.Contains(t, args, "--no-index --no-deps --require-hashes")
}

func TestListLayersMountsEveryLayerReadOnly(t *testing.T) {
	t.Parallel()
	s := testSkill(t)
	venv := Venv(Base(s.Base), s)
	in, err := Install(venv, s, testLock, InstallOpts{})
	require.NoError(t, err)
	g := marshal(t, ListLayers(venv, in, s))
	var list *pb.ExecOp
	for _, e := range g.execs {
		if strings.HasPrefix(g.names[e], "check layers: list the files of") {
			list = e
		}
	}
	require.NotNil(t, list, "a listing step")
	assert.Equal(t, pb.NetMode_NONE, list.Network)
	layers := 0
	for _, m := range list.Mounts {
		if strings.HasPrefix(m.Dest, "/run/skillbuild/layers/") {
			layers++
			assert.True(t, m.Readonly, "%s is read-only", m.Dest)
		}
	}
	assert.Equal(t, len(in.Layers), layers)
	assert.Equal(t, 2, g.diffs, "the listing reads the diffs themselves")
}

func TestLayersBucketsPastTheBound(t *testing.T) {
	t.Parallel()
	var locked lock.Lock
	for _, n := range []string{"a", "b", "c", "d", "e", "f", "g"} {
		locked = append(locked, lock.Dist{Name: n, Version: "1"})
	}
	assert.Len(t, Layers(locked, 10), 7, "one layer each while they fit")
	got := Layers(locked, 3)
	assert.LessOrEqual(t, len(got), 3)
	total := 0
	for _, l := range got {
		total += len(l)
	}
	assert.Equal(t, 7, total, "every distribution in exactly one bucket")
	// A bucket's content depends only on names: adding "h" leaves every
	// bucket without "h" unchanged.
	again := Layers(append(locked, lock.Dist{Name: "h", Version: "1"}), 3)
	unchanged := 0
	for _, a := range got {
		for _, b := range again {
			if len(a) == len(b) && a[0].Name == b[0].Name && a.Text() == b.Text() {
				unchanged++
			}
		}
	}
	assert.GreaterOrEqual(t, unchanged, len(got)-1)
}

func TestParseReport(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join("testdata", "report.json"))
	require.NoError(t, err)
	locked, err := lock.ParseReport(b)
	require.NoError(t, err)
	require.Len(t, locked, 2)
	assert.Equal(t, "app-top", locked[0].Name)
	assert.True(t, locked[0].Requested)
	assert.Equal(t, "lib-mid", locked[1].Name)
	assert.False(t, locked[1].Requested)
	assert.Equal(t, "lib_mid-1.2-py3-none-any.whl", locked[1].Filename)
	assert.Len(t, locked[1].SHA256, 64)

	for name, doc := range map[string]string{
		"wrong version": `{"version": "2", "install": []}`,
		"no hash":       `{"version": "1", "install": [{"download_info": {"url": "http://x/a-1-py3-none-any.whl", "archive_info": {}}, "metadata": {"name": "a", "version": "1"}}]}`,
		"directory":     `{"version": "1", "install": [{"download_info": {"url": "file:///src", "dir_info": {}}, "metadata": {"name": "a", "version": "1"}}]}`,
	} {
		_, err := lock.ParseReport([]byte(doc))
		assert.Error(t, err, name)
	}
}

func TestStepLimitsAsRlimitsWithoutCgroups(t *testing.T) {
	t.Parallel()
	s := testSkill(t)
	s.Build.Timeout = 10 * time.Minute
	s.Build.InRlimits = true
	g := marshal(t, Resolve(Base(s.Base), s, ResolveOpts{}))
	require.NotEmpty(t, g.execs)
	for _, e := range g.execs {
		// A step with cgroup resources fails under a rootless runc that
		// has no cgroup of its own.
		assert.Nil(t, g.execMD[e].LinuxResources, "%s: no cgroup resources", g.names[e])
		got := map[string]int64{}
		for _, u := range e.Meta.Ulimit {
			got[u.Name] = u.Hard
			assert.Equal(t, u.Hard, u.Soft, u.Name)
		}
		assert.Equal(t, map[string]int64{"data": 512 << 20, "cpu": 900}, got, "%s: memory and cpus × timeout as rlimits", g.names[e])
	}
}

// TestPythonEnvironmentGraph: the builtin resolver's look at the base is
// one step in the base itself, with the network off, no index socket, no
// input of the skill's, and the build limits.
func TestPythonEnvironmentGraph(t *testing.T) {
	t.Parallel()
	s := testSkill(t)
	g := marshal(t, PythonEnvironment(Base(s.Base), s, "print(1)"))
	require.Len(t, g.execs, 1)
	e := g.execs[0]
	assert.Equal(t, pb.NetMode_NONE, e.Network)
	assert.True(t, strings.HasPrefix(g.names[e], StepInspect), g.names[e])
	assert.Equal(t, []string{"python3", "-I", "-c", "print(1)", reportDir + EnvironmentFile}, e.Meta.Args)
	assert.Empty(t, e.Secretenv)
	for _, m := range e.Mounts {
		assert.NotEqual(t, pb.MountType_SSH, m.MountType, "no index access")
		assert.NotEqual(t, inputDir, m.Dest, "no requirement of the skill")
	}
	assert.EqualValues(t, 512<<20, g.execMD[e].LinuxResources.Memory)
}
