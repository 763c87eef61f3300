package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

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

	r, w, err := os.Pipe()
	require.NoError(t, err)
	defer r.Close()
	cmd := exec.Command(bin, "3", sh, "-c", "exit 3")
	cmd.ExtraFiles = []*os.File{w}
	err = cmd.Run()
	w.Close()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, 3, ee.ExitCode(), "peakrss exits as its program did")
	report, err := io.ReadAll(r)
	require.NoError(t, err)
	var kib, user, sys int64
	_, err = fmt.Sscan(string(report), &kib, &user, &sys)
	require.NoError(t, err, "report %q", report)
	assert.Less(t, kib, int64(32<<10), "peakrss's reading of sh -c 'exit 3'")
	t.Logf("sh -c 'exit 3': %d KiB started directly, %d KiB under peakrss", directKiB, kib)
}

func TestPeakRSSPassesOnASignalDeath(t *testing.T) {
	bin := build(t)
	r, w, err := os.Pipe()
	require.NoError(t, err)
	defer r.Close()
	cmd := exec.Command(bin, "3", "sh", "-c", "kill -TERM $$")
	cmd.ExtraFiles = []*os.File{w}
	err = cmd.Run()
	w.Close()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee)
	ws := ee.Sys().(syscall.WaitStatus)
	assert.True(t, ws.Signaled() && ws.Signal() == syscall.SIGTERM, "peakrss ended with %v", ws)
}
