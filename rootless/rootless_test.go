package rootless

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPathsForXDG(t *testing.T) {
	t.Parallel()
	p, err := PathsFor(Env{UID: 1000, Home: "/home/u", DataHome: "/data", RuntimeDir: "/run/user/1000"})
	require.NoError(t, err)
	assert.Equal(t, "/data/skillbuild", p.Data)
	assert.Equal(t, "/run/user/1000/skillbuild", p.Run)
	assert.Equal(t, "/run/user/1000/skillbuild/containerd.sock", p.Socket())
	assert.Equal(t, "/data/skillbuild/state", p.StateRoot())
	assert.Equal(t, "/run/user/1000/skillbuild/rootlesskit", p.RootlessKitDir())
}

func TestPathsForFallbacks(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	// No XDG variables and no /run/user/UID of this (unlikely) uid: data
	// under ~/.local/share, runtime under the temp directory.
	p, err := PathsFor(Env{UID: 987654, Home: "/home/u", TempDir: tmp})
	require.NoError(t, err)
	assert.Equal(t, "/home/u/.local/share/skillbuild", p.Data)
	assert.Equal(t, filepath.Join(tmp, "skillbuild-run-987654", "skillbuild"), p.Run)

	_, err = PathsFor(Env{UID: 1000})
	assert.True(t, errdefs.IsInvalidArgument(err), "no HOME and no XDG_DATA_HOME: %v", err)
	_, err = PathsFor(Env{UID: 1000, DataHome: "rel", RuntimeDir: "/r"})
	assert.True(t, errdefs.IsInvalidArgument(err), "relative data dir: %v", err)
}

func TestPrepareRefusesARuntimeDirOfSomeoneElse(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	require.NoError(t, os.Chmod(dir, 0o777))
	p := Paths{Data: filepath.Join(dir, "data"), Run: filepath.Join(dir, "skillbuild")}
	err := p.prepare(os.Geteuid())
	assert.ErrorContains(t, err, "writable only by it", "a world-writable runtime directory is refused")
	require.NoError(t, os.Chmod(dir, 0o700))
	require.NoError(t, p.prepare(os.Geteuid()))
	assert.DirExists(t, p.ShimDir())
}

func TestV1Hierarchies(t *testing.T) {
	t.Parallel()
	mi := `43 42 254:0 / / rw,relatime - ext4 /dev/vda rw
47 46 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
48 47 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
49 47 0:30 / /sys/fs/cgroup/memory rw,relatime shared:5 - cgroup cgroup rw,memory
50 47 0:31 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
51 47 0:32 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
`
	hs, err := v1Hierarchies(strings.NewReader(mi))
	require.NoError(t, err)
	assert.Equal(t, []string{"/sys/fs/cgroup/cpu", "/sys/fs/cgroup/memory", "/sys/fs/cgroup/systemd"}, hs)
}

func TestSubIDCount(t *testing.T) {
	t.Parallel()
	f := filepath.Join(t.TempDir(), "subuid")
	require.NoError(t, os.WriteFile(f, []byte("alice:100000:65536\n1001:300000:1000\nbob:200000:65536\n"), 0o644))
	n, err := subIDCount(f, User{UID: 1000, Name: "alice"})
	require.NoError(t, err)
	assert.Equal(t, 65536, n)
	n, err = subIDCount(f, User{UID: 1001, Name: "carol"})
	require.NoError(t, err)
	assert.Equal(t, 1000, n, "a range may name the uid")
	_, err = subIDCount(f, User{UID: 1002, Name: "dave"})
	assert.ErrorContains(t, err, "no range for dave")
}

func TestChecksExplainWhatIsMissing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sub := filepath.Join(dir, "subuid")
	require.NoError(t, os.WriteFile(sub, []byte("alice:100000:1000\n"), 0o644))
	cs := Checks(User{UID: 1000, Name: "alice"}, WithSubIDFiles(sub, filepath.Join(dir, "none")), WithKernelRelease("5.10.0-21-amd64"))
	byName := map[string]Check{}
	for _, c := range cs {
		byName[c.Name] = c
	}
	assert.False(t, byName["subuid"].OK, "1000 ids are too few")
	assert.Contains(t, byName["subuid"].Fix, "usermod --add-subuids")
	assert.False(t, byName["subgid"].OK)
	assert.Contains(t, byName["subgid"].Detail, "read ")
	assert.False(t, byName["kernel"].OK)
	assert.Contains(t, byName["kernel"].Detail, "before 5.11")
	missing := Missing(cs)
	names := []string{}
	for _, c := range missing {
		names = append(names, c.Name)
	}
	assert.Subset(t, names, []string{"subuid", "subgid", "kernel"})
	assert.NotContains(t, names, "limits", "rlimits are a fallback, not a refusal")

	cs = Checks(User{UID: 1000, Name: "alice"}, WithKernelRelease("6.1.0"))
	for _, c := range cs {
		if c.Name == "kernel" {
			assert.True(t, c.OK)
		}
	}
}

