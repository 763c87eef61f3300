// Package pid1 is the init process of a run's container: PID 1 of its PID
// namespace, started from the very binary that created the container. It
// starts the runner as its child, reaps every process that ends in the
// namespace, and holds the run's deadline inside the container, so that
// the deadline does not depend on the skillbuild process that started the
// run staying alive.
//
// At the deadline it kills every other process of the namespace and exits
// with DeadlineStatus. When its child exits first, it kills whatever the
// child left running (daemons, stray threads of work) and exits with the
// child's status (128+signal when the child was killed).
//
// It cannot be stopped from inside the sandbox: the kernel drops signals
// to a namespace's init that has no handler for them (SIGKILL and SIGSTOP
// included), and this one handles every other signal by ignoring it. It
// makes itself non-dumpable, so a process of the same user can neither
// ptrace it nor read its memory. If it dies anyway (the OOM killer), the
// kernel kills every process of the namespace with it: the run ends early,
// never late.
//
// Any program that links this package (the runtime package imports it)
// becomes the init when it is started as Path: its init function takes
// over before main runs.
package pid1

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Path is where the runtime mounts the binary inside a run's container,
// and the argv[0] that makes a program linking this package the init.
const Path = "/run/skillbuild-init/init"

// Protocol names the version of the init's arguments, statuses and job
// line: a separate init program (cmd/skillbuild-init) is used only when
// it prints the same. Change it with any of them.
const Protocol = "skillbuild-init/1"

// DeadlineStatus is the exit status of the init when it killed the run at
// its deadline: 128+SIGKILL, as if the runner had been killed. A run that
// exits with it no earlier than its timeout after its start was ended by
// the deadline.
const DeadlineStatus = 128 + int(syscall.SIGKILL)

// usageStatus is the exit status of a malformed invocation.
const usageStatus = 125

// IdleStatus is the exit status of a warm init (WarmArgs) whose job did
// not come within its idle limit.
const IdleStatus = 124

// StartFailedStatus is the exit status of the init when its child could
// not be started (like a shell's "command not found"); its stderr then
// holds one line that starts with StartFailedPrefix and says why.
const StartFailedStatus = 127

// StartFailedPrefix starts the line the init writes to stderr when its
// child could not be started.
const StartFailedPrefix = "skillbuild init: "

// Args is the argv of the init for a run of argv with the given timeout.
func Args(timeout time.Duration, argv ...string) []string {
	return append([]string{Path, "--timeout=" + timeout.String(), "--"}, argv...)
}

// WarmArgs is the argv of the init of a warm container: argv starts at
// once, with a pipe from the init as its stdin, and waits for its job. The
// job comes on the init's stdin as a line holding the run's timeout (a Go
// duration, "30s"), then what argv reads. The deadline counts from the
// moment that line is read: the init passes the rest of its stdin to argv
// only then. Without a job within idle, the init kills everything and
// exits with IdleStatus.
func WarmArgs(idle time.Duration, argv ...string) []string {
	return append([]string{Path, "--wait-job=" + idle.String(), "--"}, argv...)
}

func init() {
	if len(os.Args) > 0 && os.Args[0] == Path {
		os.Exit(Main(os.Args[1:]))
	}
}

