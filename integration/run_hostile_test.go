package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
	sbruntime "github.com/skillbuild/skillbuild/runtime"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// These tests are the run side of a hostile review: clients that die or
// stop reading, inputs that are not files, and what a run must not share
// with the host or with other runs.

// exitOf is the exit status of a finished command.
func exitOf(t *testing.T, err error) int {
	t.Helper()
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	require.True(t, errors.As(err, &ee), "%v", err)
	return ee.ExitCode()
}

// startPiped starts skillbuild with args, its stdout piped to the test and
// its stderr collected; it is killed at the end of the test if still
// running.
func startPiped(t *testing.T, args ...string) (*exec.Cmd, io.ReadCloser, *bytes.Buffer) {
	t.Helper()
	cmd := sbCmd(args...)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill() //nolint:errcheck
			cmd.Wait()         //nolint:errcheck
		}
	})
	return cmd, stdout, &errb
}

// startRun starts `skillbuild run` with args and returns once the code
// printed its first line, "ready".
func startRun(t *testing.T, args ...string) (*exec.Cmd, *bufio.Reader, *bytes.Buffer) {
	t.Helper()
	cmd, stdout, errb := startPiped(t, append([]string{"run"}, args...)...)
	out := bufio.NewReader(stdout)
	line, err := out.ReadString('\n')
	require.NoError(t, err, "stderr: %s", errb.String())
	require.Equal(t, "ready\n", line)
	return cmd, out, errb
}

// suiteRunner is a Runner on the suite's containerd and run state
// directory, as skillbuild's own.
func suiteRunner(t *testing.T) *sbruntime.Runner {
	t.Helper()
	r, err := sbruntime.New(context.Background(), ctdClient(t), sbruntime.WithStateDir(filepath.Join(env.root, "runs")))
	require.NoError(t, err)
	return r
}

// theRunContainer is the one run container that exists now.
func theRunContainer(t *testing.T, c *containerd.Client) containerd.Container {
	t.Helper()
	cs := runContainers(t, c)
	require.Len(t, cs, 1)
	return cs[0]
}

// runDeadline reads a run container's deadline label.
func runDeadline(t *testing.T, ct containerd.Container) time.Time {
	t.Helper()
	labels, err := ct.Labels(context.Background())
	require.NoError(t, err)
	d, err := time.Parse(time.RFC3339Nano, labels[sbruntime.LabelDeadline])
	require.NoError(t, err)
	return d
}

// cgroupProcs lists the processes left in a run's cgroups.
func cgroupProcs(id string) []string {
	var procs []string
	ctrls, _ := os.ReadDir("/sys/fs/cgroup")
	for _, ctrl := range ctrls {
		for _, f := range []string{filepath.Join("/sys/fs/cgroup", ctrl.Name(), namespace, id, "cgroup.procs"), filepath.Join("/sys/fs/cgroup", namespace, id, "cgroup.procs")} {
			if b, err := os.ReadFile(f); err == nil {
				procs = append(procs, strings.Fields(string(b))...)
			}
		}
	}
	return procs
}

// spinner is code that prints "ready", starts a busy child, a daemonized
// grandchild (new session) that ignores SIGTERM, and spins itself; every
// process carries mark in its command line.
func spinner(mark string) string {
	return fmt.Sprintf(`import os, signal, subprocess, sys
subprocess.Popen([sys.executable, "-c", "while True: pass", %[1]q])
subprocess.Popen([sys.executable, "-c", "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True: time.sleep(1)", %[1]q], start_new_session=True)
print("ready", flush=True)
while True:
    pass
`, mark)
}

