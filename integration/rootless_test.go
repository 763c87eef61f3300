package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skillbuild/skillbuild/internal/pyindex"
	"github.com/skillbuild/skillbuild/internal/rltest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// rootlessUser is an unprivileged account made for one test (rltest),
// with its own subordinate id ranges, home and runtime directory.
type rootlessUser struct {
	ru               *rltest.User
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
	ru, err := rltest.New("sbrl", env.bin)
	require.NoError(t, err)
	ru.PATH = sysPath()
	u := &rootlessUser{ru: ru, name: ru.Name, uid: ru.UID, gid: ru.GID, subStart: ru.SubStart, subLen: ru.SubLen,
		dir: ru.Dir, home: ru.Home, runDir: ru.RunDir, bin: ru.Bin}
	t.Cleanup(func() {
		remove := ru.Remove
		if os.Getenv("SKILLBUILD_TEST_KEEP") != "" {
			remove = ru.RemoveKeepFiles
		}
		if err := remove(); err != nil {
			t.Logf("remove user %s: %v", ru.Name, err)
		}
	})
	return u
}

func copyFile(t testing.TB, from, to string, mode os.FileMode) {
	t.Helper()
	require.NoError(t, rltest.CopyFile(from, to, mode))
}

// sb runs the binary under test as the user, with a clean environment of
// its own (XDG_RUNTIME_DIR set, XDG_DATA_HOME left to default under HOME).
func (u *rootlessUser) sb(t testing.TB, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	return runCmd(t, u.ru.Command(ctx, args...), "["+u.name+"] ", args)
}

// asRoot runs the binary under test as root (for `rootless setup --user`).
func (u *rootlessUser) asRoot(t testing.TB, args ...string) result {
	t.Helper()
	cmd := exec.Command(u.bin, args...)
	cmd.Env = cleanEnv()
	return runCmd(t, cmd, "[root] ", args)
}

// processes lists the live processes of the user and its subordinate ids.
func (u *rootlessUser) processes() []string { return u.ru.Processes() }

// The run uids of a rootless run, inside the user namespace (see
// rootless.RunUIDLow).
const runUIDLow, runUIDHigh = 32768, 65532

