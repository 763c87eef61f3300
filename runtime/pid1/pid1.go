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
// It also carries the child's report to the host: its connection to the
// host's report socket (see Args) is its alone before the child starts,
// and it passes on only what the child process itself sends to
// ReportSocket.
//
// A warm init (WarmArgs) waits for its job, and for no longer than its
// host lives: the other end of its report connection is the host
// process's alone, and it ends its container once that end is closed
// (HostGoneStatus). Its stdin cannot tell, as the shim keeps it open.
//
// Any program that links this package (the runtime package imports it)
// becomes the init when it is started as Path: its init function takes
// over before main runs.
package pid1

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	goruntime "runtime"
	"strconv"
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
const Protocol = "skillbuild-init/5"

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

// ReportSocket is the abstract unix socket (in the container's own
// network namespace) the child sends its report to, over one connection
// per message: what the child process itself sends (the peer's
// credentials say so) goes to the host, whatever any other process sends
// is dropped. The init binds it before the child starts.
const ReportSocket = "@skillbuild-report"

// HostGoneStatus is the exit status of a warm init (WarmArgs) whose host
// went away before its job came: the host's end of its report connection
// (see Args), which only the process that created the container holds,
// was closed (that process exited, however it exited, kill -9 included).
const HostGoneStatus = 123

// StartFailedStatus is the exit status of the init when its child could
// not be started (like a shell's "command not found"); its stderr then
// holds one line that starts with StartFailedPrefix and says why.
const StartFailedStatus = 127

// StartFailedPrefix starts the line the init writes to stderr when its
// child could not be started.
const StartFailedPrefix = "skillbuild init: "

// Args is the argv of the init for a run of argv with the given timeout.
// report is the path, inside the container, of the host's report socket
// (a unix socket the host process that runs the container listens on;
// "": none). The init connects to it before it starts anything; the host
// accepts that one connection and removes the path, and the init starts
// the child only once the path is gone: from then on nothing else in the
// container can reach the host, and the init writes to its connection
// only what the child itself sends to ReportSocket. A warm init
// (WarmArgs) ends its container when the host's end closes.
func Args(timeout time.Duration, report string, argv ...string) []string {
	return initArgs("--timeout="+timeout.String(), report, argv)
}

// WarmArgs is the argv of the init of a warm container: argv starts at
// once, with a pipe from the init as its stdin, and waits for its job. The
// job comes on the init's stdin as a line holding the run's timeout (a Go
// duration, "30s"), then what argv reads. The deadline counts from the
// moment that line is read: the init passes the rest of its stdin to argv
// only then. Without a job within idle, the init kills everything and
// exits with IdleStatus. When the host's end of the report connection
// closes before the job came (the process that created the container died), the
// init kills everything and exits with HostGoneStatus within
// hostCheckEvery.
func WarmArgs(idle time.Duration, report string, argv ...string) []string {
	return initArgs("--wait-job="+idle.String(), report, argv)
}

// SessionJob starts the job line of a warm init (WarmArgs) that hands it a
// session: "session " and the session's lifetime (a Go duration) in place
// of a run's timeout. A session's init goes on watching its host after
// the job came: when the host's end of the report connection closes, it
// ends the container (HostGoneStatus) within hostCheckEvery; at the
// lifetime it ends it with DeadlineStatus.
const SessionJob = "session "

// UserArg is the init argument that starts its child as uid:gid (its
// only group gid), for an init that starts as root with CAP_SETUID,
// CAP_SETGID and CAP_SETPCAP (and CAP_KILL, to kill another user's
// processes at the end): it empties its capability bounding set, and
// the child switches user before it executes. The code, another
// user, then cannot signal the init, where the kernel does not keep a
// namespace's init from its namespace's signals (gVisor). It goes
// before the "--" of Args or WarmArgs.
func UserArg(uid, gid uint32) string { return fmt.Sprintf("--user=%d:%d", uid, gid) }

// initArgs is the init's argv with its limit argument, the report socket
// ("": none) and the child's argv.
func initArgs(limit, report string, argv []string) []string {
	a := []string{Path, limit}
	if report != "" {
		a = append(a, "--report="+report)
	}
	return append(append(a, "--"), argv...)
}

// hostCheckEvery is how often a warm init waiting for its job looks
// whether its host is still there (a poll of the report connection for
// POLLHUP: the kernel reports it once the host's end is closed). The
// check is a syscall that never blocks: an init must not need a new OS
// thread while the sandbox may fork up to its pids limit.
const hostCheckEvery = 250 * time.Millisecond