// TestRunDeadlineOutlivesTheClient: skillbuild is killed with -9 while the
// code spins with children and a daemon. Nobody runs skillbuild again, yet
// every process of the run is gone soon after its deadline: the init inside
// the container held it. The next command of any kind (here ls) then
// removes what is left.
func TestRunDeadlineOutlivesTheClient(t *testing.T) {
	mark := marker(t)
	cmd, _, _ := startRun(t, "--image", env.base, "--timeout", "3s", "-c", spinner(mark), "dying")
	c := ctdClient(t)
	ct := theRunContainer(t, c)
	deadline := runDeadline(t, ct)
	require.NoError(t, cmd.Process.Kill())
	cmd.Wait() //nolint:errcheck

	ctx := context.Background()
	task, err := ct.Task(ctx, nil)
	require.NoError(t, err)
	// Poll containerd only: the task must stop by itself. The bound is a
	// hang detector, far above the deadline.
	limit := deadline.Add(2 * time.Minute)
	var st containerd.Status
	for time.Now().Before(limit) {
		st, err = task.Status(ctx)
		require.NoError(t, err)
		if st.Status == containerd.Stopped {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	require.Equal(t, containerd.Stopped, st.Status, "the run's processes outlived its deadline without a client")
	assert.Equal(t, uint32(128+syscall.SIGKILL), st.ExitStatus, "the init's deadline status")
	assert.Empty(t, cgroupProcs(ct.ID()), "no process left in the run's cgroups")
	noProcessWith(t, mark)

	// The container record stays until a command sweeps it once the
	// deadline and the sweep grace have passed; any command does.
	time.Sleep(time.Until(deadline.Add(31 * time.Second)))
	r := sb(t, "ls")
	require.Equal(t, 0, r.code, r.stderr)
	assertNoRunLeftovers(t)
}

// TestRunClosedStdout: `skillbuild run ... | head -c 20`. The reader goes
// away while the code still prints; skillbuild gets EPIPE (not a deadly
// SIGPIPE), stops the run, cleans up everything and exits 141.
func TestRunClosedStdout(t *testing.T) {
	mark := marker(t)
	cmd, stdout, errb := startPiped(t, "run", "--image", env.base, "--timeout", "10m", "-c", fmt.Sprintf("import sys, time\nwhile True:\n    print(%q * 100, flush=True)\n    time.sleep(0.01)", mark), "pipe")
	head := make([]byte, 20)
	_, err := io.ReadFull(stdout, head)
	require.NoError(t, err, errb.String())
	assert.Equal(t, mark[:20], string(head))
	require.NoError(t, stdout.Close()) // head exits

	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(5 * time.Minute): // a hang detector: the run's own timeout is 10m
		cmd.Process.Kill() //nolint:errcheck
		t.Fatalf("skillbuild went on after its stdout closed; stderr: %s", errb.String())
	}
	assert.Equal(t, 141, exitOf(t, err), "128+SIGPIPE; stderr: %s", errb.String())
	assert.Contains(t, errb.String(), "stdout closed by its reader")
	assert.Contains(t, errb.String(), "cleaned up")
	noProcessWith(t, mark)
	assertNoRunLeftovers(t)
}

// TestRunSlowReader: the code prints more than a pipe holds and times out
// while nobody reads skillbuild's stdout. The run is torn down without
// waiting for the reader (its container is gone while the reader still has
// read nothing); the reader then gets the output, and the run is a plain
// timeout, not a teardown failure.
func TestRunSlowReader(t *testing.T) {
	cmd, stdout, errb := startPiped(t, "run", "--image", env.base, "--timeout", "2s", "-c", "import sys\nsys.stdout.write('x' * (512 << 10))\nsys.stdout.flush()\nwhile True:\n    pass", "slow")

	c := ctdClient(t)
	ctx := context.Background()
	var started bool
	for range 600 { // wait for the run to start, then to be torn down
		cs, err := c.Containers(ctx, fmt.Sprintf("labels.%q", sbruntime.LabelRun))
		require.NoError(t, err)
		if len(cs) > 0 {
			started = true
		} else if started {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	require.True(t, started, "stderr: %s", errb.String())
	assert.Empty(t, runContainers(t, c), "torn down while the reader read nothing")

	out, err := io.ReadAll(stdout)
	require.NoError(t, err)
	err = cmd.Wait()
	assert.Equal(t, 124, exitOf(t, err), "a timeout; stderr: %s", errb.String())
	assert.Equal(t, 512<<10, len(out), "the reader got all the output")
	assert.NotContains(t, errb.String(), "delete task")
	assert.NotContains(t, errb.String(), "deadline exceeded")
	assertNoRunLeftovers(t)
}

// TestRunInputsThatAreNotFiles: devices, FIFOs and endless streams as
// file inputs are refused at once with exit status 2 and a message saying
// what the file is; nothing blocks, nothing is read into memory.
func TestRunInputsThatAreNotFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	require.NoError(t, syscall.Mkfifo(fifo, 0o600)) // nobody ever writes to it
	big := filepath.Join(dir, "big.json")
	f, err := os.Create(big)
	require.NoError(t, err)
	require.NoError(t, f.Truncate(65<<20)) // sparse, above the inputs cap
	f.Close()

	for _, tc := range []struct {
		args []string
		says string
	}{
		{args: []string{"run", "--image", env.base, "--inputs-file", "/dev/zero", "-c", "pass", "t"}, says: "/dev/zero is a character device, not a regular file"},
		{args: []string{"run", "--image", env.base, "--inputs-file", fifo, "-c", "pass", "t"}, says: "is a FIFO, not a regular file"},
		{args: []string{"run", "--image", env.base, "--inputs-file", big, "-c", "pass", "t"}, says: "more than the"},
		{args: []string{"run", "--image", env.base, "--code", "/dev/zero", "t"}, says: "is a character device"},
		{args: []string{"run", "--image", env.base, "--code", fifo, "t"}, says: "is a FIFO"},
		{args: []string{"run", "--image", env.base, "-f", fifo, "-c", "pass", "t"}, says: "is a FIFO"},
		{args: []string{"install", "--base", env.base, "-r", fifo, "t"}, says: "is a FIFO"},
		{args: []string{"install", "--base", env.base, "-r", "/dev/zero", "t"}, says: "is a character device"},
		{args: []string{"scan", "-r", fifo}, says: "is a FIFO"},
		{args: []string{"db", "import", fifo}, says: "is a FIFO"},
		{args: []string{"db", "import", "/dev/zero"}, says: "is a character device"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // a hang detector
		cmd := sbCmd(tc.args...)
		cmd = exec.CommandContext(ctx, cmd.Path, cmd.Args[1:]...)
		cmd.Env = cleanEnv()
		var errb bytes.Buffer
		cmd.Stderr = &errb
		err := cmd.Run()
		require.NoError(t, ctx.Err(), "%v blocked", tc.args)
		cancel()
		assert.Equal(t, 2, exitOf(t, err), "%v: %s", tc.args, errb.String())
		assert.Contains(t, errb.String(), tc.says, "%v", tc.args)
	}

	// Stdin as inputs: an endless stream stops at the cap.
	cmd := sbCmd("run", "--image", env.base, "--inputs-file", "-", "-c", "pass", "t")
	zero, err := os.Open("/dev/zero")
	require.NoError(t, err)
	defer zero.Close()
	cmd.Stdin = zero
	var errb bytes.Buffer
	cmd.Stderr = &errb
	assert.Equal(t, 2, exitOf(t, cmd.Run()), errb.String())
	assert.Contains(t, errb.String(), "stdin is more than the")

	// Stdin that nobody writes to: SIGTERM still ends the wait.
	cmd = sbCmd("run", "--image", env.base, "--inputs-file", "-", "-c", "pass", "t")
	stdin, err := cmd.StdinPipe() // never written, never closed until the end
	require.NoError(t, err)
	defer stdin.Close()
	errb.Reset()
	cmd.Stderr = &errb
	require.NoError(t, cmd.Start())
	waitReadingStdin(t, cmd.Process.Pid)
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(2 * time.Minute): // a hang detector
		cmd.Process.Kill() //nolint:errcheck
		t.Fatal("a read of stdin ignored SIGTERM")
	}
	assert.Equal(t, 130, exitOf(t, err), errb.String())
	assertNoRunLeftovers(t)
}

// TestRunSandboxFiles: the host's nameserver (the base rootfs was made on
// a host and carries its resolv.conf) does not reach a run, and nothing on
// /tmp or /dev/shm can be executed.
func TestRunSandboxFiles(t *testing.T) {
	d := runCode(t, `import errno, os, stat, subprocess
out = {"resolv": open("/etc/resolv.conf").read()}
try:
    open("/etc/resolv.conf", "w")
    out["resolv_write"] = "written"
except OSError as e:
    out["resolv_write"] = errno.errorcode[e.errno]
for d in ("/tmp", "/dev/shm"):
    p = d + "/x.sh"
    with open(p, "w") as f:
        f.write("#!/bin/sh\necho ran\n")
    os.chmod(p, 0o755)
    try:
        out[d] = subprocess.run([p], capture_output=True).stdout.decode()
    except OSError as e:
        out[d] = errno.errorcode[e.errno]
result = out`)
	requireClean(t, d)
	r := resultAs[map[string]string](t, d)
	assert.NotContains(t, r["resolv"], "nameserver", "no nameserver in a run")
	assert.Equal(t, "# skillbuild: a run has no network and no DNS\n", r["resolv"])
	assert.Contains(t, []string{"EROFS", "EACCES"}, r["resolv_write"])
	assert.Equal(t, "EACCES", r["/tmp"], "/tmp is noexec")
	assert.Equal(t, "EACCES", r["/dev/shm"], "/dev/shm is noexec")
}

// TestRunInit: PID 1 of a run is skillbuild's init, the runner its child;
// the code can neither signal, stop nor trace it, orphans are reaped, and
// the deadline still holds.
func TestRunInit(t *testing.T) {
	d := runCode(t, `import errno, json, os, signal, time
out = {"ppid": os.getppid(), "init": open("/proc/1/cmdline", "rb").read().split(b"\0")}
out["init"] = [a.decode() for a in out["init"]]
sent = []
for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGSTOP, signal.SIGKILL, signal.SIGSEGV, signal.SIGUSR1):
    try:
        os.kill(1, s)
        sent.append(s.name)
    except OSError as e:
        sent.append(errno.errorcode[e.errno])
out["sent"] = sent
try:
    open("/proc/1/mem", "rb").read(1)
    out["mem"] = "read"
except OSError as e:
    out["mem"] = errno.errorcode[e.errno]
# An orphan: the grandchild exits after its parent; the init reaps it.
pid = os.fork()
if pid == 0:
    if os.fork() == 0:
        time.sleep(0.2)
        os._exit(0)
    os._exit(0)
os.waitpid(pid, 0)
zombies = ["?"]
for _ in range(100):
    time.sleep(0.1)
    zombies = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                if open("/proc/%s/stat" % p).read().rsplit(")", 1)[1].split()[0] == "Z":
                    zombies.append(p)
            except OSError:
                pass
    if not zombies:
        break
out["zombies"] = zombies
print(json.dumps(out), flush=True)
while True:
    pass`, "--timeout", "5s")
	requireTimedOut(t, d)
	var r struct {
		PPID    int      `json:"ppid"`
		Init    []string `json:"init"`
		Sent    []string `json:"sent"`
		Mem     string   `json:"mem"`
		Zombies []string `json:"zombies"`
	}
	require.NoError(t, json.Unmarshal([]byte(d.Stdout), &r), "the code printed its findings before spinning: %q", d.Stdout)
	assert.Equal(t, 1, r.PPID, "the runner is the init's child")
	assert.Contains(t, r.Init, "/run/skillbuild-init/init")
	assert.Contains(t, r.Init, "--timeout=5s")
	assert.Len(t, r.Sent, 7)
	assert.Contains(t, []string{"EACCES", "EPERM"}, r.Mem, "the init is not dumpable")
	assert.Empty(t, r.Zombies, "orphans are reaped")
	assertNoRunLeftovers(t)
}

// mqFill opens POSIX message queues until the kernel's per-user byte quota
// (RLIMIT_MSGQUEUE) refuses one, then prints "ready" and waits; mqOne opens
// one queue. Every run would share that quota if runs shared a uid.
const mqSetup = `import ctypes, os, time
libc = ctypes.CDLL(None, use_errno=True)
class Attr(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_long), ("maxmsg", ctypes.c_long), ("msgsize", ctypes.c_long), ("curmsgs", ctypes.c_long), ("pad", ctypes.c_long * 4)]
def mq(name):
    a = Attr(0, 10, 8192, 0)
    fd = libc.mq_open(name.encode(), os.O_CREAT | os.O_RDWR, 0o600, ctypes.byref(a))
    return fd, ctypes.get_errno()
`

const mqFill = mqSetup + `n, err = 0, 0
while n < 1000:
    fd, err = mq("/q%d" % n)
    if fd < 0:
        break
    n += 1
import errno
print("ready", flush=True)
print(n, errno.errorcode.get(err, err), flush=True)
time.sleep(3600)`

const mqOne = mqSetup + `import errno
fd, err = mq("/mine")
result = {"fd": fd, "err": errno.errorcode.get(err, err) if fd < 0 else "", "uid": os.getuid()}`

// TestRunOwnUID: two concurrent runs get different uids, so one that
// exhausts a per-user kernel quota (POSIX message queue bytes) leaves the
// other its own.
func TestRunOwnUID(t *testing.T) {
	cmd, out, errb := startRun(t, "--image", env.base, "--timeout", "5m", "-c", mqFill, "mqfill")
	line, err := out.ReadString('\n')
	require.NoError(t, err, errb.String())
	var n int
	var why string
	_, err = fmt.Sscan(line, &n, &why)
	require.NoError(t, err, line)
	require.Equal(t, "EMFILE", why, "the first run exhausted its message queue quota after %d queues", n)

	d := runCode(t, mqOne)
	requireClean(t, d)
	r := resultAs[struct {
		FD  int    `json:"fd"`
		Err string `json:"err"`
		UID uint32 `json:"uid"`
	}](t, d)
	assert.Empty(t, r.Err, "the second run has a quota of its own")
	assert.GreaterOrEqual(t, r.FD, 0)
	uid, _ := ranAs(t, d)
	assert.Equal(t, uid, r.UID)

	// The first run's uid, from its container's spec.
	c := ctdClient(t)
	spec, err := theRunContainer(t, c).Spec(context.Background())
	require.NoError(t, err)
	assert.NotEqual(t, spec.Process.User.UID, r.UID, "concurrent runs have different uids")

	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	assert.Equal(t, 130, exitOf(t, cmd.Wait()))
	assertNoRunLeftovers(t)
}

// TestRunStages drives the stages a warm pool uses: a sandbox created and
// closed without ever starting leaves nothing; one created ahead runs when
// started.
func TestRunStages(t *testing.T) {
	ctx := context.Background()
	r := suiteRunner(t)
	_, err := r.Prepare(ctx, sbruntime.Request{Image: env.base, Code: []byte("pass"), Inputs: []byte("[1]")})
	assert.ErrorIs(t, err, errdefs.ErrInvalidArgument, "a bad request fails at Prepare")

	p, err := r.Prepare(ctx, sbruntime.Request{Image: env.base, Code: []byte("result = inputs['x'] * 2"), Inputs: []byte(`{"x": 21}`)})
	require.NoError(t, err)
	unused, err := r.Create(ctx, p)
	require.NoError(t, err)
	require.NoError(t, unused.Close(ctx))
	require.NoError(t, unused.Close(ctx), "Close twice is fine")
	assertNoRunLeftovers(t)

	sb, err := r.Create(ctx, p)
	require.NoError(t, err)
	defer sb.Close(ctx) //nolint:errcheck
	require.NoError(t, sb.Start(ctx))
	exit, err := sb.Wait(ctx)
	require.NoError(t, err)
	assert.False(t, exit.TimedOut)
	res, err := sb.Collect(ctx, exit)
	require.NoError(t, err)
	assert.Equal(t, "42", string(res.Result))
	require.NoError(t, sb.Close(ctx))
	assertNoRunLeftovers(t)
}

// TestRunInitFitsSmallLimits: the init costs the run little of its memory:
// code still runs under a 16 MiB limit, and the init's own resident memory
// is reported.
func TestRunInitFitsSmallLimits(t *testing.T) {
	d := runCode(t, `import re
rss = re.search(r"VmRSS:\s+(\d+) kB", open("/proc/1/status").read())
result = {"init_rss_kb": int(rss.group(1)) if rss else None}`, "--memory", "16m")
	requireClean(t, d)
	r := resultAs[map[string]any](t, d)
	t.Logf("init resident memory: %v kB", r["init_rss_kb"])
}
