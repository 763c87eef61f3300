package integration

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/snapshots"
	sbruntime "github.com/skillbuild/skillbuild/runtime"
	"github.com/skillbuild/skillbuild/skill/api"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// runDoc is the --json document of `skillbuild run`.
type runDoc struct {
	SkillID    string          `json:"skill_id"`
	ImageTag   string          `json:"image_tag"`
	ExitCode   int             `json:"exit_code"`
	Stdout     string          `json:"stdout"`
	Stderr     string          `json:"stderr"`
	Result     json.RawMessage `json:"result"`
	Error      *runError       `json:"error"`
	TimedOut   bool            `json:"timed_out"`
	OOMKilled  bool            `json:"oom_killed"`
	Truncated  bool            `json:"truncated"`
	DurationMS int64           `json:"duration_ms"`
	UID        uint32          `json:"uid"`
	GID        uint32          `json:"gid"`
	Unscanned  string          `json:"unscanned"`
	Admission  *api.Admission  `json:"admission"`
}

type runError struct {
	Type      string `json:"type"`
	Message   string `json:"message"`
	Traceback string `json:"traceback"`
}

// decodeRun checks that out is one valid UTF-8 JSON document with exactly
// the documented keys, and decodes it.
func decodeRun(t *testing.T, out string) runDoc {
	t.Helper()
	require.True(t, utf8.ValidString(out), "the document is valid UTF-8")
	var keys map[string]json.RawMessage
	require.NoError(t, json.Unmarshal([]byte(out), &keys), "stdout is one JSON document: %s", tailString(out, 2000))
	want := []string{"skill_id", "image_tag", "exit_code", "stdout", "stderr", "result", "error", "timed_out", "oom_killed", "truncated", "duration_ms", "uid", "gid", "limits_enforced"}
	got := make([]string, 0, len(keys))
	for k := range keys {
		// How the image was admitted, and why it ran unverified, appear
		// only when there is something to say.
		if k != "admission" && k != "unscanned" {
			got = append(got, k)
		}
	}
	require.ElementsMatch(t, want, got)
	var d runDoc
	require.NoError(t, json.Unmarshal([]byte(out), &d))
	if string(d.Result) == "null" {
		d.Result = nil // no result
	}
	return d
}

// runCode runs code in the base image with `skillbuild run --json` and
// extra flags, and returns the document. The command itself must succeed.
func runCode(t *testing.T, code string, flags ...string) runDoc {
	t.Helper()
	args := append([]string{"run", "--json", "--image", env.base}, flags...)
	args = append(args, "-c", code, "hostile")
	r := sb(t, args...)
	require.Equal(t, 0, r.code, "skillbuild run failed: %s", r.stderr)
	return decodeRun(t, r.stdout)
}

// resultAs decodes the run's result into T.
func resultAs[T any](t *testing.T, d runDoc) T {
	t.Helper()
	var v T
	require.NotNil(t, d.Result, "the code set no result; error: %+v; stderr: %s", d.Error, d.Stderr)
	require.NoError(t, json.Unmarshal(d.Result, &v), "result: %s", d.Result)
	return v
}

// requireClean asserts a normal finish: no error, no limit hit.
func requireClean(t *testing.T, d runDoc) {
	t.Helper()
	require.Nil(t, d.Error, "stderr: %s", d.Stderr)
	require.False(t, d.TimedOut)
	require.False(t, d.OOMKilled)
	require.Equal(t, 0, d.ExitCode, "stderr: %s", d.Stderr)
}

// requireTimedOut asserts the run was killed at its deadline.
func requireTimedOut(t *testing.T, d runDoc) {
	t.Helper()
	require.True(t, d.TimedOut, "error: %+v stderr: %s", d.Error, d.Stderr)
	require.NotNil(t, d.Error)
	assert.Equal(t, "Timeout", d.Error.Type)
	assert.Equal(t, 128+int(syscall.SIGKILL), d.ExitCode)
	assert.False(t, d.OOMKilled)
}

// noProcessWith asserts no host process has marker in its command line.
func noProcessWith(t *testing.T, marker string) {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	require.NoError(t, err)
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(b, []byte(marker)) {
			t.Errorf("process %s survived the run: %q", e.Name(), bytes.ReplaceAll(b, []byte{0}, []byte{' '}))
		}
	}
}

// marker is a string unique to one test, to find its processes.
func marker(t *testing.T) string {
	return fmt.Sprintf("sbmarker%d", time.Now().UnixNano())
}

