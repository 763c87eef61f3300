package runtime

import (
	"context"
	"encoding/json"
	"os"
	goruntime "runtime"
	"slices"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/contrib/seccomp"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/runtime-spec/specs-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// spec applies opts on containerd's default spec, in memory.
func spec(t *testing.T, opts ...oci.SpecOpts) *oci.Spec {
	t.Helper()
	s, err := genSpec(opts...)
	require.NoError(t, err)
	return s
}

func genSpec(opts ...oci.SpecOpts) (*oci.Spec, error) {
	ctx := namespaces.WithNamespace(context.Background(), "test")
	return oci.GenerateSpec(ctx, nil, &containers.Container{ID: "sbrun-test"}, opts...)
}

func testPlan() specPlan {
	return specPlan{
		limits:     DefaultLimits(),
		env:        []string{"PATH=/opt/skill/venv/bin:/usr/bin:/bin", "LANG=C.UTF-8"},
		cwd:        "/opt/skill",
		imageUser:  "65532:65532",
		sandboxDir: "/var/lib/skillbuild/runs/sbrun-test/box",
		inDir:      "/var/lib/skillbuild/runs/sbrun-test/in",
		hostname:   "skill",
		init: initBinary{
			exe:    "/usr/local/bin/skillbuild",
			loader: "/lib64/ld-linux-x86-64.so.2",
			libs:   map[string]string{"libc.so.6": "/usr/lib/x86_64-linux-gnu/libc.so.6"},
		},
	}
}

func mountAt(s *oci.Spec, dest string) *specs.Mount {
	for i := range s.Mounts {
		if s.Mounts[i].Destination == dest {
			return &s.Mounts[i]
		}
	}
	return nil
}

func TestSpecOptsHardenedSpec(t *testing.T) {
	t.Parallel()
	s := spec(t, specOpts(testPlan())...)

	assert.Equal(t, []string{
		"/run/skillbuild-init/lib/ld-linux-x86-64.so.2", "--library-path", "/run/skillbuild-init/lib",
		"/run/skillbuild-init/init", "--timeout=30s", "--report=/run/skillbuild/report", "--",
		"python3", "-B", "/run/skillbuild/runner.py", "/run/skillbuild/code.py", "@skillbuild-report",
	}, s.Process.Args, "the runner under the init, which holds the deadline; a dynamically linked init through its own loader")
	assert.Equal(t, []string{"PATH=/opt/skill/venv/bin:/usr/bin:/bin", "LANG=C.UTF-8", "HOME=/tmp"}, s.Process.Env, "the image's environment and HOME, nothing of the host's")
	assert.Equal(t, "/opt/skill", s.Process.Cwd)
	assert.Equal(t, specs.User{UID: 65532, GID: 65532, AdditionalGids: []uint32{65532}}, s.Process.User)
	assert.Equal(t, "skill", s.Hostname)

	assert.True(t, s.Root.Readonly, "read-only rootfs")
	if m := mountAt(s, "/tmp"); assert.NotNil(t, m) {
		assert.Equal(t, "tmpfs", m.Type)
		assert.Subset(t, m.Options, []string{"nosuid", "nodev", "noexec", "size=67108864"})
	}
	if m := mountAt(s, "/dev/shm"); assert.NotNil(t, m) {
		assert.Contains(t, m.Options, "size=65536k")
	}
	if m := mountAt(s, "/run/skillbuild"); assert.NotNil(t, m) {
		assert.Equal(t, "bind", m.Type)
		assert.Equal(t, "/var/lib/skillbuild/runs/sbrun-test/box", m.Source)
		assert.Subset(t, m.Options, []string{"ro", "nosuid", "nodev", "noexec"})
	}
	for dest, src := range map[string]string{
		"/run/skillbuild-init/init":                     "/usr/local/bin/skillbuild",
		"/run/skillbuild-init/lib/ld-linux-x86-64.so.2": "/lib64/ld-linux-x86-64.so.2",
		"/run/skillbuild-init/lib/libc.so.6":            "/usr/lib/x86_64-linux-gnu/libc.so.6",
	} {
		if m := mountAt(s, dest); assert.NotNil(t, m, dest) {
			assert.Equal(t, src, m.Source)
			assert.Subset(t, m.Options, []string{"ro", "nosuid", "nodev"})
			assert.NotContains(t, m.Options, "noexec", "the init is executed")
		}
	}
	runIdx := slices.IndexFunc(s.Mounts, func(m specs.Mount) bool { return m.Destination == "/run" })
	boxIdx := slices.IndexFunc(s.Mounts, func(m specs.Mount) bool { return m.Destination == SandboxDir })
	assert.Less(t, runIdx, boxIdx, "the sandbox mountpoint is created on /run's tmpfs, so /run comes first")

	res := s.Linux.Resources
	require.NotNil(t, res.Memory)
	assert.Equal(t, int64(256<<20), *res.Memory.Limit)
	assert.Equal(t, int64(256<<20), *res.Memory.Swap, "memory+swap equals memory: no swap")
	assert.Equal(t, int64(50000), *res.CPU.Quota)
	assert.Equal(t, uint64(100000), *res.CPU.Period)
	assert.Equal(t, int64(64), *res.Pids.Limit)
	assert.ElementsMatch(t, []specs.POSIXRlimit{
		{Type: "RLIMIT_NOFILE", Hard: 1024, Soft: 1024},
		{Type: "RLIMIT_FSIZE", Hard: 64<<20 + 1<<20, Soft: 64<<20 + 1<<20},
		{Type: "RLIMIT_CORE", Hard: 0, Soft: 0},
	}, s.Process.Rlimits)

	assert.True(t, s.Process.NoNewPrivileges)
	caps := s.Process.Capabilities
	require.NotNil(t, caps, "a nil capabilities section would leave the runtime's defaults")
	assert.Empty(t, caps.Bounding)
	assert.Empty(t, caps.Effective)
	assert.Empty(t, caps.Permitted)
	assert.Empty(t, caps.Inheritable)
	assert.Empty(t, caps.Ambient)
	require.NotNil(t, s.Linux.Seccomp)
	assert.Equal(t, specs.ActErrno, s.Linux.Seccomp.DefaultAction)
	assert.False(t, allowsSyscall(s.Linux.Seccomp, "mount"), "the profile was computed without CAP_SYS_ADMIN")
	assert.Subset(t, s.Linux.MaskedPaths, []string{"/proc/kcore", "/proc/keys", "/proc/interrupts", "/sys/firmware"})

	i := slices.IndexFunc(s.Linux.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == specs.NetworkNamespace })
	require.GreaterOrEqual(t, i, 0, "own network namespace")
	assert.Empty(t, s.Linux.Namespaces[i].Path, "a new namespace, not an existing one")
	for _, ns := range []specs.LinuxNamespaceType{specs.PIDNamespace, specs.MountNamespace, specs.IPCNamespace, specs.UTSNamespace} {
		assert.True(t, slices.ContainsFunc(s.Linux.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == ns && n.Path == "" }), "namespace %s", ns)
	}
	assert.Empty(t, s.Linux.Devices, "no devices beyond the runtime's defaults")
}

