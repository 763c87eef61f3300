package skill

import (
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/skillbuild/skillbuild/config"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCeilingsRefuseWhatTheOperatorDidNotAllow(t *testing.T) {
	t.Parallel()
	ceil := Ceilings{Limits: config.RunLimits{MemoryBytes: 1 << 30, CPUs: 2, Pids: 256, Timeout: 2 * time.Minute, TmpfsBytes: 256 << 20, OutputLimitBytes: 4 << 20}}
	within := config.RunLimits{MemoryBytes: 256 << 20, CPUs: 0.5, Pids: 64, Timeout: 30 * time.Second, TmpfsBytes: 64 << 20, OutputLimitBytes: 1 << 20}
	s, err := New(WithCeilings(ceil))
	require.NoError(t, err)
	assert.NoError(t, s.checkCeilings(within, ""))
	assert.NoError(t, s.checkCeilings(ceil.Limits, "1000:1000"), "the ceiling itself is allowed")
	for _, tc := range []struct {
		name   string
		change func(*config.RunLimits)
		user   string
		want   string
	}{
		{"memory", func(l *config.RunLimits) { l.MemoryBytes = 1000 << 30 }, "", "--max-memory"},
		{"cpus", func(l *config.RunLimits) { l.CPUs = 64 }, "", "--max-cpus"},
		{"pids", func(l *config.RunLimits) { l.Pids = 1000000 }, "", "--max-pids"},
		{"timeout", func(l *config.RunLimits) { l.Timeout = 100000 * time.Hour }, "", "--max-timeout"},
		{"tmpfs", func(l *config.RunLimits) { l.TmpfsBytes = 10 << 30 }, "", "--max-tmpfs-size"},
		{"output", func(l *config.RunLimits) { l.OutputLimitBytes = 1 << 30 }, "", "--max-output-limit"},
		{"uid 0", func(*config.RunLimits) {}, "0", "uid 0"},
		{"uid 0 with a group", func(*config.RunLimits) {}, "000:1000", "uid 0"},
		{"a name the image resolves", func(*config.RunLimits) {}, "root", "numeric"},
	} {
		l := within
		tc.change(&l)
		err := s.checkCeilings(l, tc.user)
		assert.ErrorIs(t, err, errdefs.ErrInvalidArgument, tc.name)
		assert.ErrorContains(t, err, tc.want, tc.name)
	}

	root, err := New(WithCeilings(Ceilings{Limits: ceil.Limits, AllowRoot: true}))
	require.NoError(t, err)
	assert.NoError(t, root.checkCeilings(within, "0"), "--allow-root-user")
	none, err := New()
	require.NoError(t, err)
	assert.NoError(t, none.checkCeilings(config.RunLimits{MemoryBytes: 1000 << 30}, "0"), "the command line has no ceilings")
}

// TestCeilingsRuntimes: a server runs only the runtimes its operator
// listed (serve --runtimes), all of them when the list is empty.
func TestCeilingsRuntimes(t *testing.T) {
	t.Parallel()
	only, err := New(WithCeilings(Ceilings{Runtimes: []string{config.RuntimeGVisor}}))
	require.NoError(t, err)
	assert.NoError(t, only.checkCeilings(config.RunLimits{Runtime: config.RuntimeGVisor}, ""))
	err = only.checkCeilings(config.RunLimits{Runtime: config.RuntimeRunc}, "")
	assert.ErrorIs(t, err, errdefs.ErrInvalidArgument)
	assert.ErrorContains(t, err, "serve --runtimes")

	all, err := New(WithCeilings(Ceilings{}))
	require.NoError(t, err)
	for _, r := range config.Runtimes {
		assert.NoError(t, all.checkCeilings(config.RunLimits{Runtime: r}, ""), r)
	}

	_, err = New(WithCeilings(Ceilings{Runtimes: []string{"kata"}}))
	assert.ErrorIs(t, err, errdefs.ErrInvalidArgument, "an unknown runtime in the list")
}