// ctdClient connects to the suite's containerd in the suite's namespace.
func ctdClient(t *testing.T) *containerd.Client {
	t.Helper()
	c, err := containerd.New(env.socket, containerd.WithDefaultNamespace(namespace))
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// runContainers lists the containers skillbuild's runtime labelled.
func runContainers(t *testing.T, c *containerd.Client) []containerd.Container {
	t.Helper()
	cs, err := c.Containers(context.Background(), fmt.Sprintf("labels.%q", sbruntime.LabelRun))
	require.NoError(t, err)
	return cs
}

// assertNoRunLeftovers asserts that nothing of any run is left: no
// container, task, snapshot, state directory, cgroup or process.
func assertNoRunLeftovers(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	c := ctdClient(t)
	for _, ct := range runContainers(t, c) {
		t.Errorf("container %s left behind", ct.ID())
	}
	cs, err := c.Containers(ctx)
	require.NoError(t, err)
	for _, ct := range cs {
		if strings.HasPrefix(ct.ID(), "sbrun-") {
			t.Errorf("container %s left behind", ct.ID())
		}
	}
	tasks, err := c.TaskService().List(ctx, nil)
	require.NoError(t, err)
	for _, tk := range tasks.Tasks {
		if strings.HasPrefix(tk.ID, "sbrun-") {
			t.Errorf("task %s left behind", tk.ID)
		}
	}
	err = c.SnapshotService("overlayfs").Walk(ctx, func(_ context.Context, info snapshots.Info) error {
		if strings.HasPrefix(info.Name, "sbrun-") || info.Labels[sbruntime.LabelRun] != "" {
			t.Errorf("snapshot %s (%s) left behind", info.Name, info.Kind)
		}
		if info.Kind != snapshots.KindCommitted && strings.HasPrefix(info.Name, "sbrun-") {
			t.Errorf("active snapshot %s left behind", info.Name)
		}
		return nil
	})
	require.NoError(t, err)
	if ents, err := os.ReadDir(filepath.Join(env.root, "runs")); err == nil {
		for _, e := range ents {
			if e.Name() == "uids" { // the run uid leases: empty when no run holds one
				leases, _ := os.ReadDir(filepath.Join(env.root, "runs", e.Name()))
				for _, l := range leases {
					t.Errorf("run uid lease %s left behind", l.Name())
				}
				continue
			}
			if e.Name() == "images" { // config and chain ID per image digest, kept on purpose
				continue
			}
			t.Errorf("run state %s left behind", e.Name())
		}
	}
	ctrls, err := os.ReadDir("/sys/fs/cgroup")
	require.NoError(t, err)
	for _, ctrl := range ctrls {
		for _, dir := range []string{filepath.Join("/sys/fs/cgroup", ctrl.Name(), namespace), filepath.Join("/sys/fs/cgroup", namespace)} {
			ents, _ := os.ReadDir(dir)
			for _, e := range ents {
				if strings.HasPrefix(e.Name(), "sbrun-") {
					t.Errorf("cgroup %s left behind", filepath.Join(dir, e.Name()))
				}
			}
		}
	}
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		b, err := os.ReadFile(filepath.Join("/proc", p.Name(), "cgroup"))
		if err == nil && bytes.Contains(b, []byte("/"+namespace+"/sbrun-")) {
			t.Errorf("process %s still in a run's cgroup", p.Name())
		}
	}
}

