package pid1_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skillbuild/skillbuild/runtime/pid1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// initCmd starts this test binary as the init (it links the package, so
// argv[0] = pid1.Path makes it one) in a new PID namespace, with the given
// timeout and child.
func initCmd(t *testing.T, timeout time.Duration, argv ...string) *exec.Cmd {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("a new PID namespace needs root; the integration suite covers the init in real runs")
	}
	exe, err := os.Executable()
	require.NoError(t, err)
	cmd := &exec.Cmd{Path: exe, Args: pid1.Args(timeout, "", argv...)}
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	// A network namespace of its own too: the report socket is an
	// abstract one, which lives in it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID | syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
	return cmd
}

// reportHost is the host's end of a run's report socket, held as the
// runtime holds it: it accepts the init's one connection, removes the
// socket's path and collects what comes. got receives it once the init's
// end closed.
type reportHost struct {
	path string
	ln   *net.UnixListener
	conn chan *net.UnixConn
	got  chan string
}

func newReportHost(t *testing.T) *reportHost {
	t.Helper()
	h := &reportHost{path: filepath.Join(t.TempDir(), "report"), conn: make(chan *net.UnixConn, 1), got: make(chan string, 1)}
	var err error
	h.ln, err = net.ListenUnix("unix", &net.UnixAddr{Name: h.path, Net: "unix"})
	require.NoError(t, err)
	h.ln.SetUnlinkOnClose(false)
	t.Cleanup(func() { h.ln.Close() })
	go func() {
		c, err := h.ln.AcceptUnix()
		if err != nil {
			h.got <- err.Error()
			return
		}
		os.Remove(h.path)
		h.conn <- c
		rest, _ := io.ReadAll(c)
		h.got <- string(rest)
	}()
	return h
}

// hangUp closes the host's end, as the host process's death does.
func (h *reportHost) hangUp(t *testing.T) {
	t.Helper()
	select {
	case c := <-h.conn:
		require.NoError(t, c.Close())
	case <-time.After(time.Minute):
		t.Fatal("the init never connected")
	}
}

func exitStatus(t *testing.T, err error) int {
	t.Helper()
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	require.True(t, errors.As(err, &ee), "%v", err)
	return ee.ExitCode()
}

func TestInit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		timeout time.Duration
		script  string
		status  int
	}{
		{name: "exit status passes through", timeout: time.Minute, script: "exit 3", status: 3},
		{name: "a killed child is 128+signal", timeout: time.Minute, script: "kill -SEGV $$", status: 128 + int(syscall.SIGSEGV)},
		{name: "the deadline kills everything", timeout: 500 * time.Millisecond, script: "sleep 600 & sleep 600", status: pid1.DeadlineStatus},
		{name: "a daemon left behind does not keep the run alive", timeout: time.Hour, script: "setsid sleep 600 & exit 0", status: 0},
		{
			name: "signals from the sandbox do not stop the init", timeout: time.Second,
			script: "for s in TERM INT HUP QUIT USR1 USR2 SEGV ABRT PIPE ALRM STOP KILL; do kill -$s 1; done; sleep 600",
			status: pid1.DeadlineStatus,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cmd := initCmd(t, tc.timeout, "sh", "-c", tc.script)
			out, err := cmd.CombinedOutput()
			assert.Equal(t, tc.status, exitStatus(t, err), "output: %s", out)
		})
	}
}

func TestInitChildNotFound(t *testing.T) {
	t.Parallel()
	out, err := initCmd(t, time.Minute, "no-such-python3").CombinedOutput()
	assert.Equal(t, pid1.StartFailedStatus, exitStatus(t, err))
	assert.Equal(t, pid1.StartFailedPrefix+"no no-such-python3 on PATH\n", string(out))
}