func TestWithOwnUID(t *testing.T) {
	t.Parallel()
	const own = RunUIDBase + 7
	for _, tc := range []struct {
		name                string
		imageUser, explicit string
		uid, gid            uint32
	}{
		{name: "no USER: the run's own uid", uid: own, gid: own},
		{name: "USER root: the run's own uid", imageUser: "0:0", uid: own, gid: own},
		{name: "USER 65532 of skillbuild's images: the run's own uid", imageUser: "65532:65532", uid: own, gid: own},
		{name: "another USER is kept", imageUser: "1000:1000", uid: 1000, gid: 1000},
		{name: "an explicit 65532 is kept", explicit: "65532:65532", uid: 65532, gid: 65532},
		{name: "explicit root is kept", explicit: "0:0", uid: 0, gid: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var got specs.User
			s := spec(t, WithRunUser(tc.imageUser, tc.explicit), withOwnUID(own, tc.explicit), recordUser(&got))
			assert.Equal(t, tc.uid, s.Process.User.UID)
			assert.Equal(t, tc.gid, s.Process.User.GID)
			assert.Equal(t, []uint32{tc.gid}, s.Process.User.AdditionalGids, "its own group only")
			assert.Equal(t, s.Process.User, got, "recorded for the result")
		})
	}
	s := spec(t, WithRunUser("", ""), withOwnUID(0, ""))
	assert.Equal(t, uint32(DefaultUID), s.Process.User.UID, "no own uid: the shared default")
}

