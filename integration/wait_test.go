package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// pollEvery is how often eventually looks at its condition.
const pollEvery = 100 * time.Millisecond

// eventually waits until cond holds, looking every pollEvery, and fails
// the test when it still does not after limit, with what failure says
// then. The limit is a hang detector, never a measurement: set it far
// above what the condition takes.
func eventually(t testing.TB, limit time.Duration, cond func() bool, failure func() string) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", limit, failure())
		}
		time.Sleep(pollEvery)
	}
}

// waitReadingStdin waits until a thread of process pid is blocked in a
// read of its standard input (/proc/PID/task/TID/syscall then starts with
// the number of read and file descriptor 0).
func waitReadingStdin(t testing.TB, pid int) {
	t.Helper()
	want := fmt.Sprintf("%d 0x0 ", unix.SYS_READ)
	eventually(t, time.Minute, func() bool {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/syscall", pid))
		for _, f := range tasks {
			if b, err := os.ReadFile(f); err == nil && strings.HasPrefix(string(b), want) {
				return true
			}
		}
		return false
	}, func() string { return fmt.Sprintf("process %d never blocked reading its stdin", pid) })
}
