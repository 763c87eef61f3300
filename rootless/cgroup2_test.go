package rootless

import (
	"os"
	"path/filepath"
	"strings"
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
