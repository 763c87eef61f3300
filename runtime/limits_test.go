package runtime

import (
	"testing"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"
	"github.com/skillbuild/skillbuild/runtime/pid1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func rlimit(s *specs.Spec, typ string) *specs.POSIXRlimit {
	for i := range s.Process.Rlimits {
		if s.Process.Rlimits[i].Type == typ {
			return &s.Process.Rlimits[i]
		}
	}
	return nil
}

func TestSpecOptsRlimitModeHasNoCgroupAndEveryLimitAsRlimit(t *testing.T) {
	t.Parallel()
	p := testPlan()
	p.limits = Limits{MemoryBytes: 128 << 20, CPUs: 0.5, Pids: 16, Timeout: 9 * time.Second, TmpfsBytes: 1 << 20, OutputLimitBytes: 1 << 20}
	p.limitMode = rlimitLimits
	s := spec(t, specOpts(p)...)

	// A rootless runc without delegation cannot create a cgroup: the spec
	// must name none and set no resources, or runc fails.
	assert.Nil(t, s.Linux.Resources)
	assert.Empty(t, s.Linux.CgroupsPath)
	if r := rlimit(s, "RLIMIT_NPROC"); assert.NotNil(t, r) {
		assert.Equal(t, specs.POSIXRlimit{Type: "RLIMIT_NPROC", Hard: 16, Soft: 16}, *r)
	}
	if r := rlimit(s, "RLIMIT_CPU"); assert.NotNil(t, r) {
		assert.Equal(t, specs.POSIXRlimit{Type: "RLIMIT_CPU", Hard: 6, Soft: 5}, *r, "SIGXCPU at cpus × timeout, SIGKILL a second later")
	}
	// Memory is the runner's RLIMIT_AS: runc's own init cannot live under
	// it, so it is an argument of the runner, not a spec rlimit.
	assert.Nil(t, rlimit(s, "RLIMIT_AS"))
	assert.Equal(t, "--rlimit-as=134217728", s.Process.Args[len(s.Process.Args)-1])
	// The other rlimits and the hardening stay.
	assert.NotNil(t, rlimit(s, "RLIMIT_NOFILE"))
	assert.NotNil(t, s.Linux.Seccomp)
	assert.True(t, s.Root.Readonly)
}

func TestSpecOptsCgroupModesKeepResources(t *testing.T) {
	t.Parallel()
	s := spec(t, specOpts(testPlan())...)
	require.NotNil(t, s.Linux.Resources)
	assert.Equal(t, "/test/sbrun-test", s.Linux.CgroupsPath, "containerd's default place")
	assert.Nil(t, rlimit(s, "RLIMIT_CPU"))
	assert.Equal(t, pid1.ReportSocket, s.Process.Args[len(s.Process.Args)-1], "no memory argument for the runner")

	p := testPlan()
	p.cgroupParent = "/skillbuild-u1000"
	s = spec(t, specOpts(p)...)
	require.NotNil(t, s.Linux.Resources.Memory)
	assert.Equal(t, "/skillbuild-u1000/test/sbrun-test", s.Linux.CgroupsPath)
}

func TestRlimitsNeedPositiveLimits(t *testing.T) {
	t.Parallel()
	_, err := genSpec(WithRlimitsInsteadOfCgroups(Limits{MemoryBytes: 1 << 20, CPUs: 1}))
	assert.ErrorContains(t, err, "rlimits need positive")
}

func TestLimitModeEnforced(t *testing.T) {
	t.Parallel()
	assert.Equal(t, map[string]string{"memory": "cgroup", "cpus": "cgroup", "pids": "cgroup"}, cgroupLimits.enforced())
	assert.Equal(t, map[string]string{"memory": "rlimit", "cpus": "rlimit", "pids": "rlimit"}, rlimitLimits.enforced())
}

func TestWithCgroupParentNeedsAbsolutePath(t *testing.T) {
	t.Parallel()
	var o options
	assert.Error(t, WithCgroupParent("relative")(&o))
	require.NoError(t, WithCgroupParent("/skillbuild-u1000/")(&o))
	assert.Equal(t, "/skillbuild-u1000", o.cgroupParent)
}