func TestWithInitStatic(t *testing.T) {
	t.Parallel()
	s := spec(t, oci.WithProcessArgs("python3", "x"), withInit(initBinary{exe: "/sb"}, 5*time.Second, 0))
	assert.Equal(t, []string{"/run/skillbuild-init/init", "--timeout=5s", "--report=/run/skillbuild/report", "--", "python3", "x"}, s.Process.Args, "a static init needs no loader")
	assert.Nil(t, mountAt(s, "/run/skillbuild-init/lib/ld-linux-x86-64.so.2"))
	s = spec(t, oci.WithProcessArgs("python3", "x"), withInit(initBinary{exe: "/sb"}, 5*time.Second, time.Minute))
	assert.Equal(t, []string{"/run/skillbuild-init/init", "--wait-job=1m0s", "--report=/run/skillbuild/report", "--", "python3", "x"}, s.Process.Args, "a warm init waits for its job's timeout, and watches the report FIFO for its host's end")
	_, err := genSpec(withInit(initBinary{}, time.Second, 0))
	assert.ErrorIs(t, err, errdefs.ErrInvalidArgument)
}

// TestFindInit reads this test binary as a run's init: its loader and
// every library it needs are found, as the files this process runs with.
func TestFindInit(t *testing.T) {
	t.Parallel()
	b, err := findInit(t.TempDir())
	require.NoError(t, err)
	exe, err := os.Executable()
	require.NoError(t, err)
	assert.Equal(t, exe, b.exe)
	if b.loader == "" {
		assert.Empty(t, b.libs, "a static binary needs nothing else")
		return
	}
	assert.FileExists(t, b.loader)
	require.NotEmpty(t, b.libs, "a dynamically linked Go program needs at least libc")
	for name, p := range b.libs {
		assert.FileExists(t, p, name)
	}
}

func allowsSyscall(p *specs.LinuxSeccomp, name string) bool {
	for _, sc := range p.Syscalls {
		if sc.Action == specs.ActAllow && slices.Contains(sc.Names, name) {
			return true
		}
	}
	return false
}

func TestSeccompComesAfterCapabilities(t *testing.T) {
	t.Parallel()
	// The default profile follows the capabilities it sees: computed with
	// CAP_SYS_ADMIN it allows mount, which is why it must come after
	// WithoutCapabilities in specOpts.
	s := spec(t, oci.WithAddedCapabilities([]string{"CAP_SYS_ADMIN"}), seccomp.WithDefaultProfile())
	assert.True(t, allowsSyscall(s.Linux.Seccomp, "mount"))
	s = spec(t, oci.WithAddedCapabilities([]string{"CAP_SYS_ADMIN"}), WithoutCapabilities(), seccomp.WithDefaultProfile())
	assert.False(t, allowsSyscall(s.Linux.Seccomp, "mount"))
}

