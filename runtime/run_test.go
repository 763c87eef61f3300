package runtime

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/skillbuild/skillbuild/config"
	"github.com/skillbuild/skillbuild/runtime/pid1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDefaultLimitsMatchConfig(t *testing.T) {
	t.Parallel()
	mem, err := config.ParseSize(config.DefaultRunMemory)
	require.NoError(t, err)
	cpus, err := config.ParseCPUs(config.DefaultRunCPUs)
	require.NoError(t, err)
	pids, err := config.ParsePids(config.DefaultRunPids)
	require.NoError(t, err)
	timeout, err := config.ParseDuration(config.DefaultRunTimeout)
	require.NoError(t, err)
	tmpfs, err := config.ParseSize(config.DefaultRunTmpfsSize)
	require.NoError(t, err)
	out, err := config.ParseSize(config.DefaultRunOutputLimit)
	require.NoError(t, err)
	assert.Equal(t, Limits{MemoryBytes: mem, CPUs: cpus, Pids: pids, Timeout: timeout, TmpfsBytes: tmpfs, OutputLimitBytes: out, Runtime: config.DefaultRunRuntime}, DefaultLimits())
	// A skill's limits convert as they are.
	assert.Equal(t, DefaultLimits(), Limits(config.RunLimits{MemoryBytes: mem, CPUs: cpus, Pids: pids, Timeout: timeout, TmpfsBytes: tmpfs, OutputLimitBytes: out, Runtime: config.DefaultRunRuntime}))
}

func TestNormalizeInputs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in, want string
		bad      bool
	}{
		{in: "", want: "{}\n"},
		{in: "  \n", want: "{}\n"},
		{in: "{\n  \"a\": \"x\\ny\",\n  \"b\": [1,\n 2]\n}\n", want: `{"a":"x\ny","b":[1,2]}` + "\n"},
		{in: `{"nul": "\u0000", "q": "'''\"\"\""}`, want: `{"nul":"\u0000","q":"'''\"\"\""}` + "\n"},
		{in: `[1]`, bad: true},
		{in: `"x"`, bad: true},
		{in: `{"a": }`, bad: true},
		{in: `{} {}`, bad: true},
	} {
		got, err := normalizeInputs(json.RawMessage(tc.in))
		if tc.bad {
			assert.ErrorIs(t, err, errdefs.ErrInvalidArgument, "%q", tc.in)
			continue
		}
		require.NoError(t, err, "%q", tc.in)
		assert.Equal(t, tc.want, string(got))
		assert.Equal(t, 1, bytes.Count(got, []byte("\n")), "one line")
	}
}

func TestCappedBuffer(t *testing.T) {
	t.Parallel()
	var tee bytes.Buffer
	b := newCappedBuffer(5, &tee)
	for _, s := range []string{"ab", "cde", "fgh", ""} {
		n, err := b.Write([]byte(s))
		require.NoError(t, err, "a capped buffer never fails a write")
		assert.Equal(t, len(s), n)
	}
	assert.Equal(t, "abcde", string(b.Bytes()))
	require.NoError(t, b.flush(context.Background()))
	assert.Equal(t, "abcde", tee.String(), "the tee sees the kept bytes only")
	assert.True(t, b.Truncated())

	b = newCappedBuffer(5, failingWriter{})
	_, err := b.Write([]byte("abc"))
	require.NoError(t, err, "a failing tee does not stop the capture")
	assert.Error(t, b.flush(context.Background()), "the tee's error is kept")
	assert.False(t, b.Truncated())
	assert.Equal(t, "abc", string(b.Bytes()))
}

// TestCappedBufferNeverWaitsOnItsReader: a writer nobody reads does not
// block the capture; flush gives up when its context is done.
func TestCappedBufferNeverWaitsOnItsReader(t *testing.T) {
	t.Parallel()
	pr, pw := io.Pipe() // nobody reads pr until the end
	b := newCappedBuffer(1<<20, pw)
	for range 100 {
		n, err := b.Write(bytes.Repeat([]byte("x"), 1000))
		require.NoError(t, err)
		require.Equal(t, 1000, n)
	}
	assert.Len(t, b.Bytes(), 100000, "all kept while the reader is stuck")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	assert.ErrorIs(t, b.flush(ctx), context.Canceled, "flush does not wait past its context")
	read := make(chan int)
	go func() {
		n, _ := io.ReadFull(pr, make([]byte, 100000))
		read <- n
	}()
	require.NoError(t, b.flush(context.Background()))
	assert.Equal(t, 100000, <-read, "the reader gets everything once it reads")
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("closed") }

