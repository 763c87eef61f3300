package runtime

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestParseMemoryCgroup(t *testing.T) {
	t.Parallel()
	hybrid := `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`
	assert.Equal(t, memoryCgroup{dir: "/sys/fs/cgroup/memory"}, parseMemoryCgroup([]byte(hybrid)))
	v2 := "29 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
	assert.Equal(t, memoryCgroup{dir: "/sys/fs/cgroup", v2: true}, parseMemoryCgroup([]byte(v2)))
	// A mount of a subtree (a container's view) is not the root: paths
	// would not resolve against it.
	sub := "35 31 0:32 /docker/abc /sys/fs/cgroup/memory ro - cgroup cgroup rw,memory\n"
	assert.Equal(t, memoryCgroup{}, parseMemoryCgroup([]byte(sub)))
	assert.Equal(t, memoryCgroup{}, parseMemoryCgroup(nil))
}

func TestOOMKillCount(t *testing.T) {
	t.Parallel()
	n, ok := oomKillCount([]byte("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n"))
	assert.True(t, ok)
	assert.Equal(t, uint64(3), n)
	n, ok = oomKillCount([]byte("low 0\nhigh 0\nmax 2\noom 1\noom_kill 0\n"))
	assert.True(t, ok)
	assert.Equal(t, uint64(0), n)
	_, ok = oomKillCount([]byte("oom_kill_disable 0\nunder_oom 0\n"))
	assert.False(t, ok, "an old kernel without the counter: ask the shim")
}

func TestOOMKilledFromFileRefusesOtherPaths(t *testing.T) {
	t.Parallel()
	for _, p := range []string{"", "relative/path", "system.slice:skillbuild:abc", "/no/such/cgroup/sbrun-x"} {
		_, ok := oomKilledFromFile(p)
		assert.False(t, ok, p)
	}
}
