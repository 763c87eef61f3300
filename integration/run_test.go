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
	"unicode/utf8"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/snapshots"
	sbruntime "github.com/skillbuild/skillbuild/runtime"
	"github.com/skillbuild/skillbuild/skill/api"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// runDoc is the --json document of `skillbuild run`.
type runDoc = api.RunResult

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
	require.NotNil(t, d.ExitCode, "a process ran: the document has its exit status")
	require.Equal(t, 0, d.Exit(), "stderr: %s", d.Stderr)
}

// ranAs is the uid and gid the document says the code ran as; a process
// must have run.
func ranAs(t *testing.T, d runDoc) (uid, gid uint32) {
	t.Helper()
	require.NotNil(t, d.UID, "a process ran: the document names its uid")
	require.NotNil(t, d.GID, "a process ran: the document names its gid")
	return *d.UID, *d.GID
}

// requireTimedOut asserts the run was killed at its deadline.
func requireTimedOut(t *testing.T, d runDoc) {
	t.Helper()
	require.True(t, d.TimedOut, "error: %+v stderr: %s", d.Error, d.Stderr)
	require.NotNil(t, d.Error)
	assert.Equal(t, "Timeout", d.Error.Type)
	assert.Equal(t, 128+int(syscall.SIGKILL), d.Exit())
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
	// A gVisor run's root snapshot is leased until its container holds it.
	ls, err := c.LeasesService().List(ctx)
	require.NoError(t, err)
	for _, l := range ls {
		if l.Labels[sbruntime.LabelRun] != "" {
			t.Errorf("lease %s of a run left behind", l.ID)
		}
	}
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
// passed, and leaves an orphan still within its deadline alone. (With the
// runs' own state directory they go at once: TestRunKilledOwnerSweptAtOnce.)
func TestRunOrphanSweep(t *testing.T) {
	// Orphans: killed without cleanup. One is due in seconds; the other's
	// deadline is far beyond anything this test waits for. Both owners
	// live until both runs are ready: a run's start sweeps the orphans of
	// its state directory whose owner died.
	killWaiting := startSleepingRun(t, "30m", "orphan-waiting")
	killDue := startSleepingRun(t, "4s", "orphan-due")
	killDue()
	killWaiting()

	c := ctdClient(t)
	ctx := context.Background()
	deadlines := map[string]time.Time{}
	for _, ct := range runContainers(t, c) {
		labels, err := ct.Labels(ctx)
		require.NoError(t, err)
		deadlines[ct.ID()], err = time.Parse(time.RFC3339Nano, labels[sbruntime.LabelDeadline])
		require.NoError(t, err)
	}
	require.Len(t, deadlines, 2, "the orphans")
	var due, waiting string
	for id, d := range deadlines {
		if d.Before(time.Now().Add(time.Minute)) {
			due = id
		} else {
			waiting = id
		}
	}
	require.NotEmpty(t, due, "the 4s orphan: %v", deadlines)
	require.NotEmpty(t, waiting, "the 30m orphan: %v", deadlines)

	// Once the first deadline has passed, a sweep (at New) removes that
	// orphan and only that one.
	time.Sleep(time.Until(deadlines[due]) + 100*time.Millisecond)
	state := sbruntime.WithStateDir(t.TempDir())
	r, err := sbruntime.New(ctx, c, state, sbruntime.WithSweepGrace(0))
	require.NoError(t, err)
	var left []string
	for _, ct := range runContainers(t, c) {
		left = append(left, ct.ID())
	}
	assert.Equal(t, []string{waiting}, left, "the orphan past its deadline is swept, the one within it is left alone")
	n, err := r.Sweep(ctx)
	require.NoError(t, err)
	assert.Equal(t, 0, n, "New already swept it")
	// Their state directory is the runs' own one's to sweep: the owner
	// is dead, so the waiting orphan goes at once.
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
	uid, _ := ranAs(t, d)
	assert.Equal(t, float64(uid), res["uid"], "the uid the document reports")
	assert.GreaterOrEqual(t, uid, uint32(sbruntime.RunUIDBase))
	assert.Less(t, uid, uint32(sbruntime.RunUIDBase+sbruntime.RunUIDCount))
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
