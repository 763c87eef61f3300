package integration

import (
	"encoding/json"
	"net"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/skillbuild/skillbuild/internal/pyindex"
	"github.com/skillbuild/skillbuild/skill/api"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// installJSON is the --json document of `skillbuild install`.
type installJSON = api.InstallResult

func parseInstall(t *testing.T, r result) installJSON {
	t.Helper()
	var out installJSON
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &out), "stdout: %s", r.stdout)
	return out
}

// index serves a fresh wheelhouse on 127.0.0.1 with Debian's real pip,
// setuptools and wheel wheels plus the given test wheels.
func index(t *testing.T, wheels ...pyindex.Wheel) (*pyindex.Server, string) {
	t.Helper()
	dir := t.TempDir()
	_, err := pyindex.CopyDebianWheels(dir)
	require.NoError(t, err)
	for _, w := range wheels {
		_, err := pyindex.BuildWheel(dir, w)
		require.NoError(t, err)
	}
	srv, err := pyindex.Serve(dir)
	require.NoError(t, err)
	t.Cleanup(func() { srv.Close() })
	return srv, dir
}

// install runs `skillbuild install --json` against srv with the suite's base.
func install(t *testing.T, srv *pyindex.Server, id string, extra []string, reqs ...string) (installJSON, result) {
	t.Helper()
	args := []string{"install", "--json", "--progress", "plain", "--base", env.base, "--index-url", srv.URL()}
	args = append(args, extra...)
	args = append(args, id)
	args = append(args, reqs...)
	r := sb(t, args...)
	return parseInstall(t, r), r
}

func TestInstallConflictingVersionsEachGetTheirs(t *testing.T) {
	srv, _ := index(t,
		pyindex.Wheel{Name: "pkgx", Version: "1.0"},
		pyindex.Wheel{Name: "pkgx", Version: "2.0"},
	)
	a, ra := install(t, srv, "skill-a", nil, "pkgx==1.0")
	require.Equal(t, 0, ra.code, ra.stderr)
	b, rb := install(t, srv, "skill-b", nil, "pkgx==2.0")
	require.Equal(t, 0, rb.code, rb.stderr)

	assert.Equal(t, "atom-skill:skill-a-v1", a.ImageTag)
	assert.Equal(t, "atom-skill:skill-b-v1", b.ImageTag)
	assert.NotEqual(t, a.Digest, b.Digest)

	for tag, want := range map[string]string{a.ImageTag: "1.0", b.ImageTag: "2.0"} {
		out, err := runIn(t, "docker.io/library/"+tag, "python3", "-c", "import pkgx, sys; print(pkgx.__version__, sys.prefix)")
		require.NoError(t, err)
		assert.Equal(t, want+" /opt/skill/venv\n", out, tag)
	}
}

func TestInstallRecordsTransitiveDependencies(t *testing.T) {
	srv, _ := index(t,
		pyindex.Wheel{Name: "app-top", Version: "1.0", Requires: []string{"lib-mid>=1"}},
		pyindex.Wheel{Name: "lib-mid", Version: "1.2", Requires: []string{"Leaf_Pkg==0.3"}},
		pyindex.Wheel{Name: "leaf-pkg", Version: "0.3"},
	)
	out, r := install(t, srv, "transitive", nil, "app-top")
	require.Equal(t, 0, r.code, r.stderr)
	var names []string
	for _, p := range out.Packages {
		names = append(names, p.Name+"=="+p.Version)
	}
	assert.ElementsMatch(t, []string{"app-top==1.0", "lib-mid==1.2", "leaf-pkg==0.3"}, names)

	lock := imageLabel(t, "docker.io/library/"+out.ImageTag, "org.skillbuild.lock")
	assert.Contains(t, lock, "leaf-pkg==0.3 --hash=sha256:")
	assert.Contains(t, lock, "lib-mid==1.2 --hash=sha256:")

	got, err := runIn(t, "docker.io/library/"+out.ImageTag, "python3", "-c", "import leaf_pkg, lib_mid, app_top; print('ok')")
	require.NoError(t, err)
	assert.Equal(t, "ok\n", got)
}

func TestInstallUnchangedSkillIsCacheHit(t *testing.T) {
	srv, _ := index(t, pyindex.Wheel{Name: "cachepkg", Version: "1.0"})
	first, r1 := install(t, srv, "cache-hit", nil, "cachepkg==1.0")
	require.Equal(t, 0, r1.code, r1.stderr)
	srv.ResetRequests()
	second, r2 := install(t, srv, "cache-hit", nil, "cachepkg==1.0")
	require.Equal(t, 0, r2.code, r2.stderr)
	assert.Equal(t, first.Digest, second.Digest, "an unchanged skill yields the same image")
	assert.True(t, second.Cached, "every step answered from cache")
	assert.Empty(t, srv.Downloads(), "nothing downloaded again")
}

