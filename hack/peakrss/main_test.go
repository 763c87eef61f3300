package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/skillbuild/skillbuild/internal/peakrss"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// build builds peakrss into a temporary directory.
func build(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "peakrss")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Run())
	return bin
}

// TestPeakRSSIsTheChildsOwn inflates this process to 200 MiB, then starts
// a small program directly and under peakrss: wait4 reads the direct one
// as at least this process's peak; peakrss reads the program's own.
func TestPeakRSSIsTheChildsOwn(t *testing.T) {
	bin := build(t)
	sh, err := exec.LookPath("sh")
	require.NoError(t, err)

	ballast := make([]byte, 200<<20)
	for i := range ballast {
		ballast[i] = 1
	}
	defer func() { _ = ballast[len(ballast)-1] }()

	direct := exec.Command(sh, "-c", "exit 3")
	require.Error(t, direct.Run())
	directKiB := direct.ProcessState.SysUsage().(*syscall.Rusage).Maxrss
	assert.GreaterOrEqual(t, directKiB, int64(200<<10), "wait4's reading of a child of this process")

	cmd := exec.Command(sh, "-c", "exit 3")
	read, err := peakrss.Wrap(cmd, bin)
	require.NoError(t, err)
	err = cmd.Run()
	u, rerr := read()
	require.NoError(t, rerr)
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, 3, ee.ExitCode(), "peakrss exits as its program did")
	kib := u.MaxRSSKiB
	assert.Less(t, kib, int64(32<<10), "peakrss's reading of sh -c 'exit 3'")
	t.Logf("sh -c 'exit 3': %d KiB started directly, %d KiB under peakrss", directKiB, kib)
}

func TestPeakRSSPassesOnASignalDeath(t *testing.T) {
	bin := build(t)
	cmd := exec.Command("sh", "-c", "kill -TERM $$")
	read, err := peakrss.Wrap(cmd, bin)
	require.NoError(t, err)
	err = cmd.Run()
	_, rerr := read()
	assert.NoError(t, rerr, "a report even when the program died of a signal")
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee)
	ws := ee.Sys().(syscall.WaitStatus)
	assert.True(t, ws.Signaled() && ws.Signal() == syscall.SIGTERM, "peakrss ended with %v", ws)
}