// Main runs the init with the arguments after argv[0] (see Args) and
// returns its exit status. It must run as PID 1 of a PID namespace.
func Main(args []string) int {
	timeout, idle, argv, err := parse(args)
	if err != nil {
		fmt.Fprintln(os.Stderr, "skillbuild init:", err)
		return usageStatus
	}
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "skillbuild init: must run as PID 1 of a PID namespace")
		return usageStatus
	}
	// Nobody of the same user may ptrace this process or read its memory.
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		fmt.Fprintln(os.Stderr, "skillbuild init: prctl:", err)
		return usageStatus
	}
	// Every signal is caught here: SIGCHLD to reap, the rest ignored.
	sigs := make(chan os.Signal, 64)
	signal.Notify(sigs)

	path, err := exec.LookPath(argv[0])
	if err != nil {
		fmt.Fprintf(os.Stderr, "%sno %s on PATH\n", StartFailedPrefix, argv[0])
		return StartFailedStatus
	}
	stdin := uintptr(0)
	var jobs <-chan time.Duration
	if idle > 0 {
		r, w, err := os.Pipe()
		if err != nil {
			fmt.Fprintf(os.Stderr, "skillbuild init: %v\n", err)
			return usageStatus
		}
		stdin = r.Fd()
		defer r.Close()
		jobs = waitJob(os.Stdin, w)
	}
	child, err := syscall.ForkExec(path, argv, &syscall.ProcAttr{Env: os.Environ(), Files: []uintptr{stdin, 1, 2}})
	if err != nil {
		fmt.Fprintf(os.Stderr, "%scannot start %s: %v\n", StartFailedPrefix, path, err)
		return StartFailedStatus
	}
	// A warm init waits for its job first: the idle limit runs, the
	// deadline not yet.
	var deadline <-chan time.Time
	if idle > 0 {
		deadline = time.After(idle)
	} else {
		deadline = time.After(timeout)
	}
	for {
		if status, done := reap(child); done {
			killAll()
			return status
		}
		select {
		case <-sigs:
		case d := <-jobs:
			jobs = nil
			idle = 0
			deadline = time.After(d)
		case <-deadline:
			killAll()
			if idle > 0 {
				return IdleStatus
			}
			return DeadlineStatus
		}
	}
}

// waitJob reads the job's timeout line from in, then copies the rest of
// in to out (closing out at in's end). The timeout is sent once it is
// read; a malformed line is a timeout of zero: the run ends at once.
func waitJob(in io.Reader, out io.WriteCloser) <-chan time.Duration {
	c := make(chan time.Duration, 1)
	go func() {
		defer out.Close()
		var line []byte
		b := make([]byte, 1)
		for {
			n, err := in.Read(b)
			if n == 1 && b[0] != '\n' && len(line) < 64 {
				line = append(line, b[0])
				continue
			}
			if n == 1 || err != nil {
				break
			}
		}
		d, err := time.ParseDuration(string(line))
		if err != nil || d <= 0 {
			d = time.Nanosecond
		}
		c <- d
		io.Copy(out, in) //nolint:errcheck // the child reads what it gets
	}()
	return c
}

// parse reads "--timeout=D -- ARGV..." or "--wait-job=IDLE -- ARGV...".
func parse(args []string) (timeout, idle time.Duration, argv []string, err error) {
	if len(args) < 3 || args[1] != "--" {
		return 0, 0, nil, fmt.Errorf("usage: %s --timeout=DURATION|--wait-job=IDLE -- PROGRAM [ARG...]", Path)
	}
	name, value, _ := strings.Cut(args[0], "=")
	d, err := time.ParseDuration(value)
	if err != nil || d <= 0 || (name != "--timeout" && name != "--wait-job") {
		return 0, 0, nil, fmt.Errorf("bad argument %q", args[0])
	}
	if name == "--wait-job" {
		return 0, d, args[2:], nil
	}
	return d, 0, args[2:], nil
}

// reap collects every child that has ended, without blocking, and reports
// the exit status of child once it has ended.
func reap(child int) (int, bool) {
	status, done := 0, false
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil || pid <= 0 {
			return status, done
		}
		if pid == child {
			done = true
			status = ws.ExitStatus()
			if ws.Signaled() {
				status = 128 + int(ws.Signal())
			}
		}
	}
}

// killAll kills every other process of the PID namespace and reaps them
// all. kill(-1) from a namespace's init reaches every process of the
// namespace but itself; it is repeated until nobody is left, in case a
// fork raced it.
func killAll() {
	for {
		_ = unix.Kill(-1, unix.SIGKILL)
		for {
			var ws unix.WaitStatus
			pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
			switch {
			case err == unix.EINTR:
				continue
			case err == unix.ECHILD:
				return // nobody is left
			case err != nil || pid <= 0:
			default:
				continue
			}
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
}
