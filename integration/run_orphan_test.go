package integration

import (
	"bufio"
	"context"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	sbruntime "github.com/skillbuild/skillbuild/runtime"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRunKilledOwnerSweptAtOnce: the leftovers of a `skillbuild run` killed
// with SIGKILL (no cleanup of its own) are removed by the next command at
// once, long before the run's deadline: the run's owner lock died with its
// process. A live run, whose owner holds its lock, is left alone by the
// same sweep.
func TestRunKilledOwnerSweptAtOnce(t *testing.T) {
	c := ctdClient(t)
	killLive := startSleepingRun(t, "10m", "alive")
	liveID := theRunContainer(t, c).ID()
	startSleepingRun(t, "10m", "orphan")() // no cleanup, no timeout: an orphan with ten minutes to go
	cs := runContainers(t, c)
	require.Len(t, cs, 2, "the orphan and the live run")
	deadline := runDeadline(t, cs[0])
	require.True(t, deadline.After(time.Now().Add(5*time.Minute)), "the deadline is far: %s", deadline)

	// The next command that talks to containerd sweeps it.
	r := sb(t, "ls")
	require.Equal(t, 0, r.code, r.stderr)
	left := runContainers(t, c)
	require.Len(t, left, 1, "the orphan is gone, the live run is not")
	assert.Equal(t, liveID, left[0].ID())

	killLive() // now an orphan too; the runtime's own sweep takes it
	ctx := context.Background()
	_, err := sbruntime.New(ctx, c, sbruntime.WithStateDir(filepath.Join(env.root, "runs")))
	require.NoError(t, err)
	assertNoRunLeftovers(t)
}

// startSleepingRun starts `skillbuild run` of code that sleeps, waits until
// the code runs, and returns what kills the skillbuild process with
// SIGKILL (leaving its run behind).
func startSleepingRun(t *testing.T, timeout, id string) (kill func()) {
	t.Helper()
	return startSleeping(t, sbCmd(sleepingRunArgs(timeout, id)...))
}

// sleepingRunArgs are the arguments of a run that prints "ready" and sleeps.
func sleepingRunArgs(timeout, id string) []string {
	return []string{"run", "--image", env.base, "--timeout", timeout, "-c", "import time\nprint('ready', flush=True)\ntime.sleep(3600)", id}
}

// startSleeping starts cmd, a sleeping run, and returns once it is ready.
func startSleeping(t *testing.T, cmd *exec.Cmd) (kill func()) {
	t.Helper()
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill() }) //nolint:errcheck
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "ready\n", line)
	return func() {
		require.NoError(t, cmd.Process.Kill())
		cmd.Wait() //nolint:errcheck
	}
}