// TestRunHostile runs code that tries to break out or break the host, each
// case in its own run, and checks that every one ends safe. Afterwards a
// plain run still works and nothing of any run is left.
func TestRunHostile(t *testing.T) {
	// A service on the host's loopback that the sandbox must not reach.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	var hostConns atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			hostConns.Add(1)
			c.Close()
		}
	}()
	hostPort := ln.Addr().(*net.TCPAddr).Port
	// The same port on every address of the host.
	lnAll, err := net.Listen("tcp", ":0")
	require.NoError(t, err)
	defer lnAll.Close()
	go func() {
		for {
			c, err := lnAll.Accept()
			if err != nil {
				return
			}
			hostConns.Add(1)
			c.Close()
		}
	}()
	allPort := lnAll.Addr().(*net.TCPAddr).Port
	var hostIPs []string
	addrs, err := net.InterfaceAddrs()
	require.NoError(t, err)
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
			hostIPs = append(hostIPs, ipn.IP.String())
		}
	}
	hostIPsJSON, _ := json.Marshal(hostIPs)

	t.Cleanup(func() {
		if t.Failed() {
			return
		}
		d := runCode(t, "print(1)\nresult = 'still works'")
		requireClean(t, d)
		assert.Equal(t, "1\n", d.Stdout)
		assert.Equal(t, int64(0), hostConns.Load(), "the host's listeners saw no connection")
		assertNoRunLeftovers(t)
	})

	for _, tc := range []struct {
		name  string
		code  string
		flags []string
		check func(t *testing.T, d runDoc)
	}{
		{
			name:  "memory balloon is OOM-killed",
			flags: []string{"--memory", "64m"},
			code:  "b = []\nwhile True:\n    b.append(bytearray(8 << 20))",
			check: func(t *testing.T, d runDoc) {
				require.True(t, d.OOMKilled, "error: %+v", d.Error)
				require.NotNil(t, d.Error)
				assert.Equal(t, "OutOfMemory", d.Error.Type)
				assert.False(t, d.TimedOut)
				assert.NotEqual(t, 0, d.ExitCode)
			},
		},
		{
			name:  "forks stop at the pids limit",
			flags: []string{"--pids", "32"},
			code: `import os, time
forked, err = 0, None
try:
    for i in range(200):
        if os.fork() == 0:
            time.sleep(3600)
            os._exit(0)
        forked += 1
except OSError as e:
    err = type(e).__name__
result = {"forked": forked, "err": err}`,
			check: func(t *testing.T, d runDoc) {
				requireClean(t, d)
				r := resultAs[struct {
					Forked int    `json:"forked"`
					Err    string `json:"err"`
				}](t, d)
				assert.Equal(t, "BlockingIOError", r.Err)
				assert.Less(t, r.Forked, 32)
				assert.Greater(t, r.Forked, 0)
			},
		},
		{
			name:  "fork bomb is contained and killed at the deadline",
			flags: []string{"--timeout", "3s", "--pids", "32"},
			code: `import os, time
while True:
    try:
        os.fork()
    except OSError:
        time.sleep(0.01)`,
			check: requireTimedOut,
		},
		{
			name:  "CPU spin is killed at the deadline",
			flags: []string{"--timeout", "2s"},
			code:  "while True:\n    pass",
			check: requireTimedOut,
		},
		{
			name:  "sleep is killed at the deadline",
			flags: []string{"--timeout", "2s"},
			code:  "import time\nprint('sleeping', flush=True)\ntime.sleep(3600)",
			check: func(t *testing.T, d runDoc) {
				requireTimedOut(t, d)
				assert.Equal(t, "sleeping\n", d.Stdout, "output before the kill is kept")
			},
		},
		{
			name:  "SIGTERM trap does not save it",
			flags: []string{"--timeout", "2s"},
			code: `import signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGHUP, signal.SIG_IGN)
while True:
    time.sleep(1)`,
			check: requireTimedOut,
		},
		{
			name: "write to / and to the standard library is EROFS",
			code: `import errno, json, os
out = {}
for p in ["/evil", "/usr/evil", os.path.join(os.path.dirname(json.__file__), "evil.py"), "/usr/lib/python3/dist-packages/evil.py", "/run/skillbuild/code.py"]:
    try:
        with open(p, "w") as f:
            f.write("x")
        out[p] = "written"
    except OSError as e:
        out[p] = errno.errorcode[e.errno]
try:
    os.chmod("/run/skillbuild/report", 0o666)
    out["chmod"] = "changed"
except OSError as e:
    out["chmod"] = errno.errorcode[e.errno]
result = out`,
			check: func(t *testing.T, d runDoc) {
				requireClean(t, d)
				for p, e := range resultAs[map[string]string](t, d) {
					assert.Equal(t, "EROFS", e, p)
				}
			},
		},
		{
			name:  "filling /tmp and /dev/shm is ENOSPC",
			flags: []string{"--tmpfs-size", "16m"},
			code: `import errno
out = {}
for d in ["/tmp", "/dev/shm"]:
    n = 0
    try:
        with open(d + "/fill", "wb") as f:
            while True:
                f.write(b"x" * (1 << 20))
                f.flush()
                n += 1
    except OSError as e:
        out[d] = [errno.errorcode[e.errno], n]
result = out`,
			check: func(t *testing.T, d runDoc) {
				requireClean(t, d)
				r := resultAs[map[string][]any](t, d)
				for _, dir := range []string{"/tmp", "/dev/shm"} {
					require.Len(t, r[dir], 2, dir)
					assert.Equal(t, "ENOSPC", r[dir][0], dir)
					assert.LessOrEqual(t, r[dir][1], float64(16), dir)
				}
			},
		},
		{
			name:  "invalid UTF-8 output still gives valid JSON",
			flags: []string{"--output-limit", "1k"},
			code:  "import os\nos.write(1, b'ok \\xff\\xfe \\xc3\\x28 end')\nos.write(2, b'\\x80err')\nresult = 'r'",
			check: func(t *testing.T, d runDoc) {
				requireClean(t, d)
				assert.Equal(t, "ok \uFFFD \uFFFD( end", d.Stdout)
				assert.Equal(t, "\uFFFDerr", d.Stderr)
				assert.False(t, d.Truncated)
			},
		},
		{
			name: "TCP connects to the outside and to the host fail",
			code: fmt.Sprintf(`import errno, json, socket
out = {}
targets = [("1.1.1.1", 80), ("8.8.8.8", 53), ("127.0.0.1", %d)] + [(ip, %d) for ip in json.loads(%q)]
for host, port in targets:
    s = socket.socket()
    s.settimeout(5)
    try:
        s.connect((host, port))
        out[host + ":" + str(port)] = "connected"
    except OSError as e:
        out[host + ":" + str(port)] = errno.errorcode.get(e.errno, str(e))
    finally:
        s.close()
result = out`, hostPort, allPort, string(hostIPsJSON)),
			check: func(t *testing.T, d runDoc) {
				requireClean(t, d)
				r := resultAs[map[string]string](t, d)
				assert.Len(t, r, 3+len(hostIPs))
				for target, e := range r {
					assert.Contains(t, []string{"ENETUNREACH", "ECONNREFUSED", "EHOSTUNREACH"}, e, target)
				}
				assert.Equal(t, "ENETUNREACH", r["1.1.1.1:80"])
			},
		},
		{
			name:  "DNS lookup fails fast",
			flags: []string{"--timeout", "8s"}, // the resolver's own timeouts would exceed it
			code: `import socket
try:
    socket.getaddrinfo("pypi.org", 443)
    result = "resolved"
except socket.gaierror as e:
    result = "failed: " + str(e)`,
			check: func(t *testing.T, d runDoc) {
				requireClean(t, d)
				assert.Contains(t, resultAs[string](t, d), "failed")
			},
		},
		{
			name: "only loopback in the network namespace",
			code: "import os\nresult = sorted(os.listdir('/sys/class/net'))",
			check: func(t *testing.T, d runDoc) {
				requireClean(t, d)
				assert.Equal(t, []string{"lo"}, resultAs[[]string](t, d))
			},
		},
		{
			name: "raw socket, mount and unshare are EPERM",
			code: `import ctypes, errno, socket
out = {}
try:
    socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    out["raw"] = "opened"
except OSError as e:
    out["raw"] = errno.errorcode[e.errno]
try:
    socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    out["packet"] = "opened"
except OSError as e:
    out["packet"] = errno.errorcode[e.errno]
libc = ctypes.CDLL(None, use_errno=True)
def call(name, *args):
    rc = getattr(libc, name)(*args)
    return "ok" if rc == 0 else errno.errorcode[ctypes.get_errno()]
out["mount"] = call("mount", b"tmpfs", b"/tmp", b"tmpfs", 0, None)
out["unshare user"] = call("unshare", 0x10000000)
out["unshare mount"] = call("unshare", 0x00020000)
out["unshare net"] = call("unshare", 0x40000000)
result = out`,
			check: func(t *testing.T, d runDoc) {
				requireClean(t, d)
				for what, e := range resultAs[map[string]string](t, d) {
					assert.Equal(t, "EPERM", e, what)
				}
			},
		},
		{
			name: "setuid binary gains nothing",
			code: `import os, stat, subprocess, time
assert os.stat("/usr/bin/su").st_mode & stat.S_ISUID, "su is setuid root in the image"
p = subprocess.Popen(["/usr/bin/su", "root", "-c", "id -u"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
ids = None
while ids is None and p.poll() is None:
    try:
        status = open("/proc/%d/status" % p.pid).read().splitlines()
    except OSError:
        break
    if "Name:\tsu" in status:  # past exec: the setuid bits had their chance
        ids = [l for l in status if l.startswith(("Uid:", "Gid:"))]
    else:
        time.sleep(0.001)
p.kill()
p.wait()
result = {"ids": ids, "nnp": [l for l in open("/proc/self/status").read().splitlines() if l.startswith("NoNewPrivs")]}`,
			check: func(t *testing.T, d runDoc) {
				requireClean(t, d)
				r := resultAs[struct {
					IDs []string `json:"ids"`
					NNP []string `json:"nnp"`
				}](t, d)
				assert.Equal(t, []string{"NoNewPrivs:\t1"}, r.NNP)
				require.NotNil(t, r.IDs, "su was observed after exec")
				u := strconv.Itoa(int(d.UID))
				assert.Equal(t, []string{"Uid:\t" + u + "\t" + u + "\t" + u + "\t" + u, "Gid:\t" + u + "\t" + u + "\t" + u + "\t" + u}, r.IDs, "real, effective, saved, fs ids all unprivileged")
			},
		},
		{
			name: "kernel memory and sysrq are out of reach",
			code: `out = {}
try:
    with open("/proc/kcore", "rb") as f:
        out["kcore"] = len(f.read(4096))
except OSError as e:
    out["kcore"] = type(e).__name__
try:
    with open("/proc/sysrq-trigger", "w") as f:
        f.write("h")
    out["sysrq"] = "written"
except OSError as e:
    out["sysrq"] = type(e).__name__
result = out`,
			check: func(t *testing.T, d runDoc) {
				requireClean(t, d)
				r := resultAs[map[string]any](t, d)
				// Masked (reads nothing), unreadable, or absent from this kernel.
				assert.Contains(t, []any{float64(0), "PermissionError", "FileNotFoundError"}, r["kcore"])
				assert.Contains(t, []any{"PermissionError", "OSError", "FileNotFoundError"}, r["sysrq"])
			},
		},
		{
			name: "unprivileged by default",
			code: `import os
status = dict(l.split(":\t", 1) for l in open("/proc/self/status").read().splitlines() if ":\t" in l)
result = {"uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(), "caps": [status[k] for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")], "seccomp": status["Seccomp"], "env": sorted(os.environ), "cwd": os.getcwd()}`,
			check: func(t *testing.T, d runDoc) {
				requireClean(t, d)
				r := resultAs[struct {
					UID     int      `json:"uid"`
					GID     int      `json:"gid"`
					Groups  []int    `json:"groups"`
					Caps    []string `json:"caps"`
					Seccomp string   `json:"seccomp"`
					Env     []string `json:"env"`
					Cwd     string   `json:"cwd"`
				}](t, d)
				// An image without USER runs as an unprivileged uid of the
				// run's own, reported in the document.
				assert.Equal(t, int(d.UID), r.UID)
				assert.GreaterOrEqual(t, r.UID, sbruntime.RunUIDBase)
				assert.Less(t, r.UID, sbruntime.RunUIDBase+sbruntime.RunUIDCount)
				assert.Equal(t, r.UID, r.GID)
				assert.Equal(t, int(d.GID), r.GID)
				assert.Equal(t, []int{r.UID}, r.Groups)
				for _, c := range r.Caps {
					assert.Equal(t, "0000000000000000", c)
				}
				assert.Equal(t, "2", r.Seccomp, "seccomp filter mode")
				assert.ElementsMatch(t, []string{"PATH", "HOME", "LANG"}, r.Env, "no host environment")
				assert.Equal(t, "/", r.Cwd)
			},
		},
		{
			name:  "root only when the caller insists, and still without privileges",
			flags: []string{"--user", "0:0"},
			code: `import errno, os
status = dict(l.split(":\t", 1) for l in open("/proc/self/status").read().splitlines() if ":\t" in l)
try:
    open("/evil", "w")
    w = "written"
except OSError as e:
    w = errno.errorcode[e.errno]
result = {"uid": os.getuid(), "capeff": status["CapEff"], "write": w}`,
			check: func(t *testing.T, d runDoc) {
				requireClean(t, d)
				r := resultAs[map[string]any](t, d)
				assert.Equal(t, float64(0), r["uid"])
				assert.Equal(t, "0000000000000000", r["capeff"])
				assert.Equal(t, "EROFS", r["write"])
			},
		},
		{
			name: "code that raises",
			code: "print('before')\ndef f(x):\n    raise ValueError('bad %r' % x)\nf('''\"q\"''')",
			check: func(t *testing.T, d runDoc) {
				require.NotNil(t, d.Error)
				assert.Equal(t, 1, d.ExitCode)
				assert.Equal(t, "ValueError", d.Error.Type)
				assert.Equal(t, `bad '"q"'`, d.Error.Message)
				assert.Contains(t, d.Error.Traceback, `File "/run/skillbuild/code.py", line 3, in f`)
				assert.NotContains(t, d.Error.Traceback, "runner.py", "the runner's frames are not the code's")
				assert.Equal(t, "before\n", d.Stdout)
				assert.Contains(t, d.Stderr, "ValueError: bad")
				assert.Nil(t, d.Result)
			},
		},
		{
			name: "non-JSON-serializable result is a clear error",
			code: "result = {'when': object()}",
			check: func(t *testing.T, d runDoc) {
				require.NotNil(t, d.Error)
				assert.Equal(t, "ResultNotSerializable", d.Error.Type)
				assert.Contains(t, d.Error.Message, "result is not JSON-serializable: TypeError: Object of type object is not JSON serializable")
				assert.Nil(t, d.Result)
				assert.Equal(t, 1, d.ExitCode)
			},
		},
		{
			name: "what the code prints cannot break the result",
			code: "import os, sys\nprint('{\"result\": 666, \"exit_code\": 3}')\nos.write(1, b'\\n}}}')\nsys.stderr.write('{')\nresult = [1, 'two']",
			check: func(t *testing.T, d runDoc) {
				requireClean(t, d)
				assert.JSONEq(t, `[1, "two"]`, string(d.Result))
				assert.Contains(t, d.Stdout, `"result": 666`)
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.check(t, runCode(t, tc.code, tc.flags...))
		})
	}

	t.Run("daemonized children are killed with the run", func(t *testing.T) {
		t.Parallel()
		for _, flags := range [][]string{nil, {"--timeout", "2s"}} {
			m := marker(t)
			spin := ""
			if flags != nil {
				spin = "while True:\n    pass"
			}
			code := fmt.Sprintf(`import os, subprocess, sys
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(3600)", %q])
    os._exit(0)
os.wait()
result = "left a daemon behind"
%s`, m, spin)
			d := runCode(t, code, flags...)
			if flags == nil {
				requireClean(t, d)
				assert.Equal(t, `"left a daemon behind"`, string(d.Result))
			} else {
				requireTimedOut(t, d)
			}
			noProcessWith(t, m)
		}
	})

	t.Run("huge stdout and stderr are capped, the host's memory stays flat", func(t *testing.T) {
		t.Parallel()
		code := `import sys
chunk = "x" * (1 << 20)
for i in range(200):
    sys.stdout.write(chunk)
    sys.stderr.write(chunk)
result = "done"`
		cmd := sbCmd("run", "--json", "--image", env.base, "--output-limit", "1m", "--cpus", "1", "-c", code, "hostile")
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		peak, err := runPeakRSS(cmd)
		require.NoError(t, err, errb.String())
		d := decodeRun(t, out.String())
		requireClean(t, d)
		assert.True(t, d.Truncated)
		assert.Len(t, d.Stdout, 1<<20)
		assert.Len(t, d.Stderr, 1<<20)
		assert.Equal(t, `"done"`, string(d.Result))
		assert.Less(t, peak, int64(150<<10), "skillbuild's peak RSS (KiB) after 400 MiB of output")
		t.Logf("peak RSS %d KiB", peak)
	})

	t.Run("inputs round-trip byte-exact", func(t *testing.T) {
		t.Parallel()
		big := strings.Repeat("0123456789abcdef", 5<<20/16) // 5 MiB
		inputs := map[string]any{
			"quotes":    `'single' "double" \backslash\ `,
			"triple":    `''' """ '''"""`,
			"newlines":  "a\nb\r\nc\n",
			"nul":       "a\x00b\x00",
			"unicode":   "é ✓ 😀 \u2028",
			"injection": "\"); import os; os._exit(9); (\"\n'''); raise SystemExit(9) #",
			"nested":    map[string]any{"list": []any{1.5, nil, true, "x"}},
			"big":       big,
		}
		raw, err := json.Marshal(inputs)
		require.NoError(t, err)
		f := filepath.Join(t.TempDir(), "inputs.json")
		require.NoError(t, os.WriteFile(f, raw, 0o600))
		sum := sha256.Sum256([]byte(big))
		d := runCode(t, `import hashlib
result = {"echo": inputs, "big_sha256": hashlib.sha256(inputs["big"].encode()).hexdigest(), "nul_len": len(inputs["nul"])}`,
			"--inputs-file", f)
		requireClean(t, d)
		r := resultAs[struct {
			Echo      map[string]any `json:"echo"`
			BigSHA256 string         `json:"big_sha256"`
			NulLen    int            `json:"nul_len"`
		}](t, d)
		assert.Equal(t, hex.EncodeToString(sum[:]), r.BigSHA256, "the code saw the exact bytes")
		assert.Equal(t, 4, r.NulLen)
		assert.Equal(t, inputs, r.Echo, "and they came back exact")
	})
}