func init() {
	if len(os.Args) > 0 && os.Args[0] == Path {
		os.Exit(Main(os.Args[1:]))
	}
}

// Main runs the init with the arguments after argv[0] (see Args) and
// returns its exit status. It must run as PID 1 of a PID namespace.
func Main(args []string) int {
	in, err := parse(args)
	timeout, idle, reportPath, argv := in.timeout, in.idle, in.report, in.argv
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
	// Few threads: a sandbox at its pids limit denies the Go runtime a new
	// one (fatal: newosproc), so nothing here blocks in a system call once
	// the child runs, and one P needs no spinning thread beside it.
	goruntime.GOMAXPROCS(1)

	// A warm init waits for its job first: the idle limit runs, the
	// deadline not yet, and the host must stay.
	limit := timeout
	if idle > 0 {
		limit = idle
	}
	deadline := time.After(limit)
	until := time.Now().Add(limit)

	// The report connection, before anything else runs: see Args.
	var report *os.File
	var rl *relay
	if reportPath != "" {
		report, err = dialReport(reportPath, until)
		if err != nil {
			fmt.Fprintf(os.Stderr, "skillbuild init: report: %v\n", err)
			return HostGoneStatus
		}
		defer report.Close()
		if status, ok := holdReport(report, reportPath, until, idle > 0); !ok {
			return status
		}
		if rl, err = newRelay(report); err != nil {
			fmt.Fprintf(os.Stderr, "skillbuild init: report socket: %v\n", err)
			return usageStatus
		}
	}
	stdin := uintptr(0)
	var jobs <-chan job
	if idle > 0 {
		r, w, err := os.Pipe()
		if err != nil {
			fmt.Fprintf(os.Stderr, "skillbuild init: %v\n", err)
			return usageStatus
		}
		stdin = r.Fd()
		defer r.Close()
		jobs = waitJob(jobInput(), w)
	}
	attr := &syscall.ProcAttr{Env: os.Environ(), Files: []uintptr{stdin, 1, 2}}
	if in.user != nil {
		// The child becomes the code's user; nothing it starts can gain a
		// capability, and being another user, it cannot signal the init.
		if err := dropBoundingSet(); err != nil {
			fmt.Fprintf(os.Stderr, "skillbuild init: %v\n", err)
			return usageStatus
		}
		attr.Sys = &syscall.SysProcAttr{Credential: in.user}
	}
	child, err := syscall.ForkExec(path, argv, attr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%scannot start %s: %v\n", StartFailedPrefix, path, err)
		return StartFailedStatus
	}
	// end kills every other process, passes on what the child reported
	// and returns status.
	end := func(status int) int {
		killAll()
		rl.finish()
		return status
	}
	if rl != nil {
		rl.start(child)
	}
	var hostCheck <-chan time.Time
	if idle > 0 && report != nil {
		tick := time.NewTicker(hostCheckEvery)
		defer tick.Stop()
		hostCheck = tick.C
	}
	for {
		if status, done := reap(child); done {
			return end(status)
		}
		select {
		case <-sigs:
		case <-hostCheck:
			if peerGone(report) {
				return end(HostGoneStatus)
			}
		case j := <-jobs:
			// From here on the run's own deadline holds, host or not; a
			// session's ends with its host too.
			jobs = nil
			if !j.session {
				hostCheck = nil
			}
			idle = 0
			deadline = time.After(j.limit)
		case <-deadline:
			if idle > 0 {
				return end(IdleStatus)
			}
			return end(DeadlineStatus)
		}
	}
}

