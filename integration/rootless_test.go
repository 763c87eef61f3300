package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skillbuild/skillbuild/integration/pyindex"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// rootlessUser is an unprivileged account made for one test, with its own
// subordinate id ranges, home and runtime directory.
type rootlessUser struct {
	name             string
	uid, gid         int
	subStart, subLen int
	dir              string // shared with the user: binary, base archive, database
	home, runDir     string
	bin              string
}

// newRootlessUser creates the account (removed again at cleanup) and a
// copy of the binary under test the user can execute.
func newRootlessUser(t testing.TB) *rootlessUser {
	t.Helper()
	for _, bin := range []string{"useradd", "usermod", "userdel", "rootlesskit", "newuidmap", "newgidmap", "nsenter"} {
		_, err := exec.LookPath(bin)
		require.NoError(t, err, "%s is needed to test rootless mode (make deps installs it)", bin)
	}
	// Short: BuildKit's forwarded sockets live under the runtime directory
	// and unix socket paths end at 107 bytes.
	dir, err := os.MkdirTemp("", "sbrl-")
	require.NoError(t, err)
	require.NoError(t, os.Chmod(dir, 0o755))
	u := &rootlessUser{name: fmt.Sprintf("sbrl%d", os.Getpid()%100000), dir: dir, home: filepath.Join(dir, "home")}
	out, err := exec.Command("useradd", "--no-create-home", "--home-dir", u.home, "--shell", "/usr/sbin/nologin", "--user-group", u.name).CombinedOutput()
	require.NoError(t, err, "useradd: %s", out)
	t.Cleanup(func() { u.remove(t) })
	// useradd gives new users a range where login.defs says so (Debian
	// does); otherwise add one no other line uses. One range only: two
	// make newuidmap write several extents, which some kernels refuse.
	u.subStart, u.subLen = subIDRange(t, u.name)
	if u.subLen == 0 {
		u.subStart, u.subLen = freeSubIDRange(t), 65536
		rng := fmt.Sprintf("%d-%d", u.subStart, u.subStart+u.subLen-1)
		out, err = exec.Command("usermod", "--add-subuids", rng, "--add-subgids", rng, u.name).CombinedOutput()
		require.NoError(t, err, "usermod: %s", out)
	}

	uo, err := exec.Command("id", "-u", u.name).Output()
	require.NoError(t, err)
	u.uid, _ = strconv.Atoi(strings.TrimSpace(string(uo)))
	g, err := exec.Command("id", "-g", u.name).Output()
	require.NoError(t, err)
	u.gid, _ = strconv.Atoi(strings.TrimSpace(string(g)))

	u.runDir = filepath.Join(dir, "run")
	for _, d := range []string{u.home, u.runDir} {
		require.NoError(t, os.MkdirAll(d, 0o700))
		require.NoError(t, os.Chown(d, u.uid, u.gid))
	}
	u.bin = filepath.Join(dir, "skillbuild")
	copyFile(t, env.bin, u.bin, 0o755)
	return u
}

// subIDRange is name's range in /etc/subuid, if it has one.
func subIDRange(t testing.TB, name string) (start, n int) {
	b, err := os.ReadFile("/etc/subuid")
	if os.IsNotExist(err) {
		return 0, 0
	}
	require.NoError(t, err)
	for _, l := range strings.Split(string(b), "\n") {
		p := strings.Split(l, ":")
		if len(p) == 3 && p[0] == name {
			start, _ = strconv.Atoi(p[1])
			n, _ = strconv.Atoi(p[2])
			return start, n
		}
	}
	return 0, 0
}

// freeSubIDRange is the start of 65536 ids no line of /etc/subuid or
// /etc/subgid uses.
func freeSubIDRange(t testing.TB) int {
	end := 100000
	for _, f := range []string{"/etc/subuid", "/etc/subgid"} {
		b, err := os.ReadFile(f)
		if os.IsNotExist(err) {
			continue
		}
		require.NoError(t, err)
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			p := strings.Split(sc.Text(), ":")
			if len(p) != 3 {
				continue
			}
			s, err1 := strconv.Atoi(p[1])
			n, err2 := strconv.Atoi(p[2])
			if err1 == nil && err2 == nil && s+n > end {
				end = s + n
			}
		}
	}
	return (end + 65535) / 65536 * 65536
}