// TestRunLimitsAndInterrupt: limits from skill.yaml, overridden by flags,
// reach the container's cgroup; Ctrl-C ends the run and leaves nothing.
func TestRunLimitsAndInterrupt(t *testing.T) {
	dir := t.TempDir()
	yaml := "id: limited\nversion: 1\nrun: {memory: 96m, cpus: 0.25, pids: 48, timeout: 5m}\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "skill.yaml"), []byte(yaml), 0o600))
	cmd := sbCmd("run", "-f", filepath.Join(dir, "skill.yaml"), "--image", env.base, "--pids", "16",
		"-c", "import time\nprint('ready', flush=True)\ntime.sleep(3600)")
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	require.NoError(t, cmd.Start())
	defer cmd.Process.Kill() //nolint:errcheck
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err, "stderr: %s", errb.String())
	require.Equal(t, "ready\n", line, "the code's output passes through as it happens")

	c := ctdClient(t)
	cs := runContainers(t, c)
	require.Len(t, cs, 1)
	id := cs[0].ID()
	cg := func(ctrl, file string) string {
		dir := filepath.Join("/sys/fs/cgroup", ctrl, namespace, id)
		if cgroupV2() {
			dir = filepath.Join("/sys/fs/cgroup", namespace, id)
		}
		b, err := os.ReadFile(filepath.Join(dir, file))
		require.NoError(t, err)
		return strings.TrimSpace(string(b))
	}
	if cgroupV2() {
		assert.Equal(t, strconv.Itoa(96<<20), cg("memory", "memory.max"), "skill.yaml")
		assert.Equal(t, "0", cg("memory", "memory.swap.max"), "no swap")
		assert.Equal(t, "25000 100000", cg("cpu", "cpu.max"), "skill.yaml")
	} else {
		assert.Equal(t, strconv.Itoa(96<<20), cg("memory", "memory.limit_in_bytes"), "skill.yaml")
		assert.Equal(t, strconv.Itoa(96<<20), cg("memory", "memory.memsw.limit_in_bytes"), "no swap")
		assert.Equal(t, "25000", cg("cpu", "cpu.cfs_quota_us"), "skill.yaml")
	}
	assert.Equal(t, "16", cg("pids", "pids.max"), "the flag wins over skill.yaml")
	labels, err := cs[0].Labels(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "1", labels[sbruntime.LabelRun])
	deadline, err := time.Parse(time.RFC3339Nano, labels[sbruntime.LabelDeadline])
	require.NoError(t, err)
	assert.True(t, deadline.After(time.Now().Add(time.Minute)), "deadline %s is the 5m timeout away", deadline)

	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	err = cmd.Wait()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, 130, ee.ExitCode(), "stderr: %s", errb.String())
	assert.Contains(t, errb.String(), "cancelled")
	assertNoRunLeftovers(t)
}

