package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/images"
	digest "github.com/opencontainers/go-digest"
	"github.com/skillbuild/skillbuild/internal/pyindex"
	"github.com/skillbuild/skillbuild/skill/api"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// rootID is how the engine names what belongs to a state root: its build
// cgroup, its staging images, the owner label of its leases.
func rootID(root string) string { return digest.FromString(root).Encoded()[:12] }

// rootContainers are the containers in the suite's namespace whose cgroup
// lies under root's build cgroup (BuildKit's step containers).
func rootContainers(t *testing.T, root string) []string {
	t.Helper()
	ctx := context.Background()
	cs, err := suiteClient(t).Containers(ctx)
	require.NoError(t, err)
	var out []string
	for _, c := range cs {
		spec, err := c.Spec(ctx)
		if err == nil && spec.Linux != nil && strings.Contains(spec.Linux.CgroupsPath, "skillbuild-"+rootID(root)) {
			out = append(out, c.ID())
		}
	}
	return out
}

// processesWithArgs lists the pids whose command line is exactly argv.
func processesWithArgs(argv ...string) []string {
	want := []byte(strings.Join(argv, "\x00") + "\x00")
	var pids []string
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		if b, err := os.ReadFile(filepath.Join(d, "cmdline")); err == nil && bytes.Equal(b, want) {
			pids = append(pids, filepath.Base(d))
		}
	}
	return pids
}

// waitForProcess waits up to a minute until a process with exactly argv
// runs (a build step's), showing the command's output if none does.
func waitForProcess(t *testing.T, output *syncBuffer, argv ...string) {
	t.Helper()
	eventually(t, time.Minute, func() bool { return len(processesWithArgs(argv...)) > 0 }, func() string {
		return fmt.Sprintf("the step's process %v never started: %s", argv, tailString(output.String(), 2000))
	})
}

// stepNap is a sleep that package code of a build step (an sdist's
// setup.py) runs, recognisable on the host by its argument, unique to
// this suite process: a test waits until the step is in it, instead of
// guessing how long the build takes to get there, and may end it early.
type stepNap string

// newStepNap is a nap of about seconds (a bound: the test ends it or
// kills the build sooner), ended at the latest when t ends.
func newStepNap(t *testing.T, seconds int) stepNap {
	n := stepNap(fmt.Sprintf("%d.%d", seconds, os.Getpid()))
	t.Cleanup(func() { n.end(t) })
	return n
}

// prelude is setup.py code that sleeps the nap when the Python expression
// when holds (sys is imported).
func (n stepNap) prelude(when string) string {
	return "import subprocess, sys\nif " + when + ":\n    subprocess.run(['sleep', '" + string(n) + "'])\n"
}

func (n stepNap) argv() []string { return []string{"sleep", string(n)} }

// waitRunning waits until the step sleeps.
func (n stepNap) waitRunning(t *testing.T, output *syncBuffer) {
	t.Helper()
	waitForProcess(t, output, n.argv()...)
}

// release ends the sleep, and every later one until t ends (a sdist's
// setup.py runs again to build its wheel): the build goes on.
func (n stepNap) release(t *testing.T) {
	t.Helper()
	n.end(t)
	done := make(chan struct{})
	stopped := make(chan struct{})
	t.Cleanup(func() { close(done); <-stopped })
	go func() {
		defer close(stopped)
		for {
			select {
			case <-done:
				return
			case <-time.After(pollEvery):
			}
			for _, pid := range processesWithArgs(n.argv()...) {
				if p, err := strconv.Atoi(pid); err == nil {
					syscall.Kill(p, syscall.SIGKILL) //nolint:errcheck // gone already is fine
				}
			}
		}
	}()
}

// end ends the sleep: the step's code goes on.
func (n stepNap) end(t *testing.T) {
	t.Helper()
	for _, pid := range processesWithArgs(n.argv()...) {
		p, err := strconv.Atoi(pid)
		require.NoError(t, err)
		require.NoError(t, syscall.Kill(p, syscall.SIGKILL))
	}
}