func TestInstallImageShape(t *testing.T) {
	srv, _ := index(t, pyindex.Wheel{Name: "shape", Version: "1.0"})
	out, r := install(t, srv, "shape", []string{"--version", "3"}, "shape")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, "atom-skill:shape-v3", out.ImageTag)
	got, err := runIn(t, "docker.io/library/"+out.ImageTag, "sh", "-c", "id -u; id -g; pwd; command -v python3; echo $VIRTUAL_ENV")
	require.NoError(t, err)
	assert.Equal(t, "65532\n65532\n/opt/skill\n/opt/skill/venv/bin/python3\n/opt/skill/venv\n", got)
	assert.Equal(t, "shape", imageLabel(t, "docker.io/library/"+out.ImageTag, "org.skillbuild.skill.id"))
	assert.Equal(t, "3", imageLabel(t, "docker.io/library/"+out.ImageTag, "org.skillbuild.skill.version"))
}

func TestInstallErrorsAreActionable(t *testing.T) {
	srv, dir := index(t,
		pyindex.Wheel{Name: "onlyone", Version: "1.0"},
		pyindex.Wheel{Name: "needs-old", Version: "1.0", Requires: []string{"onlyone<1"}},
	)
	_, err := pyindex.BuildSdist(dir, pyindex.Sdist{Name: "srconly", Version: "0.1"})
	require.NoError(t, err)

	cases := []struct {
		name string
		reqs []string
		want []string
	}{
		{"missing version", []string{"onlyone==9.9"}, []string{"onlyone", "==9.9", "1.0"}},
		{"unsatisfiable", []string{"needs-old", "onlyone==1.0"}, []string{"conflicting", `"needs-old"`, `"onlyone==1.0"`, "different versions of onlyone", "needs-old 1.0 depends on onlyone<1", "The user requested onlyone==1.0"}},
		{"sdist refused", []string{"srconly"}, []string{"srconly", "source distribution", "--allow-sdist"}},
		{"no such project", []string{"does-not-exist"}, []string{"does-not-exist"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := "err-" + strings.ReplaceAll(tc.name, " ", "-")
			out, r := install(t, srv, id, nil, tc.reqs...)
			assert.Equal(t, 1, r.code)
			assert.False(t, out.Success)
			for _, w := range tc.want {
				assert.Contains(t, out.Error+" "+out.Hint, w)
			}
			assert.NotContains(t, out.Error, "/run/skillbuild/", "the user's lines, not paths inside the build step")
			assert.False(t, imageExists(t, "atom-skill:"+id+"-v1"), "no tag after a failed build")
		})
	}

	t.Run("index unreachable", func(t *testing.T) {
		dead := "http://127.0.0.1:1/simple"
		r := sb(t, "install", "--json", "--base", env.base, "--index-url", dead, "unreach", "onlyone")
		out := parseInstall(t, r)
		assert.Equal(t, 1, r.code)
		assert.Contains(t, out.Error, "127.0.0.1:1")
		assert.Contains(t, out.Error, "unreachable")
	})
	t.Run("base missing", func(t *testing.T) {
		r := sb(t, "install", "--json", "--base", "localhost/nope/python:0", "--index-url", srv.URL(), "nobase", "onlyone")
		out := parseInstall(t, r)
		assert.Equal(t, 4, r.code)
		assert.Contains(t, out.Error, "skillbuild base import")
	})
	t.Run("bad id", func(t *testing.T) {
		r := sb(t, "install", "--json", "--base", env.base, "--index-url", srv.URL(), "../x", "onlyone")
		assert.Equal(t, 2, r.code)
		assert.Contains(t, parseInstall(t, r).Error, "id")
	})
}

// listener counts the TCP connections made to a port on the host's
// 127.0.0.1 while a test runs.
func listener(t *testing.T) (port int, accepted func() int) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var n atomic.Int32
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			c.Close()
		}
	}()
	t.Cleanup(func() { l.Close() })
	return l.Addr().(*net.TCPAddr).Port, func() int { return int(n.Load()) }
}

func TestInstallSdistCodeHasNoNetwork(t *testing.T) {
	port, accepted := listener(t)
	srv, dir := index(t)
	_, err := pyindex.BuildSdist(dir, pyindex.Sdist{
		Name: "phones-home", Version: "1.0",
		Prelude: pyindex.ConnectProbe("127.0.0.1", port, "/tmp/probe.txt"),
	})
	require.NoError(t, err)

	out, r := install(t, srv, "sdist-net", []string{"--allow-sdist"}, "phones-home==1.0")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, out.Steps, "build wheel phones-home==1.0 from source", "the sdist was built in its own step")
	assert.Zero(t, accepted(), "setup.py reached a listener on the host")

	got, err := runIn(t, "docker.io/library/"+out.ImageTag, "python3", "-c", "import phones_home; print(phones_home.__version__)")
	require.NoError(t, err)
	assert.Equal(t, "1.0\n", got)
}

func TestInstallStepOverMemoryLimitFails(t *testing.T) {
	srv, dir := index(t)
	_, err := pyindex.BuildSdist(dir, pyindex.Sdist{
		Name: "balloon", Version: "1.0",
		Prelude: "big = b'x' * (600 << 20)\n",
	})
	require.NoError(t, err)
	out, r := install(t, srv, "balloon", []string{"--allow-sdist", "--build-memory", "128m"}, "balloon==1.0")
	assert.Equal(t, 1, r.code)
	assert.False(t, out.Success)
	assert.Contains(t, out.Error, "128 MiB")
	assert.Contains(t, out.Error+out.Hint, "--build-memory")
	assert.False(t, imageExists(t, "atom-skill:balloon-v1"), "no tag after a failed build")
}