// TestRunOrphanSweep: a skillbuild killed mid-run leaves its container; a
// sweep that cannot tell whether its owner lives (another state
// directory: no owner lock to try) removes it once its deadline has
// passed, not before. (With the run's own state directory it goes at
// once: TestRunKilledOwnerSweptAtOnce.)
func TestRunOrphanSweep(t *testing.T) {
	startSleepingRun(t, "4s", "orphan")() // no cleanup, no timeout: an orphan

	c := ctdClient(t)
	cs := runContainers(t, c)
	require.Len(t, cs, 1, "the orphan")
	labels, err := cs[0].Labels(context.Background())
	require.NoError(t, err)
	deadline, err := time.Parse(time.RFC3339Nano, labels[sbruntime.LabelDeadline])
	require.NoError(t, err)

	ctx := context.Background()
	state := sbruntime.WithStateDir(t.TempDir())
	if time.Now().Before(deadline) {
		_, err = sbruntime.New(ctx, c, state, sbruntime.WithSweepGrace(0))
		require.NoError(t, err)
		if time.Now().Before(deadline) { // still: the sweep ran before it
			assert.Len(t, runContainers(t, c), 1, "a run within its deadline is left alone")
		}
	}
	time.Sleep(time.Until(deadline) + 100*time.Millisecond)
	r, err := sbruntime.New(ctx, c, state, sbruntime.WithSweepGrace(0))
	require.NoError(t, err)
	n, err := r.Sweep(ctx)
	require.NoError(t, err)
	assert.Equal(t, 0, n, "New already swept it")
	// Its state directory is the run's own one's to sweep.
	_, err = sbruntime.New(ctx, c, sbruntime.WithStateDir(filepath.Join(env.root, "runs")))
	require.NoError(t, err)
	assertNoRunLeftovers(t)
}