func TestInitRefusesBadArguments(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{pid1.Path},
		{pid1.Path, "--timeout=0s", "--", "true"},
		{pid1.Path, "--timeout=x", "--", "true"},
		{pid1.Path, "--timeout=1s", "true"},
		{pid1.Path, "--wait-job=x", "--", "true"},
		{pid1.Path, "--idle=1s", "--", "true"},
		{pid1.Path, "--timeout=1s", "--wait-job=1s", "--", "true"},
		{pid1.Path, "--timeout=1s", "--report=", "--", "true"},
		{pid1.Path, "--timeout=1s", "--report=/a", "--report=/b", "--", "true"},
		{pid1.Path, "--report=/a", "--", "true"},
		{pid1.Path, "--timeout=1s", "--user=x:1", "--", "true"},
		{pid1.Path, "--timeout=1s", "--user=1", "--", "true"},
		{pid1.Path, "--timeout=1s", "--user=1:1", "--user=2:2", "--", "true"},
	} {
		exe, err := os.Executable()
		require.NoError(t, err)
		out, err := (&exec.Cmd{Path: exe, Args: args}).CombinedOutput()
		assert.Equal(t, 125, exitStatus(t, err), "%v: %s", args, out)
	}
	// Not PID 1: refused.
	exe, err := os.Executable()
	require.NoError(t, err)
	out, err := (&exec.Cmd{Path: exe, Args: pid1.Args(time.Second, "", "true"), Env: []string{"PATH=/usr/bin:/bin"}}).CombinedOutput()
	assert.Equal(t, 125, exitStatus(t, err), "%s", out)
	assert.Contains(t, string(out), "PID 1")
}

// TestInitUser: an init started as root with --user runs its child as
// that user, with no capability it could ever gain back, and the child
// cannot signal the init, so the deadline holds.
func TestInitUser(t *testing.T) {
	t.Parallel()
	script := `id -u; id -g; id -G; grep -E '^Cap(Bnd|Prm|Eff)' /proc/self/status; kill -STOP 1 2>/dev/null && echo stopped; sleep 600`
	cmd := initCmd(t, time.Second, "sh", "-c", script)
	cmd.Args = append([]string{pid1.Path, "--timeout=1s", pid1.UserArg(65532, 65533), "--"}, "sh", "-c", script)
	out, err := cmd.Output()
	assert.Equal(t, pid1.DeadlineStatus, exitStatus(t, err), "%s", out)
	assert.Equal(t, "65532\n65533\n65533\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\nCapBnd:\t0000000000000000\n", string(out))
}

// TestWarmInit: a warm init starts its child at once, hands it the job
// after the timeout line, and holds that timeout; without a job it stops
// at its idle limit.
func TestWarmInit(t *testing.T) {
	t.Parallel()
	warm := func(idle time.Duration, script string) *exec.Cmd {
		cmd := initCmd(t, time.Minute, "sh", "-c", script)
		cmd.Args = pid1.WarmArgs(idle, "", "sh", "-c", script)
		return cmd
	}
	t.Run("job passes through", func(t *testing.T) {
		t.Parallel()
		cmd := warm(time.Minute, `read line; echo "got $line"`)
		cmd.Stdin = strings.NewReader("10s\nhello\n")
		out, err := cmd.Output()
		assert.Equal(t, 0, exitStatus(t, err))
		assert.Equal(t, "got hello\n", string(out))
	})
	t.Run("the job's deadline holds", func(t *testing.T) {
		t.Parallel()
		cmd := warm(time.Minute, "read line; sleep 600")
		cmd.Stdin = strings.NewReader("300ms\n{}\n")
		assert.Equal(t, pid1.DeadlineStatus, exitStatus(t, cmd.Run()))
	})
	t.Run("no job: idle limit", func(t *testing.T) {
		t.Parallel()
		cmd := warm(300*time.Millisecond, "read line; echo ran")
		r, w, err := os.Pipe()
		require.NoError(t, err)
		defer w.Close()
		cmd.Stdin = r
		out, err := cmd.Output()
		r.Close()
		assert.Equal(t, pid1.IdleStatus, exitStatus(t, err))
		assert.Empty(t, string(out), "the child got no job")
	})
}