func TestWithoutVars(t *testing.T) {
	t.Parallel()
	assert.Equal(t, []string{"A=1", "PWDX=2"}, withoutVars([]string{"A=1", "PWD=/x", "PWDX=2", "ROOTLESSKIT_STATE_DIR=/s"}, "PWD", "ROOTLESSKIT_STATE_DIR"))
}

func TestProcessDead(t *testing.T) {
	t.Parallel()
	assert.False(t, processDead(os.Getpid()))
	assert.True(t, processDead(1<<30), "no such pid")
}

func TestRemoveAllOwnedEntersClosedDirectories(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "run")
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "s"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "s", "sock"), nil, 0o600))
	require.NoError(t, os.Chmod(filepath.Join(dir, "s"), 0o600)) // as containerd leaves it
	require.NoError(t, removeAllOwned(dir))
	assert.NoDirExists(t, dir)
	assert.NoError(t, removeAllOwned(dir), "gone is fine")
}

func TestStartValidatesItsOptions(t *testing.T) {
	t.Parallel()
	p := Paths{Data: t.TempDir(), Run: filepath.Join(t.TempDir(), "skillbuild")}
	_, err := Start(context.Background(), p)
	assert.True(t, errdefs.IsInvalidArgument(err), "no child command: %v", err)
	_, err = Start(context.Background(), p, WithChild("skillbuild", "rootless", "child"))
	assert.True(t, errdefs.IsInvalidArgument(err), "a relative child: %v", err)
	_, err = Start(context.Background(), p, WithChild("/bin/true"), WithReadyTimeout(0))
	assert.True(t, errdefs.IsInvalidArgument(err), "zero timeout: %v", err)
	if os.Geteuid() == 0 {
		_, err = Start(context.Background(), p, WithChild("/bin/true"))
		assert.True(t, errdefs.IsFailedPrecondition(err), "root uses the system containerd: %v", err)
	}
}

func TestStatusAndStopOfAnInstanceThatNeverRan(t *testing.T) {
	t.Parallel()
	p := Paths{Data: t.TempDir(), Run: filepath.Join(t.TempDir(), "skillbuild")}
	st := StatusOf(context.Background(), p)
	assert.False(t, st.Running)
	assert.Equal(t, p.Socket(), st.Socket)
	res, err := Stop(context.Background(), p, time.Second)
	require.NoError(t, err)
	assert.False(t, res.Stopped)
	assert.Zero(t, res.Leftovers)
}

func TestReexecRefusesALoopAndAStoppedInstance(t *testing.T) {
	p := Paths{Data: t.TempDir(), Run: filepath.Join(t.TempDir(), "skillbuild")}
	err := Reexec(p, "/bin/true", nil, nil, "")
	assert.True(t, errdefs.IsUnavailable(err), "nothing runs: %v", err)
	assert.ErrorContains(t, err, "skillbuild rootless start")
	t.Setenv(reexecMarker, "1")
	err = Reexec(p, "/bin/true", nil, nil, "")
	assert.True(t, errdefs.IsFailedPrecondition(err), "already re-executed once: %v", err)
}

func TestRunUIDRange(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		uid, gid    string
		base, count uint32
	}{
		{"65536 subordinate ids", "0 1000 1\n1 100000 65536\n", "0 1000 1\n1 100000 65536\n", RunUIDLow, RunUIDHigh - RunUIDLow},
		{"a bigger range still stops below 65532", "0 1000 1\n1 100000 1000000\n", "0 1000 1\n1 100000 1000000\n", RunUIDLow, RunUIDHigh - RunUIDLow},
		{"fewer gids than uids", "0 1000 1\n1 100000 65536\n", "0 1000 1\n1 100000 40000\n", RunUIDLow, 40001 - RunUIDLow},
		{"too small a range", "0 1000 1\n1 100000 1000\n", "0 1000 1\n1 100000 1000\n", 0, 0},
		{"the host's identity map", "0 0 4294967295\n", "0 0 4294967295\n", RunUIDLow, RunUIDHigh - RunUIDLow},
		{"two extents, the larger wins", "0 1000 1\n1 100000 40000\n50000 300000 10000\n", "0 1000 1\n1 100000 65536\n", 50000, 10000},
	} {
		base, count, err := runUIDRange(strings.NewReader(tc.uid), strings.NewReader(tc.gid))
		require.NoError(t, err, tc.name)
		assert.Equal(t, tc.base, base, tc.name)
		assert.Equal(t, tc.count, count, tc.name)
	}
	_, _, err := runUIDRange(strings.NewReader("0 x 1\n"), strings.NewReader(""))
	assert.ErrorContains(t, err, "uid_map")
}