// assertRootClean checks that nothing of a build of root survives: no
// step container, process, mount, cgroup, staging image or temporary lease.
func assertRootClean(t *testing.T, root string) {
	t.Helper()
	assert.Empty(t, rootContainers(t, root), "step containers left")
	assertNoEngineLeftovers(t, root)
	ctx := context.Background()
	c := suiteClient(t)
	imgs, err := c.ImageService().List(ctx, fmt.Sprintf(`name~="^localhost/skillbuild-staging/%s-"`, rootID(root)))
	require.NoError(t, err)
	assert.Empty(t, imgs, "staging images left")
	ls, err := c.LeasesService().List(ctx, fmt.Sprintf(`labels."buildkit/lease.temporary",labels."org.skillbuild.root-id"==%s`, rootID(root)))
	require.NoError(t, err)
	assert.Empty(t, ls, "temporary leases left")
}

// A client killed (SIGKILL: no clean-up of its own) while a build step
// runs package code leaves no tag, and the next command on any root of
// the namespace removes everything the build had started: the step's
// container and process, mounts, cgroup, leases, staging image. The next
// install on its root then builds normally.
func TestInstallKilledMidBuildIsCleanedUpByTheNext(t *testing.T) {
	srv, dir := index(t, pyindex.Wheel{Name: "after-kill", Version: "1.0"})
	nap := newStepNap(t, 317)
	_, err := pyindex.BuildSdist(dir, pyindex.Sdist{Name: "killed-build", Version: "1.0", Prelude: nap.prelude("'bdist_wheel' in sys.argv")})
	require.NoError(t, err)
	root := newRoot(t)

	cmd := sbCmdRoot(root, "install", "--json", "--progress", "plain", "--allow-sdist", "--base", env.base, "--index-url", srv.URL(), "killed", "killed-build==1.0")
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill() }) //nolint:errcheck // no-op once it exited
	waitFor(t, stderr, "build wheel killed-build==1.0 from source", 3*time.Minute)
	nap.waitRunning(t, stderr)

	// A staging image of the running build (as between its export and its
	// tag) survives a prune of another root: the build would fail to tag.
	ctx := context.Background()
	c := suiteClient(t)
	base, err := c.ImageService().Get(ctx, fullName(t, env.base))
	require.NoError(t, err)
	staging := "localhost/skillbuild-staging/" + rootID(root) + "-killed:0123456789abcdef"
	_, err = c.ImageService().Create(ctx, images.Image{Name: staging, Target: base.Target})
	require.NoError(t, err)
	other := newRoot(t)
	var rep api.PruneResult
	r := sbRoot(t, other, 5*time.Minute, "prune", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &rep), r.stdout)
	assert.NotContains(t, rep.Staging, staging)
	assert.True(t, imageExists(t, staging), "prune of another root kept the running build's staging image")

	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()
	assert.False(t, imageExists(t, "atom-skill:killed-v1"), "no tag")
	t.Logf("after the kill: %d step containers, %d step processes", len(rootContainers(t, root)), len(processesWithArgs(nap.argv()...)))

	// Once its build is dead, the next command on any root of the
	// namespace clears what it left: the staging image, and the step
	// still running on without its client.
	r = sbRoot(t, other, 5*time.Minute, "prune", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &rep), r.stdout)
	assert.Contains(t, rep.Staging, staging)
	assert.False(t, imageExists(t, staging))
	assert.Empty(t, processesWithArgs(nap.argv()...), "the killed build's step process survived")
	assertRootClean(t, root)

	// The next command on the root finds the lock free and builds.
	_, r = installOn(t, []string{"--root", root}, srv, "killed", nil, "after-kill==1.0")
	require.Equal(t, 0, r.code, r.stderr)
	assert.NotContains(t, r.stderr, "waiting for another skillbuild process", "the kernel dropped the dead client's lock")
	assert.True(t, imageExists(t, "atom-skill:killed-v1"))

	assert.Empty(t, processesWithArgs(nap.argv()...), "the killed build's step process survived")
	assertRootClean(t, root)
}

// sbCmdRoot is the skillbuild command with the suite's daemon and state
// root root.
func sbCmdRoot(root string, args ...string) *exec.Cmd {
	cmd := exec.Command(env.bin, append([]string{"--address", env.socket, "--namespace", namespace, "--root", root}, args...)...)
	cmd.Env = cleanEnv()
	return cmd
}