// TestRunSkillImage installs a skill without requirements and runs code in
// it by skill ID: the image's USER, working directory and venv apply, and
// site-packages is read-only.
func TestRunSkillImage(t *testing.T) {
	links := t.TempDir()
	r := sb(t, "install", "--base", env.base, "--find-links", links, "--no-scan", "--progress", "plain", "runskill")
	require.Equal(t, 0, r.code, r.stderr)

	r = sb(t, "run", "--json", "--inputs", `{"n": 2}`, "-c", `import errno, os, sys, sysconfig
site = sysconfig.get_paths()["purelib"]
try:
    open(os.path.join(site, "evil.py"), "w")
    w = "written"
except OSError as e:
    w = errno.errorcode[e.errno]
result = {"uid": os.getuid(), "cwd": os.getcwd(), "prefix": sys.prefix, "site": site, "write": w, "n": inputs["n"] * 21}`, "runskill")
	require.Equal(t, 0, r.code, r.stderr)
	d := decodeRun(t, r.stdout)
	requireClean(t, d)
	assert.Equal(t, "runskill", d.SkillID)
	assert.Equal(t, "atom-skill:runskill-v1", d.ImageTag)
	res := resultAs[map[string]any](t, d)
	// The image's USER is skillbuild's unprivileged 65532, which every run
	// gets as a uid of its own.
	assert.Equal(t, float64(d.UID), res["uid"], "the uid the document reports")
	assert.GreaterOrEqual(t, d.UID, uint32(sbruntime.RunUIDBase))
	assert.Less(t, d.UID, uint32(sbruntime.RunUIDBase+sbruntime.RunUIDCount))
	assert.Equal(t, "/opt/skill", res["cwd"])
	assert.Equal(t, "/opt/skill/venv", res["prefix"], "the skill's venv is the interpreter's")
	assert.True(t, strings.HasPrefix(res["site"].(string), "/opt/skill/venv/"), res["site"])
	assert.Equal(t, "EROFS", res["write"])
	assert.Equal(t, float64(42), res["n"])

	// Without --json: output passes through, the result follows, the exit
	// status is the code's.
	r = sb(t, "run", "-c", "import sys\nprint('out')\nprint('err', file=sys.stderr)\nresult = {'a': 1}\nsys.exit(3)", "runskill")
	assert.Equal(t, 3, r.code)
	assert.Equal(t, "out\n{\"a\": 1}\n", r.stdout)
	assert.Equal(t, "err\n", r.stderr)

	r = sb(t, "run", "--version", "2", "-c", "print(1)", "runskill")
	assert.Equal(t, 4, r.code, "a missing image has its own exit status")
	assert.Contains(t, r.stderr, "image atom-skill:runskill-v2 not found, run `skillbuild install --version 2 runskill` first")
	assertNoRunLeftovers(t)
}

