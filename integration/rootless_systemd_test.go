package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/skillbuild/skillbuild/internal/pyindex"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// laneEnv names the lane a run of the suite belongs to (set by the cgroup
// v2 lane's VM: cgroup2-plain, cgroup2-systemd): a test made for a lane
// fails there, instead of skipping, when the lane lacks what it needs.
const laneEnv = "SKILLBUILD_TEST_LANE"

// systemdMissing says why this host cannot give a user a systemd manager
// with cgroup v2 delegation ("" when it can).
func systemdMissing() string {
	if st, err := os.Stat("/run/systemd/system"); err != nil || !st.IsDir() {
		return "systemd is not the init system here"
	}
	if !cgroupV2() {
		return "this host does not run the unified cgroup hierarchy (cgroup v2)"
	}
	if _, err := exec.LookPath("loginctl"); err != nil {
		return "no loginctl"
	}
	return ""
}

// pollUntil polls cond until it holds or limit passes; it reports whether it
// held.
func pollUntil(limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(200 * time.Millisecond)
	}
	return true
}

// TestRootlessSystemd drives rootless mode as most cgroup v2 hosts run it:
// systemd as init, the user's own systemd manager (here from `loginctl
// enable-linger`, as for an account without a login session), and
// skillbuild's user unit with Delegate=yes. Runs and build steps get
// cgroups below the unit's delegated cgroup, and every limit holds there.
// Only such a host can run it: the cgroup v2 lane boots a VM with systemd
// for it (make test-cgroup2).
func TestRootlessSystemd(t *testing.T) {
	if why := systemdMissing(); why != "" {
		if strings.HasSuffix(os.Getenv(laneEnv), "systemd") {
			t.Fatalf("the %s lane needs systemd with cgroup v2: %s", os.Getenv(laneEnv), why)
		}
		t.Skipf("%s: the cgroup v2 lane runs this test in a VM booted with systemd (make test-cgroup2)", why)
	}
	u := newRootlessUser(t)
	out, err := exec.Command("loginctl", "enable-linger", u.name).CombinedOutput()
	require.NoError(t, err, "loginctl enable-linger: %s", out)
	// Runs before the account is removed (cleanups run last first).
	t.Cleanup(func() {
		exec.Command("loginctl", "disable-linger", u.name).Run() //nolint:errcheck
		exec.Command("loginctl", "terminate-user", u.name).Run() //nolint:errcheck
		if !pollUntil(2*time.Minute, func() bool { return len(u.processes()) == 0 }) {
			t.Logf("processes of %s still alive: %v", u.name, u.processes())
		}
	})
	runDir := fmt.Sprintf("/run/user/%d", u.uid)
	require.True(t, pollUntil(3*time.Minute, func() bool {
		_, err := os.Stat(filepath.Join(runDir, "systemd", "private"))
		return err == nil
	}), "the user's systemd manager did not start (no %s/systemd/private)", runDir)
	// systemctl --user finds the manager through XDG_RUNTIME_DIR.
	u.ru.RunDir, u.runDir = runDir, runDir
	unitCg := fmt.Sprintf("/user.slice/user-%d.slice/user@%d.service/app.slice/skillbuild-containerd.service", u.uid, u.uid)

	r := u.asRoot(t, "rootless", "setup", "--user", u.name)
	assert.NotEqual(t, 0, r.code, "root's own subtree is refused where systemd manages the cgroups")
	assert.Contains(t, r.stderr, "Delegate=yes", "it says what works instead")
	assert.Contains(t, r.stderr, "loginctl enable-linger")
	assert.NoDirExists(t, "/sys/fs/cgroup/skillbuild-u"+strconv.Itoa(u.uid))

	var setup struct {
		Ready   bool `json:"ready"`
		Service *struct {
			Manager string `json:"manager"`
			Unit    string `json:"unit"`
			Reason  string `json:"reason"`
		} `json:"service"`
	}
	r = u.sb(t, "rootless", "setup", "--json")
	require.Equal(t, 0, r.code, r.stdout)
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &setup))
	require.NotNil(t, setup.Service)
	assert.Equal(t, "systemd", setup.Service.Manager, "the user's manager answers: %s", setup.Service.Reason)
	unitFile := filepath.Join(u.home, ".config", "systemd", "user", "skillbuild-containerd.service")
	assert.Equal(t, unitFile, setup.Service.Unit)
	unit, err := os.ReadFile(unitFile)
	require.NoError(t, err)
	assert.Contains(t, string(unit), "Delegate=yes")

	type status struct {
		Running bool   `json:"running"`
		Pid     int    `json:"pid"`
		Manager string `json:"manager"`
		Limits  struct {
			Cgroups bool   `json:"cgroups"`
			Parent  string `json:"parent"`
			Version int    `json:"cgroup_version"`
			Reason  string `json:"reason"`
		} `json:"limits"`
	}
	var st status
	r = u.sb(t, "rootless", "start", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &st))
	assert.True(t, st.Running)
	assert.Equal(t, "systemd", st.Manager)
	r = u.sb(t, "rootless", "status", "--json")
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &st), r.stdout)
	assert.Equal(t, "systemd", st.Manager)
	require.True(t, st.Limits.Cgroups, "the unit's delegated cgroup holds the limits: %s", st.Limits.Reason)
	assert.Equal(t, 2, st.Limits.Version)
	assert.Equal(t, unitCg, st.Limits.Parent)
	cg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", st.Pid))
	require.NoError(t, err)
	assert.Equal(t, "0::"+unitCg+"/supervisor", strings.TrimSpace(string(cg)), "RootlessKit moved itself into the unit's leaf")
	sub, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", unitCg, "cgroup.subtree_control"))
	require.NoError(t, err)
	assert.Equal(t, []string{"cpu", "memory", "pids"}, strings.Fields(string(sub)), "the unit's cgroup gives containers the limits' controllers")

	archive := filepath.Join(u.dir, "base.tar")
	out, err = exec.Command("ctr", "--address", env.socket, "--namespace", namespace, "images", "export", archive, fullName(t, env.base)).CombinedOutput()
	require.NoError(t, err, "ctr export: %s", out)
	require.NoError(t, os.Chmod(archive, 0o644))
	db := filepath.Join(u.dir, "osv.zip")
	copyFile(t, filepath.Join("..", "scan", "testdata", "PyPI-pypa-20241010.zip"), db, 0o644)
	r = u.sb(t, "base", "import", "--oci-archive", archive)
	require.Equal(t, 0, r.code, r.stderr)
	r = u.sb(t, "db", "import", db)
	require.Equal(t, 0, r.code, r.stderr)

	srv, dir := index(t, pyindex.Wheel{Name: "pkgx", Version: "1.0"})
	_, err = pyindex.BuildSdist(dir, pyindex.Sdist{Name: "balloon", Version: "1.0", Prelude: "big = b'x' * (600 << 20)\n"})
	require.NoError(t, err)
	install := func(id string, flags []string, reqs ...string) (installJSON, result, map[string]string) {
		args := append([]string{"install", "--json", "--progress", "plain", "--base", env.base, "--index-url", srv.URL()}, flags...)
		r := u.sb(t, append(append(args, id), reqs...)...)
		var lim struct {
			LimitsEnforced map[string]string `json:"limits_enforced"`
		}
		json.Unmarshal([]byte(r.stdout), &lim) //nolint:errcheck
		return parseInstall(t, r), r, lim.LimitsEnforced
	}

	t.Run("build steps under the unit's cgroup", func(t *testing.T) {
		_, r, lim := install("sd-a", nil, "pkgx==1.0")
		require.Equal(t, 0, r.code, r.stderr)
		assert.Equal(t, map[string]string{"memory": "cgroup", "cpus": "cgroup", "pids": "cgroup"}, lim)
		assert.NotContains(t, r.stderr, "build limits without cgroups")

		out, r, _ := install("sd-balloon", []string{"--allow-sdist", "--build-memory", "128m"}, "balloon==1.0")
		assert.Equal(t, 1, r.code)
		assert.False(t, out.Success)
		assert.Contains(t, out.Error, "128 MiB", "the step's memory cgroup stopped the 600 MiB build")
		assert.Contains(t, out.Error+out.Hint, "--build-memory")
	})

	t.Run("runs under the unit's cgroup", func(t *testing.T) {
		d, r, lim := u.run(t, "sd-a", "import pkgx; result = pkgx.__version__")
		require.Equal(t, 0, r.code, "no refusal: cgroups hold the limits: %s", r.stderr)
		assert.JSONEq(t, `"1.0"`, string(d.Result))
		assert.Equal(t, map[string]string{"memory": "cgroup", "cpus": "cgroup", "pids": "cgroup"}, lim)

		for _, cg := range u.cgroupsOfARun(t, "sd-a") {
			assert.Regexp(t, `(?m)^0::`+unitCg+`/`, cg, "the run's cgroup is below the unit's")
		}

		d, _, _ = u.run(t, "sd-a", balloon, "--memory", "128m")
		assert.True(t, d.OOMKilled, "the memory cgroup's OOM killer acts, read from memory.events: %+v", d.Error)

		d, _, _ = u.run(t, "sd-a", forkBomb, "--pids", "16")
		var fb struct {
			Forked int `json:"forked"`
		}
		require.NoError(t, json.Unmarshal(d.Result, &fb), "%+v", d)
		assert.Less(t, fb.Forked, 16, "the pids cgroup stops the fork bomb")
	})

	t.Run("stop through systemd leaves nothing behind", func(t *testing.T) {
		r := u.sb(t, "rootless", "stop", "--json")
		require.Equal(t, 0, r.code, r.stderr)
		assert.Contains(t, r.stdout, `"stopped": true`)
		var left []string
		for _, p := range u.processes() {
			// The user's manager stays (linger); nothing of the unit does.
			if name := p[strings.IndexByte(p, ':')+1:]; name != "systemd" && name != "(sd-pam)" {
				left = append(left, p)
			}
		}
		assert.Empty(t, left, "no process of the instance survives stop")
		r = u.sb(t, "rootless", "status", "--json")
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &st), r.stdout)
		assert.False(t, st.Running)
		var procs []string
		filepath.WalkDir(filepath.Join("/sys/fs/cgroup", unitCg), func(p string, d os.DirEntry, err error) error { //nolint:errcheck
			if err == nil && d.IsDir() {
				if b, _ := os.ReadFile(filepath.Join(p, "cgroup.procs")); len(strings.TrimSpace(string(b))) > 0 {
					procs = append(procs, p+": "+string(b))
				}
			}
			return nil
		})
		assert.Empty(t, procs, "no process is left in the unit's cgroups")

		r = u.sb(t, "rootless", "setup", "--undo", "--json")
		require.Equal(t, 0, r.code, r.stderr)
		assert.NoFileExists(t, unitFile, "--undo removes the unit")
	})
}