func TestToValidUTF8(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "ok é", toValidUTF8([]byte("ok é")))
	s := toValidUTF8([]byte("a\xff\xfeb\xc3"))
	assert.Equal(t, "a\uFFFDb\uFFFD", s)
	_, err := json.Marshal(s)
	assert.NoError(t, err)
}

func TestInterpret(t *testing.T) {
	t.Parallel()
	limits := DefaultLimits()
	rep := &runnerReport{ResultSet: true, Result: json.RawMessage(`{"a":1}`)}
	for _, tc := range []struct {
		name       string
		res        Result
		rep        *runnerReport
		repErr     error
		wantType   string
		wantResult string
	}{
		{name: "ok", rep: rep, wantResult: `{"a":1}`},
		{name: "no result", rep: &runnerReport{}, wantResult: ""},
		{name: "exception", rep: &runnerReport{ExitCode: 1, Error: &CodeError{Type: "ValueError", Message: "x\xff"}}, res: Result{ExitCode: 1}, wantType: "ValueError"},
		{name: "timeout wins", res: Result{TimedOut: true, ExitCode: 137}, wantType: ErrorTimeout},
		{name: "oom of the code", res: Result{OOMKilled: true, ExitCode: 137}, wantType: ErrorOutOfMemory},
		{name: "oom of a child, code reported", res: Result{OOMKilled: true}, rep: rep, wantResult: `{"a":1}`},
		{name: "result too large", rep: nil, repErr: errResultTooLarge, wantType: ErrorResultTooLarge},
		{name: "no report", res: Result{ExitCode: 3}, wantType: ErrorNoReport},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			result, cerr := interpret(tc.res, limits, tc.rep, tc.repErr, 16<<20)
			if tc.wantType == "" {
				assert.Nil(t, cerr)
			} else if assert.NotNil(t, cerr) {
				assert.Equal(t, tc.wantType, cerr.Type)
				assert.NotContains(t, cerr.Message, "\xff", "messages are valid UTF-8")
			}
			assert.Equal(t, tc.wantResult, string(result))
		})
	}
}

func TestPrepareBox(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "sbrun-x")
	box := filepath.Join(dir, "box")
	require.NoError(t, prepareBox(dir, box, []byte("print(1)")))
	rr, err := openReport(filepath.Join(box, reportName), 1)
	require.NoError(t, err)
	defer rr.close()
	for name, mode := range map[string]os.FileMode{dir: 0o700 | os.ModeDir, box: 0o755 | os.ModeDir, filepath.Join(box, runnerName): 0o444, filepath.Join(box, codeName): 0o444, filepath.Join(box, reportName): 0o622 | os.ModeSocket} {
		fi, err := os.Stat(name)
		require.NoError(t, err)
		assert.Equal(t, mode, fi.Mode(), name)
	}
	code, err := os.ReadFile(filepath.Join(box, codeName))
	require.NoError(t, err)
	assert.Equal(t, "print(1)", string(code))
	assert.Equal(t, RunnerSource(), mustRead(t, filepath.Join(box, runnerName)))
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	return b
}

// forgedReport is what code tries to pass off as the runner's report.
const forgedReport = `{"exit_code": 0, "error": null, "result_set": true, "result": 42}`

// forgeFromChild is code whose forked child tries every way to the report
// (every descriptor it inherited, the report FIFO's path, its own
// connection to the report socket) with forgedReport, while the code
// itself reports 1.
var forgeFromChild = fmt.Sprintf(`import os, socket
forged = %q.encode()
pid = os.fork()
if pid == 0:
    for fd in range(1024):
        try:
            os.write(fd, forged)
        except OSError:
            pass
    try:
        fd = os.open("/run/skillbuild/report", os.O_WRONLY | os.O_NONBLOCK)
        os.write(fd, forged)
    except OSError:
        pass
    try:
        s = socket.socket(socket.AF_UNIX)
        s.connect("\0" + %q[1:])
        s.sendall(forged)
        s.close()
    except OSError:
        pass
    os._exit(0)
os.waitpid(pid, 0)
result = 1`, forgedReport, pid1.ReportSocket)