// TestRunBadInput: problems with the request are exit status 2 and start
// nothing.
func TestRunBadInput(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"run", "--image", env.base, "--inputs", "[1, 2]", "-c", "x = 1", "t"},
		{"run", "--image", env.base, "--inputs", "{", "-c", "x = 1", "t"},
		{"run", "--image", env.base, "-c", "x = 1", "--code", "/nonexistent.py", "t"},
		{"run", "--image", env.base, "t"},
		{"run", "--image", env.base, "--memory", "lots", "-c", "x = 1", "t"},
		{"run", "--image", env.base, "-c", "x = 1", "t", "extra"},
	} {
		r := sb(t, args...)
		assert.Equal(t, 2, r.code, "%v: %s", args, r.stderr)
	}
	r := sb(t, "run", "--json", "-c", "print(1)", "nosuchskill")
	assert.Equal(t, 4, r.code)
	d := decodeRun(t, r.stdout)
	require.NotNil(t, d.Error)
	assert.Equal(t, "ImageNotFound", d.Error.Type)
	assert.Equal(t, "image atom-skill:nosuchskill-v1 not found, run `skillbuild install nosuchskill` first", d.Error.Message)
	assert.Equal(t, "nosuchskill", d.SkillID)
	assert.Equal(t, "atom-skill:nosuchskill-v1", d.ImageTag)
	// No process ran: no exit status or user is made up for it.
	var raw map[string]json.RawMessage
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &raw))
	for _, k := range []string{"exit_code", "uid", "gid"} {
		assert.Equal(t, "null", string(raw[k]), k)
	}
}