func copyFile(t testing.TB, from, to string, mode os.FileMode) {
	t.Helper()
	in, err := os.Open(from)
	require.NoError(t, err)
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	require.NoError(t, err)
	_, err = io.Copy(out, in)
	require.NoError(t, err)
	require.NoError(t, out.Close())
}

// sb runs the binary under test as the user, with a clean environment of
// its own (XDG_RUNTIME_DIR set, XDG_DATA_HOME left to default under HOME).
func (u *rootlessUser) sb(t testing.TB, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, u.bin, args...)
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + u.home, "LANG=C.UTF-8", "XDG_RUNTIME_DIR=" + u.runDir}
	cmd.Dir = u.home
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(u.uid), Gid: uint32(u.gid), Groups: []uint32{}}}
	return runCmd(t, cmd, "["+u.name+"] ", args)
}

// asRoot runs the binary under test as root (for `rootless setup --user`).
func (u *rootlessUser) asRoot(t testing.TB, args ...string) result {
	t.Helper()
	cmd := exec.Command(u.bin, args...)
	cmd.Env = cleanEnv()
	return runCmd(t, cmd, "[root] ", args)
}

// processes lists the live (not zombie) processes of the user: its own uid
// or one of its subordinate ids.
func (u *rootlessUser) processes() []string {
	entries, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		status, err := os.ReadFile(filepath.Join("/proc", e.Name(), "status"))
		if err != nil {
			continue
		}
		var uid int
		var state, name string
		for _, l := range strings.Split(string(status), "\n") {
			f := strings.Fields(l)
			switch {
			case len(f) >= 2 && f[0] == "Uid:":
				uid, _ = strconv.Atoi(f[1])
			case len(f) >= 2 && f[0] == "State:":
				state = f[1]
			case len(f) >= 2 && f[0] == "Name:":
				name = f[1]
			}
		}
		mine := uid == u.uid || (uid >= u.subStart && uid < u.subStart+u.subLen)
		if mine && state != "Z" && state != "X" {
			out = append(out, e.Name()+":"+name)
		}
	}
	return out
}

// remove stops whatever the user left running, takes back its cgroups,
// and deletes the account and its files.
func (u *rootlessUser) remove(t testing.TB) {
	if u.bin != "" {
		if _, err := os.Stat(u.bin); err == nil {
			u.sb(t, "rootless", "stop")
			u.asRoot(t, "rootless", "setup", "--user", u.name, "--undo")
		}
	}
	for _, p := range u.processes() {
		pid, _ := strconv.Atoi(strings.SplitN(p, ":", 2)[0])
		syscall.Kill(pid, syscall.SIGKILL) //nolint:errcheck
	}
	if out, err := exec.Command("userdel", u.name).CombinedOutput(); err != nil {
		t.Logf("userdel %s: %v: %s", u.name, err, out)
	}
	// userdel keeps subordinate ranges on some versions of shadow.
	for _, f := range []string{"/etc/subuid", "/etc/subgid"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var keep []string
		for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
			if !strings.HasPrefix(l, u.name+":") && !strings.HasPrefix(l, strconv.Itoa(u.uid)+":") {
				keep = append(keep, l)
			}
		}
		os.WriteFile(f, []byte(strings.Join(keep, "\n")+"\n"), 0o644) //nolint:errcheck
	}
	if os.Getenv("SKILLBUILD_TEST_KEEP") == "" {
		os.RemoveAll(u.dir)
	}
}