func TestWithNativeSeccompArch(t *testing.T) {
	t.Parallel()
	s := spec(t, seccomp.WithDefaultProfile())
	require.Greater(t, len(s.Linux.Seccomp.Architectures), 1, "containerd's default lists the compat ABIs too")
	rules := len(s.Linux.Seccomp.Syscalls)
	s = spec(t, seccomp.WithDefaultProfile(), WithNativeSeccompArch())
	if native, ok := nativeSeccompArch[goruntime.GOARCH]; ok {
		assert.Equal(t, []specs.Arch{native}, s.Linux.Seccomp.Architectures)
	}
	assert.Len(t, s.Linux.Seccomp.Syscalls, rules, "the allowlist itself is unchanged")
	assert.Equal(t, specs.ActErrno, s.Linux.Seccomp.DefaultAction)
	// In the run's spec.
	s = spec(t, specOpts(testPlan())...)
	if native, ok := nativeSeccompArch[goruntime.GOARCH]; ok {
		assert.Equal(t, []specs.Arch{native}, s.Linux.Seccomp.Architectures)
	}
}

func TestWithRunUser(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name                string
		imageUser, explicit string
		uid, gid            uint32
	}{
		{name: "image without USER", uid: DefaultUID, gid: DefaultGID},
		{name: "image USER", imageUser: "1000:1001", uid: 1000, gid: 1001},
		{name: "image USER root is refused", imageUser: "0:0", uid: DefaultUID, gid: DefaultGID},
		{name: "explicit user wins", imageUser: "1000:1000", explicit: "2000:3000", uid: 2000, gid: 3000},
		{name: "explicit root: the caller insists", explicit: "0:0", uid: 0, gid: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// The default spec runs as root with root's groups.
			s := spec(t, oci.WithUIDGID(0, 0), WithRunUser(tc.imageUser, tc.explicit))
			assert.Equal(t, tc.uid, s.Process.User.UID)
			assert.Equal(t, tc.gid, s.Process.User.GID)
			assert.Equal(t, []uint32{tc.gid}, s.Process.User.AdditionalGids, "primary group only")
		})
	}
}