// dialReport connects to the host's report socket at path (a unix
// socket the host listens on). The connection is non-blocking, so it is
// waited on through the runtime's poller. A full backlog is waited out,
// until.
func dialReport(path string, until time.Time) (*os.File, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	for {
		err = unix.Connect(fd, &unix.SockaddrUnix{Name: path})
		if err != unix.EAGAIN || time.Now().After(until) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "connect", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// holdReport waits until the host accepted the init's report connection
// and removed the socket's path, so that nothing started later can reach
// the host. It gives up (ok false, with the status to exit with) when the
// host is gone or at until; warm says which limit until is.
func holdReport(report *os.File, path string, until time.Time, warm bool) (status int, ok bool) {
	for wait := 20 * time.Microsecond; ; wait = min(2*wait, 5*time.Millisecond) {
		if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
			return 0, true
		}
		switch {
		case peerGone(report):
			return HostGoneStatus, false
		case time.Now().After(until) && warm:
			return IdleStatus, false
		case time.Now().After(until):
			return DeadlineStatus, false
		}
		time.Sleep(wait)
	}
}

// jobInput is the init's stdin, read without blocking a thread (it is
// the init's alone in warm mode: the child reads a pipe of the init's).
func jobInput() io.Reader {
	if err := syscall.SetNonblock(0, true); err != nil {
		return os.Stdin
	}
	return os.NewFile(0, "stdin")
}

// job is what a warm init's job line says: the run's timeout, or a
// session's lifetime.
type job struct {
	limit   time.Duration
	session bool
}

// waitJob reads the job's line from in, then copies the rest of in to out
// (closing out at in's end). The job is sent once its line is read; a
// malformed line is a timeout of zero: the run ends at once.
func waitJob(in io.Reader, out io.WriteCloser) <-chan job {
	c := make(chan job, 1)
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
		c <- parseJob(string(line))
		io.Copy(out, in) //nolint:errcheck // the child reads what it gets
	}()
	return c
}

// parseJob reads a job line: a timeout ("30s") or SessionJob and a
// lifetime ("session 10m0s"). A malformed one is a run of no time.
func parseJob(line string) job {
	var j job
	line, j.session = strings.CutPrefix(line, SessionJob)
	d, err := time.ParseDuration(line)
	if err != nil || d <= 0 {
		return job{limit: time.Nanosecond}
	}
	j.limit = d
	return j
}

// peerGone reports whether the other end of the connection f is closed:
// poll(2) says POLLHUP or POLLRDHUP (or POLLERR) then. It never blocks.
func peerGone(f *os.File) bool {
	raw, err := f.SyscallConn()
	if err != nil {
		return false
	}
	gone := false
	_ = raw.Control(func(fd uintptr) {
		p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLRDHUP}}
		if n, err := unix.Poll(p, 0); err == nil && n == 1 {
			gone = p[0].Revents&(unix.POLLHUP|unix.POLLRDHUP|unix.POLLERR) != 0
		}
	})
	return gone
}

// invocation is what the init's arguments say.
type invocation struct {
	timeout, idle time.Duration
	report        string
	// user, when set, is who the child runs as (see UserArg).
	user *syscall.Credential
	argv []string
}

// parse reads "--timeout=D|--wait-job=IDLE [--report=PATH] [--user=UID:GID]
// -- ARGV...".
func parse(args []string) (invocation, error) {
	var in invocation
	usage := fmt.Errorf("usage: %s --timeout=DURATION|--wait-job=IDLE [--report=SOCKET] [--user=UID:GID] -- PROGRAM [ARG...]", Path)
	bad := func(a string) (invocation, error) { return invocation{}, fmt.Errorf("bad argument %q", a) }
	i := 0
	for ; i < len(args) && args[i] != "--"; i++ {
		name, value, _ := strings.Cut(args[i], "=")
		switch name {
		case "--timeout", "--wait-job":
			d, err := time.ParseDuration(value)
			if err != nil || d <= 0 || in.timeout > 0 || in.idle > 0 {
				return bad(args[i])
			}
			if name == "--timeout" {
				in.timeout = d
			} else {
				in.idle = d
			}
		case "--report":
			if value == "" || in.report != "" {
				return bad(args[i])
			}
			in.report = value
		case "--user":
			u, g, ok := strings.Cut(value, ":")
			uid, uerr := strconv.ParseUint(u, 10, 32)
			gid, gerr := strconv.ParseUint(g, 10, 32)
			if !ok || uerr != nil || gerr != nil || in.user != nil {
				return bad(args[i])
			}
			in.user = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{uint32(gid)}}
		default:
			return bad(args[i])
		}
	}
	if i+1 >= len(args) || (in.timeout == 0 && in.idle == 0) {
		return invocation{}, usage
	}
	in.argv = args[i+1:]
	return in, nil
}

// dropBoundingSet empties the init's capability bounding set, so that
// its child can never gain a capability back; the init keeps its
// effective ones to switch the child's user.
func dropBoundingSet() error {
	for c := 0; c <= unix.CAP_LAST_CAP; c++ {
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil && err != unix.EINVAL {
			return fmt.Errorf("drop capability %d from the bounding set: %w", c, err)
		}
	}
	return nil
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
