package rootless

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// These tests run on a fake cgroup2 tree (plain files): this host's
// cgroup v1 cannot show systemd's delegation.

func TestDetectV2(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	me := os.Geteuid()
	lm := detectV2(root, 1000, me)
	assert.False(t, lm.Cgroups)
	assert.Equal(t, 2, lm.Version)
	assert.Contains(t, lm.Reason, "skillbuild rootless setup", "no unit: says how to get one")

	cg := "/user.slice/user-1000.slice/user@1000.service/app.slice/" + UnitName
	dir := filepath.Join(root, cg)
	require.NoError(t, os.MkdirAll(dir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte("memory pids\n"), 0o644))
	lm = detectV2(root, 1000, me)
	assert.False(t, lm.Cgroups)
	assert.Contains(t, lm.Reason, "controller cpu is not enabled", "every limit needs its controller")

	require.NoError(t, os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte("cpu memory pids\n"), 0o644))
	lm = detectV2(root, 1000, me)
	assert.Equal(t, LimitMode{Cgroups: true, Version: 2, Parent: cg}, lm)

	lm = detectV2(root, 1000, me+1)
	assert.False(t, lm.Cgroups, "a cgroup the user does not own is no delegation")
	assert.Contains(t, lm.Reason, "Delegate=yes")

	// Older systemd: user units directly below user@UID.service.
	root2 := t.TempDir()
	cg2 := "/user.slice/user-7.slice/user@7.service/" + UnitName
	require.NoError(t, os.MkdirAll(filepath.Join(root2, cg2), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(root2, cg2, "cgroup.subtree_control"), []byte("cpuset cpu io memory pids\n"), 0o644))
	assert.Equal(t, LimitMode{Cgroups: true, Version: 2, Parent: cg2}, detectV2(root2, 7, me))
}

func TestOwnCgroupV2(t *testing.T) {
	t.Parallel()
	cg, err := ownCgroupV2(strings.NewReader("12:pids:/x\n0::/user.slice/user-1000.slice/user@1000.service/app.slice/" + UnitName + "\n"))
	require.NoError(t, err)
	assert.Equal(t, "/user.slice/user-1000.slice/user@1000.service/app.slice/"+UnitName, cg)
	_, err = ownCgroupV2(strings.NewReader("4:memory:/\n"))
	assert.Error(t, err)
}

func TestEvacuateV2(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	cg := "/user.slice/user-1000.slice/user@1000.service/app.slice/" + UnitName
	dir := filepath.Join(root, cg)
	require.NoError(t, os.MkdirAll(dir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "cgroup.controllers"), []byte("cpu io memory pids\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), nil, 0o644))

	require.NoError(t, evacuateV2(root, cg, 4242))
	b, err := os.ReadFile(filepath.Join(dir, supervisorCgroup, "cgroup.procs"))
	require.NoError(t, err)
	assert.Equal(t, "4242", string(b), "the unit's main process moves into a leaf")
	b, err = os.ReadFile(filepath.Join(dir, "cgroup.subtree_control"))
	require.NoError(t, err)
	assert.Equal(t, "+cpu +memory +pids", string(b), "containers below the unit's cgroup get the limits' controllers")

	other := "/user.slice/user-1000.slice/session-3.scope"
	require.NoError(t, evacuateV2(root, other, 4242), "outside the unit: nothing to do")
	assert.NoDirExists(t, filepath.Join(root, other, supervisorCgroup))

	require.NoError(t, os.WriteFile(filepath.Join(dir, "cgroup.controllers"), []byte("io\n"), 0o644))
	assert.ErrorContains(t, evacuateV2(root, cg, 4242), "delegated none")
}

// fakeCgroup2 makes dir look like a cgroup2 directory: the files
// delegateV2 and detectV2 read and write.
func fakeCgroup2(t *testing.T, dir, controllers, subtree string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(dir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "cgroup.controllers"), []byte(controllers), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte(subtree), 0o644))
	for _, f := range []string{"cgroup.procs", "cgroup.threads"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, f), nil, 0o644))
	}
}

