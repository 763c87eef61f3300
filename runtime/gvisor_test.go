package runtime

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/runtime-spec/specs-go"
	"github.com/skillbuild/skillbuild/runtime/pid1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestGVisorSpec: a gVisor run's spec is runc's but for what runsc needs
// (gvisorSpecOpts): the init starts as root with the three capabilities
// to start the runner as the run's user, the pids limit moves to
// RLIMIT_NPROC with a host backstop, and clone3 goes to the sentry.
func TestGVisorSpec(t *testing.T) {
	t.Parallel()
	runc := spec(t, specOpts(testPlan())...)
	p := testPlan()
	p.limits.Runtime = RuntimeGVisor
	p.runUID = 200123
	gv := spec(t, specOpts(p)...)

	sep := slices.Index(gv.Process.Args, "--")
	require.Positive(t, sep)
	assert.Equal(t, pid1.UserArg(200123, 200123), gv.Process.Args[sep-1], "the runner runs as the run's own user")
	assert.Equal(t, slices.Delete(slices.Clone(gv.Process.Args), sep-1, sep), runc.Process.Args, "and nothing else of the argv changes")
	assert.Equal(t, specs.User{UID: 0, GID: 0, AdditionalGids: []uint32{0}}, gv.Process.User, "the init starts as root")
	assert.Equal(t, initCaps, gv.Process.Capabilities.Bounding)
	assert.Equal(t, initCaps, gv.Process.Capabilities.Effective)
	assert.Empty(t, gv.Process.Capabilities.Ambient)
	assert.Empty(t, gv.Process.Capabilities.Inheritable)
	assert.Empty(t, runc.Process.Capabilities.Bounding, "runc's init has none")

	assert.Equal(t, gvisorHostPids(DefaultLimits().Pids), *gv.Linux.Resources.Pids.Limit)
	assert.Equal(t, DefaultLimits().Pids, *runc.Linux.Resources.Pids.Limit)
	nproc := rlimit(gv, "RLIMIT_NPROC")
	require.NotNil(t, nproc)
	assert.Equal(t, uint64(DefaultLimits().Pids), nproc.Hard)
	assert.Nil(t, rlimit(runc, "RLIMIT_NPROC"))

	clone3 := func(s *specs.Spec) specs.LinuxSeccompAction {
		for _, sc := range s.Linux.Seccomp.Syscalls {
			if slices.Contains(sc.Names, "clone3") {
				return sc.Action
			}
		}
		return ""
	}
	assert.Equal(t, specs.ActErrno, clone3(runc))
	assert.Equal(t, specs.ActAllow, clone3(gv))

	// A run as root: the init stays root, nothing to switch.
	p.user = "0:0"
	root := spec(t, specOpts(p)...)
	assert.NotContains(t, strings.Join(root.Process.Args, " "), "--user=")
	assert.Equal(t, uint32(0), root.Process.User.UID)
	assert.Empty(t, root.Process.Capabilities.Bounding)
}

// TestCheckRuntime: runc always; gVisor only with runsc, and only with
// cgroups; the error says what to install.
func TestCheckRuntime(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	runsc := filepath.Join(dir, "runsc")
	require.NoError(t, os.WriteFile(runsc, []byte("#!/bin/sh\n"), 0o755))
	r := &Runner{opts: defaultOptions()}
	r.opts.runsc = runsc
	assert.NoError(t, r.checkRuntime(RuntimeRunc))
	assert.NoError(t, r.checkRuntime(RuntimeGVisor))

	r.opts.runsc = filepath.Join(dir, "none")
	err := r.checkRuntime(RuntimeGVisor)
	assert.ErrorIs(t, err, errdefs.ErrInvalidArgument)
	assert.Contains(t, err.Error(), "apt-get install runsc")
	assert.NoError(t, r.checkRuntime(RuntimeRunc), "runc needs no runsc")

	r.opts.runsc = runsc
	r.opts.limitMode = rlimitLimits
	assert.ErrorIs(t, r.checkRuntime(RuntimeGVisor), errdefs.ErrInvalidArgument)

	_, err = withDefaults(Limits{Runtime: "kata"})
	assert.ErrorIs(t, err, errdefs.ErrInvalidArgument)
	l, err := withDefaults(Limits{})
	require.NoError(t, err)
	assert.Equal(t, RuntimeRunc, l.Runtime, "runc by default")
}

// TestRunscWrapper: the program the shim runs for gVisor runs is runsc
// with runscFlags, written once and kept while it is the same.
func TestRunscWrapper(t *testing.T) {
	t.Parallel()
	r := &Runner{opts: defaultOptions()}
	r.opts.stateDir = t.TempDir()
	r.opts.runsc = "/opt/it's/runsc"
	p, err := r.runscWrapper()
	require.NoError(t, err)
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	assert.Contains(t, string(b), `exec '/opt/it'\''s/runsc' `+strings.Join(runscFlags, " ")+` "$@"`)
	fi, err := os.Stat(p)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o755), fi.Mode().Perm())
	shim, opts, err := r.runtimeOf(RuntimeGVisor)
	require.NoError(t, err)
	assert.Equal(t, runcShim, shim)
	assert.NotNil(t, opts)
	shim, opts, err = r.runtimeOf(RuntimeRunc)
	require.NoError(t, err)
	assert.Equal(t, runcShim, shim)
	assert.Nil(t, opts)
}