// TestRunAPI drives the Go API the platform embeds: live output writers,
// typed errors, and cancellation through ctx.
func TestRunAPI(t *testing.T) {
	ctx := context.Background()
	r := suiteRunner(t)

	var out, errb bytes.Buffer
	res, err := r.Run(ctx, sbruntime.Request{
		Image:  env.base,
		Code:   []byte("import sys\nprint('to out')\nprint('to err', file=sys.stderr)\nresult = {'got': inputs['x']}"),
		Inputs: json.RawMessage(`{"x": [1, 2]}`),
		Limits: sbruntime.Limits{MemoryBytes: 64 << 20, Timeout: 20 * time.Second},
		Stdout: &out,
		Stderr: &errb,
	})
	require.NoError(t, err)
	assert.Equal(t, 0, res.ExitCode)
	assert.Nil(t, res.Error)
	assert.JSONEq(t, `{"got": [1, 2]}`, string(res.Result))
	assert.Equal(t, "to out\n", res.Stdout)
	assert.Equal(t, "to out\n", out.String(), "the writer saw the same output")
	assert.Equal(t, "to err\n", errb.String())
	assert.Positive(t, res.Duration)

	_, err = r.Run(ctx, sbruntime.Request{Image: "docker.io/library/atom-skill:nope-v1", Code: []byte("pass")})
	assert.ErrorIs(t, err, sbruntime.ErrImageNotFound)

	// Cancel once the code runs: the error says so and nothing is left.
	cctx, cancel := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	go func() {
		line, _ := bufio.NewReader(pr).ReadString('\n')
		if line == "running\n" {
			cancel()
		}
		io.Copy(io.Discard, pr) //nolint:errcheck
	}()
	_, err = r.Run(cctx, sbruntime.Request{Image: env.base, Code: []byte("import time\nprint('running', flush=True)\ntime.sleep(3600)"), Stdout: pw})
	pw.Close()
	assert.ErrorIs(t, err, context.Canceled)
	assertNoRunLeftovers(t)
}

// TestRunCancelAnywhere cancels runs at moments spread over their whole
// life (before the container exists, while the task is created, while the
// code runs): whatever the moment, nothing is left behind and the next run
// works.
func TestRunCancelAnywhere(t *testing.T) {
	ctx := context.Background()
	r := suiteRunner(t)
	req := sbruntime.Request{Image: env.base, Code: []byte("import time\ntime.sleep(0.2)")}
	for i := range 30 {
		cctx, cancel := context.WithTimeout(ctx, time.Duration(i)*15*time.Millisecond)
		_, err := r.Run(cctx, req)
		cancel()
		if err != nil {
			assert.ErrorIs(t, err, context.DeadlineExceeded, "cancelled after %d ms", i*15)
		}
		assertNoRunLeftovers(t)
	}
	res, err := r.Run(ctx, sbruntime.Request{Image: env.base, Code: []byte("result = 'ok'")})
	require.NoError(t, err)
	assert.Equal(t, `"ok"`, string(res.Result))
}