func TestWithImageEnv(t *testing.T) {
	t.Parallel()
	s := spec(t, oci.WithEnv([]string{"SECRET=host"}), WithImageEnv([]string{"LANG=C.UTF-8"}))
	assert.Equal(t, []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"}, s.Process.Env)
	s = spec(t, WithImageEnv([]string{"PATH=/venv/bin", "A=b"}))
	assert.Equal(t, []string{"PATH=/venv/bin", "A=b"}, s.Process.Env)
}

func TestWithTmpfs(t *testing.T) {
	t.Parallel()
	s := spec(t, WithTmpfs("/tmp", 1<<20), WithTmpfs("/tmp/", 2<<20))
	n := 0
	for _, m := range s.Mounts {
		if m.Destination == "/tmp" || m.Destination == "/tmp/" {
			n++
			assert.Contains(t, m.Options, "size=2097152")
		}
	}
	assert.Equal(t, 1, n, "the second mount replaces the first")
	_, err := genSpec(WithTmpfs("/tmp", 0))
	assert.ErrorIs(t, err, errdefs.ErrInvalidArgument)
}

func TestWithSandboxMount(t *testing.T) {
	t.Parallel()
	s := spec(t, WithSandboxMount("/a"), WithSandboxMount("/b"))
	m := mountAt(s, SandboxDir)
	require.NotNil(t, m)
	assert.Equal(t, "/b", m.Source)
	assert.Equal(t, []string{"rbind", "ro", "nosuid", "nodev", "noexec"}, m.Options)
	_, err := genSpec(WithSandboxMount(""))
	assert.ErrorIs(t, err, errdefs.ErrInvalidArgument)
}

func TestWithDataMounts(t *testing.T) {
	t.Parallel()
	s := spec(t, WithDataMounts("/state/in", 5<<20))
	in := mountAt(s, InDir)
	require.NotNil(t, in)
	assert.Equal(t, "/state/in", in.Source)
	assert.Equal(t, []string{"rbind", "ro", "nosuid", "nodev", "noexec"}, in.Options)
	out := mountAt(s, OutDir)
	require.NotNil(t, out)
	assert.Equal(t, "tmpfs", out.Type)
	assert.Equal(t, []string{"nosuid", "nodev", "noexec", "mode=1777", "size=5242880"}, out.Options)
	_, err := genSpec(WithDataMounts("", 1<<20))
	assert.ErrorIs(t, err, errdefs.ErrInvalidArgument)

	// The run's spec has them, OutDir no larger than what can come back.
	l := DefaultLimits()
	l.TmpfsBytes = 1 << 30
	assert.Equal(t, int64(MaxOutBytes+outSlack), outTmpfsSize(l))
	l.TmpfsBytes = 2 << 20
	assert.Equal(t, int64(2<<20), outTmpfsSize(l))
}

func TestWithMemory(t *testing.T) {
	t.Parallel()
	s := spec(t, WithMemory(64<<20))
	assert.Equal(t, int64(64<<20), *s.Linux.Resources.Memory.Limit)
	assert.Equal(t, int64(64<<20), *s.Linux.Resources.Memory.Swap)
	_, err := genSpec(WithMemory(0))
	assert.ErrorIs(t, err, errdefs.ErrInvalidArgument)
}

func TestWithCPUQuota(t *testing.T) {
	t.Parallel()
	for cpus, quota := range map[float64]int64{0.5: 50000, 2: 200000, 0.25: 25000, 0.001: 1000} {
		s := spec(t, WithCPUQuota(cpus))
		assert.Equal(t, quota, *s.Linux.Resources.CPU.Quota, "cpus %g", cpus)
		assert.Equal(t, uint64(cfsPeriod), *s.Linux.Resources.CPU.Period)
	}
	_, err := genSpec(WithCPUQuota(-1))
	assert.ErrorIs(t, err, errdefs.ErrInvalidArgument)
}

func TestWithoutCapabilities(t *testing.T) {
	t.Parallel()
	s := spec(t, oci.WithAmbientCapabilities([]string{"CAP_NET_RAW"}), WithoutCapabilities())
	b, err := json.Marshal(s.Process)
	require.NoError(t, err)
	assert.Contains(t, string(b), `"capabilities":{}`, "present and empty: every set dropped")
}

func TestWithMaskedPaths(t *testing.T) {
	t.Parallel()
	def := spec(t)
	s := spec(t, WithMaskedPaths("/proc/kcore", "/proc/extra"))
	assert.Equal(t, append(slices.Clone(def.Linux.MaskedPaths), "/proc/extra"), s.Linux.MaskedPaths, "defaults kept, no duplicates")
}

func TestWithPrivateNetwork(t *testing.T) {
	t.Parallel()
	for name, before := range map[string]oci.SpecOpts{
		"host namespace dropped": oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: "/proc/1/ns/net"}),
		"namespace added back":   oci.WithHostNamespace(specs.NetworkNamespace),
		"default namespace kept": func(context.Context, oci.Client, *containers.Container, *oci.Spec) error { return nil },
	} {
		s := spec(t, before, WithPrivateNetwork())
		var nets []specs.LinuxNamespace
		for _, n := range s.Linux.Namespaces {
			if n.Type == specs.NetworkNamespace {
				nets = append(nets, n)
			}
		}
		assert.Equal(t, []specs.LinuxNamespace{{Type: specs.NetworkNamespace}}, nets, name)
	}
}

func TestLimitsWithDefaults(t *testing.T) {
	t.Parallel()
	l, err := withDefaults(Limits{})
	require.NoError(t, err)
	assert.Equal(t, DefaultLimits(), l)
	l, err = withDefaults(Limits{MemoryBytes: 64 << 20, Timeout: time.Second})
	require.NoError(t, err)
	assert.Equal(t, int64(64<<20), l.MemoryBytes)
	assert.Equal(t, time.Second, l.Timeout)
	assert.Equal(t, int64(64), l.Pids)
	for _, bad := range []Limits{{MemoryBytes: -1}, {Timeout: -time.Second}, {MemoryBytes: 1 << 20}, {Pids: 1}, {TmpfsBytes: 1000}} {
		_, err := withDefaults(bad)
		assert.ErrorIs(t, err, errdefs.ErrInvalidArgument, "%+v", bad)
	}
}