// runRootless is `run --json` as the user, decoded.
func (u *rootlessUser) run(t *testing.T, skill, code string, flags ...string) (runDoc, result, map[string]string) {
	t.Helper()
	args := append([]string{"run", "--json"}, flags...)
	args = append(args, "-c", code, skill)
	r := u.sb(t, args...)
	var d runDoc
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &d), "stdout: %s", r.stdout)
	var lim struct {
		LimitsEnforced map[string]string `json:"limits_enforced"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &lim))
	if string(d.Result) == "null" {
		d.Result = nil
	}
	return d, r, lim.LimitsEnforced
}

const forkBomb = `
import os, time
n = 0
try:
    for i in range(200):
        if os.fork() == 0:
            time.sleep(5)
            os._exit(0)
        n += 1
    result = {"forked": n}
except OSError as e:
    result = {"forked": n, "error": type(e).__name__}
`

const balloon = `
chunks = []
for i in range(64):
    chunks.append(bytearray(16 << 20))
result = len(chunks)
`

// TestRootless drives rootless mode end to end as an unprivileged user:
// its own containerd inside RootlessKit, base import, builds of two skills
// with conflicting versions, the scan gate, runs under rlimits (refused by
// default, reported when accepted) and under a delegated cgroup subtree,
// ls/rm/prune, and nothing left behind after `rootless stop`.
func TestRootless(t *testing.T) {
	u := newRootlessUser(t)

	// What the user needs from the suite, readable to it: the base image
	// as an OCI archive, the advisory database.
	archive := filepath.Join(u.dir, "base.tar")
	out, err := exec.Command("ctr", "--address", env.socket, "--namespace", namespace, "images", "export", archive, fullName(t, env.base)).CombinedOutput()
	require.NoError(t, err, "ctr export: %s", out)
	require.NoError(t, os.Chmod(archive, 0o644))
	db := filepath.Join(u.dir, "osv.zip")
	copyFile(t, filepath.Join("..", "scan", "testdata", "PyPI-pypa-20241010.zip"), db, 0o644)

	srv, _ := index(t,
		pyindex.Wheel{Name: "pkgx", Version: "1.0"},
		pyindex.Wheel{Name: "pkgx", Version: "2.0"},
	)

	var setup struct {
		Ready  bool `json:"ready"`
		Checks []struct {
			Name string `json:"name"`
			OK   bool   `json:"ok"`
		} `json:"checks"`
		Limits struct {
			Cgroups bool   `json:"cgroups"`
			Parent  string `json:"parent"`
		} `json:"limits"`
	}
	r := u.sb(t, "rootless", "setup", "--json")
	require.Equal(t, 0, r.code, "every prerequisite is there: %s", r.stdout)
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &setup))
	assert.True(t, setup.Ready)
	assert.False(t, setup.Limits.Cgroups, "nothing is delegated yet")

	var st struct {
		Running  bool   `json:"running"`
		Pid      int    `json:"pid"`
		ChildPid int    `json:"child_pid"`
		Socket   string `json:"socket"`
		Root     string `json:"state_root"`
	}
	r = u.sb(t, "rootless", "start", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &st))
	require.True(t, st.Running)
	assert.Equal(t, filepath.Join(u.runDir, "skillbuild", "containerd.sock"), st.Socket, "the socket lives under XDG_RUNTIME_DIR")
	assert.Equal(t, filepath.Join(u.home, ".local", "share", "skillbuild", "state"), st.Root, "state under XDG_DATA_HOME's default")
	r = u.sb(t, "rootless", "start", "--json")
	require.Equal(t, 0, r.code, "a second start leaves the running instance alone: %s", r.stderr)
	var st2 struct {
		Pid int `json:"pid"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &st2))
	assert.Equal(t, st.Pid, st2.Pid)

	r = u.sb(t, "base", "import", "--oci-archive", archive)
	require.Equal(t, 0, r.code, r.stderr)
	r = u.sb(t, "db", "import", db)
	require.Equal(t, 0, r.code, r.stderr)

	install := func(id string, reqs ...string) (installJSON, result, map[string]string) {
		args := append([]string{"install", "--json", "--progress", "plain", "--base", env.base, "--index-url", srv.URL(), id}, reqs...)
		r := u.sb(t, args...)
		var lim struct {
			LimitsEnforced map[string]string `json:"limits_enforced"`
		}
		json.Unmarshal([]byte(r.stdout), &lim) //nolint:errcheck
		return parseInstall(t, r), r, lim.LimitsEnforced
	}

	t.Run("conflicting versions, built without cgroups", func(t *testing.T) {
		a, ra, lim := install("skill-a", "pkgx==1.0")
		require.Equal(t, 0, ra.code, ra.stderr)
		assert.Equal(t, map[string]string{"memory": "rlimit", "cpus": "rlimit", "pids": "none"}, lim, "the build says which limits held and how")
		assert.Contains(t, ra.stderr, "pids not enforced")
		b, rb, _ := install("skill-b", "pkgx==2.0")
		require.Equal(t, 0, rb.code, rb.stderr)
		assert.NotEqual(t, a.Digest, b.Digest)
	})

	t.Run("scan gate refuses", func(t *testing.T) {
		out, r, _ := install("vuln", "pip==23.0.1")
		assert.Equal(t, 3, r.code, "exit 3: refused as vulnerable")
		assert.False(t, out.Success)
		found := false
		for _, v := range out.Vulnerabilities {
			found = found || (v.ID == pipAdvisory && v.Package == "pip")
		}
		assert.True(t, found, "%+v", out.Vulnerabilities)
		for _, s := range out.Steps {
			assert.False(t, strings.HasPrefix(s, "install "), "nothing installed after a refusal: %s", s)
		}
	})

	t.Run("run refuses rlimits unless accepted", func(t *testing.T) {
		d, r, lim := u.run(t, "skill-a", "result = 1")
		assert.Equal(t, 1, r.code)
		require.NotNil(t, d.Error)
		assert.Equal(t, "LimitsNotEnforceable", d.Error.Type)
		assert.Contains(t, d.Error.Message, "skillbuild rootless setup --user "+u.name, "the refusal says how to get cgroups")
		assert.Contains(t, d.Error.Message, "--require-limits=false")
		assert.Equal(t, map[string]string{"memory": "rlimit", "cpus": "rlimit", "pids": "rlimit"}, lim)
	})

	rl := []string{"--require-limits=false"}
	t.Run("runs under rlimits", func(t *testing.T) {
		for skill, want := range map[string]string{"skill-a": `"1.0"`, "skill-b": `"2.0"`} {
			d, r, lim := u.run(t, skill, "import pkgx, os; result = pkgx.__version__", rl...)
			require.Equal(t, 0, r.code, r.stderr)
			require.Nil(t, d.Error)
			assert.JSONEq(t, want, string(d.Result), skill)
			assert.Equal(t, map[string]string{"memory": "rlimit", "cpus": "rlimit", "pids": "rlimit"}, lim)
		}
		d, _, _ := u.run(t, "skill-a", `
import os, socket
r = {"uid": os.getuid()}
try:
    open("/opt/skill/x", "w")
except OSError as e:
    r["write"] = e.errno
try:
    socket.create_connection(("`+strings.Split(srv.Addr(), ":")[0]+`", `+strings.Split(srv.Addr(), ":")[1]+`), timeout=3)
    r["net"] = "connected"
except OSError as e:
    r["net"] = e.errno
result = r`, rl...)
		require.Nil(t, d.Error)
		var got struct {
			UID   int `json:"uid"`
			Write int `json:"write"`
			Net   any `json:"net"`
		}
		require.NoError(t, json.Unmarshal(d.Result, &got))
		assert.Equal(t, 65532, got.UID, "non-root inside")
		assert.Equal(t, int(syscall.EROFS), got.Write, "read-only root")
		assert.NotEqual(t, "connected", got.Net, "no network: the host's index on 127.0.0.1 is unreachable")

		d, _, _ = u.run(t, "skill-a", balloon, append(rl, "--memory", "128m")...)
		require.NotNil(t, d.Error, "a 1 GiB balloon under a 128m limit fails")
		assert.Equal(t, "MemoryError", d.Error.Type, "RLIMIT_AS makes the allocation fail")

		d, _, _ = u.run(t, "skill-a", forkBomb, append(rl, "--pids", "16")...)
		var fb struct {
			Forked int    `json:"forked"`
			Error  string `json:"error"`
		}
		require.NoError(t, json.Unmarshal(d.Result, &fb), "%+v", d)
		assert.Less(t, fb.Forked, 16, "RLIMIT_NPROC stops the fork bomb")
		assert.Equal(t, "BlockingIOError", fb.Error)

		d, _, _ = u.run(t, "skill-a", "import time\nwhile True: time.sleep(1)", append(rl, "--timeout", "2s")...)
		assert.True(t, d.TimedOut)
		require.NotNil(t, d.Error)
		assert.Equal(t, "Timeout", d.Error.Type)

		d, _, _ = u.run(t, "skill-a", "while True: pass", append(rl, "--cpus", "0.01", "--timeout", "100s")...)
		require.NotNil(t, d.Error, "a busy loop runs out of its one CPU second")
		assert.Equal(t, "CPUTimeLimit", d.Error.Type)
		assert.False(t, d.TimedOut)
	})

	t.Run("delegated cgroups enforce every limit", func(t *testing.T) {
		r := u.asRoot(t, "rootless", "setup", "--user", u.name, "--json")
		require.Equal(t, 0, r.code, r.stderr)
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &setup))
		require.True(t, setup.Limits.Cgroups)

		d, r, lim := u.run(t, "skill-b", "import pkgx; result = pkgx.__version__")
		require.Equal(t, 0, r.code, "no refusal once cgroups hold the limits: %s", r.stderr)
		assert.JSONEq(t, `"2.0"`, string(d.Result))
		assert.Equal(t, map[string]string{"memory": "cgroup", "cpus": "cgroup", "pids": "cgroup"}, lim)

		d, _, _ = u.run(t, "skill-a", balloon, "--memory", "128m")
		assert.True(t, d.OOMKilled, "the memory cgroup's OOM killer acts: %+v", d.Error)

		d, _, _ = u.run(t, "skill-a", forkBomb, "--pids", "16")
		var fb struct {
			Forked int `json:"forked"`
		}
		require.NoError(t, json.Unmarshal(d.Result, &fb), "%+v", d)
		assert.Less(t, fb.Forked, 16, "the pids cgroup stops the fork bomb")

		_, rc, lim := install("skill-c", "pkgx==1.0")
		require.Equal(t, 0, rc.code, rc.stderr)
		assert.Equal(t, map[string]string{"memory": "cgroup", "cpus": "cgroup", "pids": "cgroup"}, lim)
	})

	t.Run("ls, rm, prune", func(t *testing.T) {
		r := u.sb(t, "ls", "--json")
		require.Equal(t, 0, r.code, r.stderr)
		for _, id := range []string{"skill-a", "skill-b", "skill-c"} {
			assert.Contains(t, r.stdout, id)
		}
		assert.NotContains(t, r.stdout, `"vuln"`)
		r = u.sb(t, "rm", "skill-c")
		require.Equal(t, 0, r.code, r.stderr)
		r = u.sb(t, "ls", "--json")
		assert.NotContains(t, r.stdout, "skill-c")
		r = u.sb(t, "prune", "--json")
		require.Equal(t, 0, r.code, r.stderr)
	})

	t.Run("stop leaves nothing behind", func(t *testing.T) {
		r := u.sb(t, "rootless", "stop", "--json")
		require.Equal(t, 0, r.code, r.stderr)
		assert.Contains(t, r.stdout, `"stopped": true`)
		assert.Empty(t, u.processes(), "no process of the user or its subordinate ids survives stop")
		mi, err := os.ReadFile("/proc/self/mountinfo")
		require.NoError(t, err)
		assert.NotContains(t, string(mi), u.dir, "no mount of the instance is visible on the host")
		for _, f := range []string{"rootlesskit", "containerd.sock", "containerd-run", "containerd-state", "rootlesskit.pid"} {
			assert.NoFileExists(t, filepath.Join(u.runDir, "skillbuild", f))
			assert.NoDirExists(t, filepath.Join(u.runDir, "skillbuild", f))
		}
		assert.DirExists(t, filepath.Join(u.home, ".local", "share", "skillbuild", "containerd"), "images and cache stay")
		r = u.sb(t, "ls")
		assert.Equal(t, 75, r.code, "containerd is gone: temporary failure")
		assert.Contains(t, r.stderr, "skillbuild rootless start")

		r = u.asRoot(t, "rootless", "setup", "--user", u.name, "--undo")
		require.Equal(t, 0, r.code, r.stderr)
		left, _ := filepath.Glob("/sys/fs/cgroup/*/skillbuild-u" + strconv.Itoa(u.uid))
		assert.Empty(t, left, "the delegated cgroups are gone")
	})
}