// watchRuns polls the host's processes until done, and returns the host
// uid of each live process running as one of the user's run uids, with
// its /proc/PID/cgroup.
func (u *rootlessUser) watchRuns(done func() bool) map[int]string {
	seen := map[int]string{}
	lo, hi := u.subStart+runUIDLow-1, u.subStart+runUIDHigh-1
	for !done() {
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			status, err := os.ReadFile(filepath.Join("/proc", e.Name(), "status"))
			if err != nil {
				continue
			}
			// A zombie (an earlier run's process that PID 1, not an init
			// here, has not reaped yet) is in no cgroup of its run any more.
			uid, live := -1, true
			for _, l := range strings.Split(string(status), "\n") {
				f := strings.Fields(l)
				switch {
				case len(f) >= 2 && f[0] == "State:":
					live = f[1] != "Z" && f[1] != "X"
				case len(f) >= 2 && f[0] == "Uid:":
					uid, _ = strconv.Atoi(f[1])
				}
			}
			if live && uid >= lo && uid < hi {
				cg, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cgroup"))
				seen[uid] = string(cg)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return seen
}

// cgroupsOfARun runs a 3-second sleep in skill as the user and returns
// /proc/PID/cgroup of each of the run's processes seen while it ran.
func (u *rootlessUser) cgroupsOfARun(t *testing.T, skill string) map[int]string {
	t.Helper()
	done := make(chan result, 1)
	go func() { done <- u.sb(t, "run", "--json", "-c", "import time; time.sleep(3)", skill) }()
	seen := u.watchRuns(func() bool { return len(done) == 1 })
	require.Equal(t, 0, (<-done).code)
	require.NotEmpty(t, seen, "the run's process was seen")
	return seen
}

// runRootless is `run --json` as the user, decoded.
func (u *rootlessUser) run(t *testing.T, skill, code string, flags ...string) (runDoc, result, map[string]string) {
	t.Helper()
	args := append([]string{"run", "--json"}, flags...)
	args = append(args, "-c", code, skill)
	r := u.sb(t, args...)
	var d runDoc
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &d), "stdout: %s", r.stdout)
	if string(d.Result) == "null" {
		d.Result = nil
	}
	return d, r, d.LimitsEnforced
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

	srv, _ := index(t, append([]pyindex.Wheel{
		{Name: "pkgx", Version: "1.0"},
		{Name: "pkgx", Version: "2.0"},
	}, coalesceWheels("rlcoal")...)...)

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
		Service *struct {
			Manager string `json:"manager"`
			Unit    string `json:"unit"`
			Reason  string `json:"reason"`
		} `json:"service"`
	}
	r := u.sb(t, "rootless", "setup", "--json")
	require.Equal(t, 0, r.code, "every prerequisite is there: %s", r.stdout)
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &setup))
	assert.True(t, setup.Ready)
	assert.False(t, setup.Limits.Cgroups, "nothing is delegated yet")
	// The test user has no login session, so no systemd user manager
	// answers (nor does one on a host without systemd): no unit, a
	// background process.
	require.NotNil(t, setup.Service, "setup says what will run containerd")
	assert.Equal(t, "process", setup.Service.Manager)
	assert.Contains(t, setup.Service.Reason, "systemd", "it says why there is no unit")
	assert.NoFileExists(t, filepath.Join(u.home, ".config", "systemd", "user", "skillbuild-containerd.service"))

	var st struct {
		Running  bool   `json:"running"`
		Pid      int    `json:"pid"`
		ChildPid int    `json:"child_pid"`
		Socket   string `json:"socket"`
		Root     string `json:"state_root"`
		Manager  string `json:"manager"`
		Version  string `json:"containerd_version"`
	}
	r = u.sb(t, "rootless", "start", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &st))
	require.True(t, st.Running)
	assert.Equal(t, "process", st.Manager)
	assert.Equal(t, env.ctd.Version, st.Version, "the user's containerd is the one the suite tests")
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
		out := parseInstall(t, r)
		return out, r, out.LimitsEnforced
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

	t.Run("install steps run together, layers as root makes them", func(t *testing.T) {
		archiveFile := filepath.Join(u.home, "rlcoal.tar")
		r := u.sb(t, "install", "--json", "--progress", "plain", "--base", env.base, "--index-url", srv.URL(),
			"--output", "oci-archive="+archiveFile, "rlcoal", "rlcoal==1.0")
		require.Equal(t, 0, r.code, r.stdout)
		assert.Contains(t, r.stderr, batchedLog, "the install steps ran in one container")
		// The same skill built as root, by the suite's engine.
		root, rr := installOn(t, nil, srv, "rlcoal-root", nil, "rlcoal==1.0")
		require.Equal(t, 0, rr.code, rr.stderr)
		assert.Equal(t, layers(t, root.ImageTag), archiveImageLayers(t, archiveFile))
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
		assert.GreaterOrEqual(t, got.UID, runUIDLow, "non-root inside: a run uid of its own")
		assert.Less(t, got.UID, runUIDHigh)
		uid, _ := ranAs(t, d)
		assert.Equal(t, uid, uint32(got.UID), "the result reports the uid the code ran as")
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

	t.Run("concurrent runs get uids of their own", func(t *testing.T) {
		// Two runs at once, each long enough to be seen from the host.
		code := "import os, time\ntime.sleep(4)\nresult = [os.getuid(), os.getgid()]"
		results := make(chan result, 2)
		for range 2 {
			go func() { results <- u.sb(t, append([]string{"run", "--json", "-c", code, "skill-a"}, rl...)...) }()
		}
		seen := u.watchRuns(func() bool { return len(results) == 2 })
		var uids []int
		for range 2 {
			r := <-results
			require.Equal(t, 0, r.code, r.stderr)
			var d runDoc
			require.NoError(t, json.Unmarshal([]byte(r.stdout), &d))
			var ids [2]int
			require.NoError(t, json.Unmarshal(d.Result, &ids), "%+v", d)
			assert.Equal(t, ids[0], ids[1], "gid = uid")
			assert.GreaterOrEqual(t, ids[0], runUIDLow)
			assert.Less(t, ids[0], runUIDHigh)
			uids = append(uids, ids[0])
		}
		assert.NotEqual(t, uids[0], uids[1], "two concurrent runs never share a uid")
		// On the host each is its own subordinate id of the user: inside
		// id N is the user's subordinate id SUBSTART+N-1.
		for _, uid := range uids {
			assert.Contains(t, seen, u.subStart+uid-1, "host uid of run uid %d (seen: %v)", uid, seen)
		}
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

		// The run's cgroups are below the user's delegated subtree, in
		// every hierarchy a limit needs.
		for _, cg := range u.cgroupsOfARun(t, "skill-a") {
			if cgroupV2() {
				assert.Regexp(t, `(?m)^0::/skillbuild-u`+strconv.Itoa(u.uid)+`/`, cg, "the run's cgroup is under the delegated subtree")
				continue
			}
			for _, h := range []string{"memory", "pids", "cpu"} {
				// Controllers may share a hierarchy (cpu,cpuacct).
				assert.Regexp(t, `(?m)^\d+:(?:[^:]*,)?`+h+`(?:,[^:]*)?:/skillbuild-u`+strconv.Itoa(u.uid)+`/`, cg, "%s cgroup under the delegated subtree", h)
			}
		}
		if cgroupV2() {
			// Without systemd root moved the running daemon into the
			// subtree's leaf: only root may move a process into it.
			var st struct {
				Pid int `json:"pid"`
			}
			r := u.sb(t, "rootless", "status", "--json")
			require.NoError(t, json.Unmarshal([]byte(r.stdout), &st), r.stdout)
			cg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", st.Pid))
			require.NoError(t, err)
			assert.Equal(t, "0::/skillbuild-u"+strconv.Itoa(u.uid)+"/supervisor", strings.TrimSpace(string(cg)), "RootlessKit lives in the delegated leaf")
		}

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
		leases, _ := filepath.Glob(filepath.Join(u.home, ".local", "share", "skillbuild", "state", "runs", "*"))
		for _, l := range leases {
			if filepath.Base(l) == "uids" {
				ents, _ := os.ReadDir(l)
				assert.Empty(t, ents, "every run uid was given back")
				continue
			}
			if filepath.Base(l) == "images" { // config and chain ID per image digest, kept on purpose
				continue
			}
			assert.Fail(t, "a run's state directory survives", l)
		}
		var cgroups []string
		hs, _ := filepath.Glob("/sys/fs/cgroup/*")
		hs = append(hs, "/sys/fs/cgroup") // cgroup v2: one hierarchy
		for _, h := range hs {
			filepath.WalkDir(filepath.Join(h, "skillbuild-u"+strconv.Itoa(u.uid)), func(p string, d os.DirEntry, err error) error { //nolint:errcheck
				if err == nil && d.IsDir() {
					if procs, _ := os.ReadFile(filepath.Join(p, "cgroup.procs")); len(bytes.TrimSpace(procs)) > 0 {
						cgroups = append(cgroups, p+": "+string(procs))
					}
				}
				return nil
			})
		}
		assert.Empty(t, cgroups, "no process is left in the delegated cgroups")
		r = u.sb(t, "ls")
		assert.Equal(t, 75, r.code, "containerd is gone: temporary failure")
		assert.Contains(t, r.stderr, "skillbuild rootless start")

		r = u.asRoot(t, "rootless", "setup", "--user", u.name, "--undo")
		require.Equal(t, 0, r.code, r.stderr)
		left, _ := filepath.Glob("/sys/fs/cgroup/*/skillbuild-u" + strconv.Itoa(u.uid))
		left2, _ := filepath.Glob("/sys/fs/cgroup/skillbuild-u" + strconv.Itoa(u.uid))
		assert.Empty(t, append(left, left2...), "the delegated cgroups are gone")
	})
}