func TestDelegateV2(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	me, gid := os.Geteuid(), os.Getegid()
	fakeCgroup2(t, root, "cpuset cpu io memory pids\n", "memory\n")
	// cgroupfs fills a new cgroup with its files; a fake one needs them
	// made in advance.
	sub := filepath.Join(root, DelegatedName(me))
	fakeCgroup2(t, sub, "cpu memory pids\n", "")
	fakeCgroup2(t, filepath.Join(sub, supervisorCgroup), "", "")

	require.NoError(t, delegateV2(root, me, gid, delegateFiles([]byte("cgroup.procs\ncgroup.threads\ncgroup.subtree_control\nmemory.oom.group\n"))))
	b, err := os.ReadFile(filepath.Join(root, "cgroup.subtree_control"))
	require.NoError(t, err)
	assert.Equal(t, "+cpu +pids", string(b), "the controllers not yet enabled at the root are, so the subtree has them")
	b, err = os.ReadFile(filepath.Join(sub, "cgroup.subtree_control"))
	require.NoError(t, err)
	assert.Equal(t, "+cpu +memory +pids", string(b), "cgroups below the subtree get every limit's controller")
	// What cgroupfs shows after that write.
	require.NoError(t, os.WriteFile(filepath.Join(sub, "cgroup.subtree_control"), []byte("cpu memory pids\n"), 0o644))

	lm := detectV2(root, me, me)
	assert.False(t, lm.Cgroups, "delegated, but no daemon lives in it yet")
	assert.Contains(t, lm.Reason, "only root move a process", "it says why the user cannot fix it alone")
	assert.Contains(t, lm.Reason, "rootless setup --user")

	require.NoError(t, os.WriteFile(filepath.Join(sub, supervisorCgroup, "cgroup.procs"), []byte("4242\n"), 0o644))
	assert.Equal(t, LimitMode{Cgroups: true, Version: 2, Parent: "/" + DelegatedName(me)}, detectV2(root, me, me))
	assert.False(t, detectV2(root, me, me+1).Cgroups, "a subtree another uid owns is not delegated to this one")

	require.NoError(t, os.WriteFile(filepath.Join(sub, "cgroup.subtree_control"), []byte("memory pids\n"), 0o644))
	lm = detectV2(root, me, me)
	assert.False(t, lm.Cgroups)
	assert.Contains(t, lm.Reason, "controller cpu is not enabled")
}

func TestDelegateV2Chowns(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("handing files to another uid needs root")
	}
	root := t.TempDir()
	fakeCgroup2(t, root, "cpu memory pids\n", "cpu memory pids\n")
	sub := filepath.Join(root, DelegatedName(4321))
	fakeCgroup2(t, sub, "cpu memory pids\n", "")
	fakeCgroup2(t, filepath.Join(sub, supervisorCgroup), "", "")
	require.NoError(t, os.WriteFile(filepath.Join(sub, "memory.max"), nil, 0o644))
	require.NoError(t, delegateV2(root, 4321, 4322, []string{"cgroup.procs", "cgroup.threads", "cgroup.subtree_control", "memory.reclaim"}))
	owner := func(p string) [2]uint32 {
		st, err := os.Stat(p)
		require.NoError(t, err)
		s := st.Sys().(*syscall.Stat_t)
		return [2]uint32{s.Uid, s.Gid}
	}
	user := [2]uint32{4321, 4322}
	for _, d := range []string{sub, filepath.Join(sub, supervisorCgroup)} {
		assert.Equal(t, user, owner(d), d)
		for _, f := range []string{"cgroup.procs", "cgroup.threads", "cgroup.subtree_control"} {
			assert.Equal(t, user, owner(filepath.Join(d, f)), "%s/%s", d, f)
		}
		assert.NoFileExists(t, filepath.Join(d, "memory.reclaim"), "a listed file the cgroup lacks is skipped, not made")
	}
	assert.Equal(t, [2]uint32{0, 0}, owner(filepath.Join(sub, "memory.max")), "the subtree's own limits stay root's: they share out the parent's resources")
	assert.Equal(t, [2]uint32{0, 0}, owner(filepath.Join(root, "cgroup.procs")), "nothing above the subtree changes owner")
}

func TestDelegateV2MissingController(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	fakeCgroup2(t, root, "cpu memory\n", "")
	err := delegateV2(root, 1000, os.Getegid(), defaultDelegateFiles)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no pids controller")
	assert.NoDirExists(t, filepath.Join(root, DelegatedName(1000)), "nothing is made when a limit cannot hold")
}

func TestDelegateFiles(t *testing.T) {
	t.Parallel()
	assert.Equal(t, defaultDelegateFiles, delegateFiles(nil), "kernels without the list: the three files of cgroup-v2.rst")
	assert.Equal(t, []string{"cgroup.procs", "memory.reclaim"}, delegateFiles([]byte("cgroup.procs\nmemory.reclaim\n")))
}

func TestParentPid(t *testing.T) {
	t.Parallel()
	p, ok := parentPid(os.Getpid())
	require.True(t, ok)
	assert.Equal(t, os.Getppid(), p)
}