// TestWarmInitEndsWithItsHost: a warm init whose host closes its end of
// the report connection (the host process died) before the job came kills
// everything and exits with HostGoneStatus, long before its idle limit;
// once the job came, the run keeps its own deadline whatever the host
// does, and a session (pid1.SessionJob) ends with its host still.
func TestWarmInitEndsWithItsHost(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		job    string // written to the init's stdin before the host goes ("": none)
		script string // prints a line once it runs (the init is connected by then)
		status int
	}{
		{name: "no job yet: ends with its host", script: "echo up; read line; sleep 600", status: pid1.HostGoneStatus},
		{name: "a job handed: keeps its deadline", job: "500ms\n{}\n", script: "read line; echo up; sleep 600", status: pid1.DeadlineStatus},
		{name: "a session handed: ends with its host", job: pid1.SessionJob + "1h\nsession\n", script: "read line; echo up; sleep 600", status: pid1.HostGoneStatus},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			host := newReportHost(t)
			cmd := initCmd(t, time.Minute, "sh", "-c", tc.script)
			cmd.Args = pid1.WarmArgs(time.Hour, host.path, "sh", "-c", tc.script)
			stdin, err := cmd.StdinPipe()
			require.NoError(t, err)
			defer stdin.Close() // like the shim, never closed while the init runs
			stdout, err := cmd.StdoutPipe()
			require.NoError(t, err)
			require.NoError(t, cmd.Start())
			defer cmd.Process.Kill() //nolint:errcheck // after a failure
			if tc.job != "" {
				_, err := io.WriteString(stdin, tc.job)
				require.NoError(t, err)
			}
			line, err := bufio.NewReader(stdout).ReadString('\n')
			require.NoError(t, err)
			require.Equal(t, "up\n", line)
			host.hangUp(t)
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				assert.Equal(t, tc.status, exitStatus(t, err))
			case <-time.After(time.Minute): // a hang detector; the idle limit is an hour
				t.Fatal("the warm init outlived its host")
			}
		})
	}
}

// TestInitReportChannel: the host's report socket is the init's alone
// before the child starts (its path is gone), and what reaches the host
// is what the child process itself sent to ReportSocket, each message
// whole: what a grandchild sends on a connection of its own, or writes
// into a connection of the child's it inherited, is dropped.
func TestInitReportChannel(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("the child here is a python3 script (the runner's language): no python3 on this host")
	}
	host := newReportHost(t)
	script := fmt.Sprintf(`import os, socket, sys
def connect():
    s = socket.socket(socket.AF_UNIX)
    s.connect("\0" + %[1]q[1:])
    return s
print("report socket exists:", os.path.exists(%[2]q), flush=True)
if os.fork() == 0:
    try:
        s = connect()
        s.sendall(b"forged-own ")
        s.close()
    except OSError:
        pass
    os._exit(0)
os.wait()
s = connect()
s.sendall(b"report-1 ")
if os.fork() == 0:
    s.sendall(b"forged-inherited ")
    os._exit(0)
os.wait()
s.sendall(b"report-2")
s.close()
s = connect()
s.sendall(b" report-3")
s.close()
`, pid1.ReportSocket, host.path)
	cmd := initCmd(t, time.Minute, "python3", "-c", script)
	cmd.Args = pid1.Args(time.Minute, host.path, "python3", "-c", script)
	out, err := cmd.CombinedOutput()
	require.Equal(t, 0, exitStatus(t, err), "%s", out)
	assert.Equal(t, "report socket exists: False\n", string(out))
	select {
	case got := <-host.got:
		// Each connection is read on its own: the messages come whole,
		// in either order.
		assert.Contains(t, []string{"report-1 report-2 report-3", " report-3report-1 report-2"}, got, "the child's messages alone, each whole")
	case <-time.After(time.Minute):
		t.Fatal("the report connection did not end with the init")
	}
}