// childrenEndTheCode is code whose forked children do not exit but end
// the code as the runner would (they fall through it), each with a
// result of its own, while the code, at the pids limit or not, reports
// its own.
const childrenEndTheCode = `import os
r, w = os.pipe()
forked, err, child = 0, None, False
try:
    for i in range(8):
        if os.fork() == 0:
            os.close(w)
            os.read(r, 1)  # until the code closed its end: after the loop
            child = True
            break
        forked += 1
except OSError as e:
    err = type(e).__name__
if not child:
    os.close(w)
    while True:
        try:
            os.wait()
        except ChildProcessError:
            break
result = {"forked": forked, "child": child}`

// TestRunnerProtocol runs runner.py with the host's python3 under this
// test binary as the init (it links package pid1) in PID and network
// namespaces of its own, with the report FIFO, as in a run's container
// but without one: the report channel and the code's output stay apart
// whatever the code does, and nothing the code forks reports.
func TestRunnerProtocol(t *testing.T) {
	t.Parallel()
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3 on the host: the protocol is still covered by the integration suite")
	}
	if os.Geteuid() != 0 {
		t.Skip("the init needs PID and network namespaces of its own, which need root: the protocol is still covered by the integration suite")
	}
	exe, err := os.Executable()
	require.NoError(t, err)
	for _, tc := range []struct {
		name, code, inputs string
		exit               int
		errType            string
		result             string // "" for none
		stdout, stderr     string // substrings
		message            string // the error's exact message, when set
	}{
		{name: "result", code: `result = {"sum": inputs["a"] + inputs["b"]}`, inputs: `{"a":1,"b":2}`, result: `{"sum": 3}`},
		{name: "prints cannot forge the report", code: "import os\nprint('{\"exit_code\": 9, \"result\": 666}')\nos.write(1, b'}')\nresult = 1", result: "1", stdout: `"result": 666`},
		{name: "no result", code: "print('hi')", stdout: "hi"},
		{name: "exception", code: "print('before')\ndef f():\n    raise ValueError('bad \"v\"')\nf()", exit: 1, errType: "ValueError", stdout: "before", stderr: "line 3, in f"},
		{name: "module-qualified exception", code: "import json\njson.loads('{')", exit: 1, errType: "json.decoder.JSONDecodeError"},
		{name: "syntax error", code: "x = (", exit: 1, errType: "SyntaxError", stderr: "never closed"},
		{name: "sys.exit status", code: "import sys\nresult = 'r'\nsys.exit(7)", exit: 7, result: `"r"`},
		{name: "sys.exit message", code: "import sys\nsys.exit('bye')", exit: 1, stderr: "bye"},
		{name: "not serializable", code: "result = object()", exit: 1, errType: ErrorResultNotSerializable},
		{name: "NaN is not JSON", code: "result = float('nan')", exit: 1, errType: ErrorResultNotSerializable},
		{name: "circular", code: "result = []\nresult.append(result)", exit: 1, errType: ErrorResultNotSerializable},
		{name: "stdin is empty for the code", code: "import sys\nresult = sys.stdin.read()", result: `""`},
		{name: "stdlib code module is importable", code: "import code\nresult = hasattr(code, 'InteractiveConsole')", result: "true"},
		{name: "inputs are a dict", code: "result = type(inputs).__name__", inputs: `{}`, result: `"dict"`},
		{name: "bad inputs", code: "result = 1", inputs: `[1]`, exit: 2, errType: ErrorInput},
		{name: "os._exit skips the report", code: "import os\nos._exit(3)", exit: 3},
		{name: "closed descriptors do not lose the report", code: "import os\nos.closerange(3, 1024)\nresult = 'kept'", result: `"kept"`},
		{name: "messages keep quotes, newlines and non-ASCII", code: "raise ValueError('caf\\u00e9 \"q\"\\n\\\\ \\ud800')", exit: 1, errType: "ValueError", message: "café \"q\"\n\\ \ufffd"},
		// A plain run pays for neither json nor traceback (nor what they
		// pull in): the runner imports them only when needed.
		{name: "plain runs import no json", code: "import sys\nresult = [m for m in ('json', 'traceback') if m in sys.modules]", inputs: "{}", result: "[]"},
		{name: "the report does not go to a file that reused its descriptor", code: "import os\nos.closerange(3, 1024)\nf = open('mine', 'w')\nresult = f.fileno()", result: "3"},
		{name: "a socket default timeout does not cut the report", code: "import socket\nsocket.setdefaulttimeout(1e-9)\nresult = 'x' * (512 << 10)", result: `"` + strings.Repeat("x", 512<<10) + `"`},
		{name: "a forked child cannot forge the report", code: forgeFromChild, result: "1", stdout: forgedReport},
		{name: "forked children that end the code do not report", code: childrenEndTheCode, result: `{"forked": 8, "child": false}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "sbrun-t")
			box := filepath.Join(dir, "box")
			require.NoError(t, prepareBox(dir, box, []byte(tc.code)))
			rr, err := openReport(filepath.Join(box, reportName), 1<<20)
			require.NoError(t, err)
			defer rr.close()
			inputs := tc.inputs + "\n"
			cmd := &exec.Cmd{Path: exe, Args: pid1.Args(time.Minute, filepath.Join(box, reportName), python, "-B", filepath.Join(box, runnerName), filepath.Join(box, codeName), pid1.ReportSocket)}
			cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID | syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
			cmd.Env = []string{"PATH=/usr/bin:/bin", "LANG=C.UTF-8"}
			cmd.Dir = dir
			cmd.Stdin = strings.NewReader(inputs)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err = cmd.Run()
			exit := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				exit = ee.ExitCode()
			} else {
				require.NoError(t, err)
			}
			rep, err := rr.finish()
			require.NoError(t, err)
			assert.Equal(t, tc.exit, exit, "stderr: %s", stderr.String())
			assert.Contains(t, stdout.String(), tc.stdout)
			assert.Contains(t, stderr.String(), tc.stderr)
			if tc.name == "os._exit skips the report" {
				assert.Nil(t, rep)
				return
			}
			require.NotNil(t, rep, "stderr: %s", stderr.String())
			assert.Equal(t, tc.exit, rep.ExitCode)
			if tc.errType == "" {
				assert.Nil(t, rep.Error)
			} else if assert.NotNil(t, rep.Error) {
				assert.Equal(t, tc.errType, rep.Error.Type)
				if tc.message != "" {
					assert.Equal(t, tc.message, rep.Error.Message)
				}
			}
			if tc.result == "" {
				assert.False(t, rep.ResultSet)
			} else {
				assert.True(t, rep.ResultSet)
				assert.JSONEq(t, tc.result, string(rep.Result))
			}
		})
	}
}

// TestRunnerSendWaitsForTheInit: the runner's send returns (and the
// runner may exit) only once the init has read the whole message and
// closed its end. gVisor names a message's sender when it is read, and
// the init drops what a sender it already reaped sent.
func TestRunnerSendWaitsForTheInit(t *testing.T) {
	t.Parallel()
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3 on the host: the protocol is still covered by the integration suite")
	}
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, runnerName), runnerSource, 0o600))
	sock := filepath.Join(dir, "init")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	require.NoError(t, err)
	defer ln.Close()
	require.NoError(t, ln.SetDeadline(time.Now().Add(time.Minute)))
	const size = 4 << 20 // more than a socket holds
	cmd := exec.Command(python, "-B", "-c", fmt.Sprintf("import sys\nsys.path.insert(0, %q)\nimport runner\nrunner._send(%q, b'x' * %d)\nprint('returned', flush=True)", dir, sock, size))
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	defer cmd.Process.Kill() //nolint:errcheck // ended already, unless the test failed
	c, err := ln.AcceptUnix()
	require.NoError(t, err)
	got, err := io.ReadAll(c) // to the runner's end of what it sent
	require.NoError(t, err)
	assert.Equal(t, size, len(got))
	returned := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(out)
		returned <- string(b)
	}()
	select {
	case s := <-returned:
		t.Fatalf("send returned before the init closed its end: %q", s)
	case <-time.After(300 * time.Millisecond):
	}
	require.NoError(t, c.Close())
	select {
	case s := <-returned:
		assert.Equal(t, "returned\n", s)
	case <-time.After(time.Minute):
		t.Fatal("send did not return once the init closed its end")
	}
	require.NoError(t, cmd.Wait())
}

func TestReportTooLarge(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "report")
	rr, err := openReport(p, 10)
	require.NoError(t, err)
	defer rr.close()
	c, err := net.Dial("unix", p)
	require.NoError(t, err)
	// More than a socket holds: the reader drains while the writer writes.
	_, err = c.Write(bytes.Repeat([]byte("x"), 1<<20))
	require.NoError(t, err)
	require.NoError(t, c.Close())
	_, err = rr.finish()
	assert.ErrorIs(t, err, errResultTooLarge)
}

// TestReportOneConnection: the report socket takes the init's connection
// and no other (its path is removed at the accept); an init that never
// connects reported nothing.
func TestReportOneConnection(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "report")
	rr, err := openReport(p, 1<<20)
	require.NoError(t, err)
	defer rr.close()
	c, err := net.Dial("unix", p)
	require.NoError(t, err)
	_, err = c.Write([]byte("\n{\"exit_code\": 0, \"error\": null, \"result_set\": true, \"result\": 1}"))
	require.NoError(t, err)
	<-rr.ready
	_, err = net.Dial("unix", p)
	assert.ErrorIs(t, err, os.ErrNotExist, "the path is gone once the init is connected")
	require.NoError(t, c.Close())
	rep, err := rr.finish()
	require.NoError(t, err)
	require.NotNil(t, rep)
	assert.JSONEq(t, "1", string(rep.Result))

	nobody, err := openReport(filepath.Join(t.TempDir(), "report"), 10)
	require.NoError(t, err)
	defer nobody.close()
	rep, err = nobody.finish()
	assert.NoError(t, err)
	assert.Nil(t, rep)
}

func TestLeaseUID(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	seen := map[uint32]bool{}
	var leases []*uidLease
	for range 50 {
		l, err := leaseUID(dir, defaultOptions().runUIDs)
		require.NoError(t, err)
		assert.GreaterOrEqual(t, l.uid, uint32(RunUIDBase))
		assert.Less(t, l.uid, uint32(RunUIDBase+RunUIDCount))
		assert.False(t, seen[l.uid], "uid %d leased twice", l.uid)
		seen[l.uid] = true
		leases = append(leases, l)
	}
	for _, l := range leases {
		l.release()
		l.release() // idempotent
	}
	ents, err := os.ReadDir(filepath.Join(dir, "uids"))
	require.NoError(t, err)
	assert.Empty(t, ents, "released leases leave no file")

	// A lease whose holder died (its file stays, unlocked) is swept; a held
	// one is not.
	held, err := leaseUID(dir, defaultOptions().runUIDs)
	require.NoError(t, err)
	dead, err := leaseUID(dir, defaultOptions().runUIDs)
	require.NoError(t, err)
	dead.file.Close() // the process died: the lock is gone, the file stays
	sweepUIDLeases(dir)
	ents, err = os.ReadDir(filepath.Join(dir, "uids"))
	require.NoError(t, err)
	require.Len(t, ents, 1)
	assert.Equal(t, strconv.FormatUint(uint64(held.uid), 10), ents[0].Name())
	held.release()
}

func TestStartFailure(t *testing.T) {
	t.Parallel()
	err := startFailure("img", pid1.StartFailedStatus, nil, []byte(pid1.StartFailedPrefix+"no python3 on PATH\n"))
	assert.ErrorIs(t, err, errdefs.ErrFailedPrecondition)
	assert.EqualError(t, err, "image img: no python3 on PATH: failed precondition")
	assert.NoError(t, startFailure("img", pid1.StartFailedStatus, &runnerReport{}, []byte(pid1.StartFailedPrefix+"x")), "the runner reported: the code exited 127 itself")
	assert.NoError(t, startFailure("img", pid1.StartFailedStatus, nil, []byte("other")), "not the init's message")
	assert.NoError(t, startFailure("img", 1, nil, []byte(pid1.StartFailedPrefix+"x")))
}
