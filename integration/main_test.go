package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/distribution/reference"
	"github.com/skillbuild/skillbuild/internal/ctdtest"
	"github.com/skillbuild/skillbuild/internal/mounts"
	"github.com/skillbuild/skillbuild/internal/peakrss"
	"github.com/skillbuild/skillbuild/internal/rltest"
	sbruntime "github.com/skillbuild/skillbuild/runtime"
)

// The suite runs the real thing: a private containerd (own root, state
// and socket under a temporary directory), runc, the skillbuild binary with
// its embedded BuildKit, and real pip. A daemon that does not start fails
// the suite; nothing here is skipped silently.
var env struct {
	dir    string // everything the suite creates lives here
	socket string // the private containerd's socket
	root   string // skillbuild --root
	bin    string // the skillbuild binary under test
	peak   string // hack/peakrss, for a child's own peak RSS (runPeakRSS)
	base   string // base image reference (a Debian bookworm python3)
	rootfs string // the base's root filesystem (SKILLBUILD_TEST_ROOTFS)
	ctd    *ctdtest.Daemon
	ctdBin string // the lane's containerd binaries (containerdEnv), "" for the host's
}

// Namespace is the containerd namespace the suite's skillbuild uses, one
// per suite process: containerd names a run's cgroups after it, and suites
// running side by side on one machine must not see each other's.
var namespace = fmt.Sprintf("skillbuild-test-%d", os.Getpid())

// baseRef is the tag the suite imports the cached Debian rootfs under.
const baseRef = "localhost/skillbuild/python:3.11-bookworm"

func TestMain(m *testing.M) {
	flag.Parse()
	if reason := skipReason(); reason != "" {
		fmt.Fprintln(os.Stderr, "integration: skipped:", reason)
		os.Exit(0)
	}
	code, err := setup()
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration setup:", err)
		dumpLog()
		teardown()
		os.Exit(1)
	}
	code = checkLeftovers(m.Run())
	if code != 0 {
		dumpLog()
	}
	teardown()
	os.Exit(code)
}

// requireEnv, set to 1 (as `make test` and CI do), makes every reason to
// skip the suite an error instead: CI must never skip it.
const requireEnv = "SKILLBUILD_INTEGRATION"

// skipReason says why the suite cannot run here (-short, or not root), or
// "" to run it. With SKILLBUILD_INTEGRATION=1 it is never skipped: a
// missing precondition then fails the suite in setup.
func skipReason() string {
	if os.Getenv(requireEnv) == "1" {
		return ""
	}
	switch {
	case testing.Short():
		return "-short runs the unit tests only"
	case os.Geteuid() != 0:
		return "the suite drives containerd and runc and must run as root (`make test` runs it; " + requireEnv + "=1 makes this an error)"
	}
	return ""
}

func setup() (int, error) {
	if os.Geteuid() != 0 {
		return 0, fmt.Errorf("the integration suite drives containerd and runc and must run as root")
	}
	if testing.Short() {
		return 0, fmt.Errorf("-short with %s=1: the suite was required but -short skips it", requireEnv)
	}
	if dir := os.Getenv(containerdEnv); dir != "" {
		for _, bin := range []string{"containerd", "containerd-shim-runc-v2", "ctr"} {
			if _, err := os.Stat(filepath.Join(dir, bin)); err != nil {
				return 0, fmt.Errorf("%s=%s: %w (hack/containerd2.sh builds containerd 2.x there)", containerdEnv, dir, err)
			}
		}
		env.ctdBin = dir
		// The tests' own ctr calls find the lane's ctr first, and it
		// does not warn on stderr about this host's cgroup v1.
		os.Setenv("PATH", dir+string(filepath.ListSeparator)+os.Getenv("PATH"))
		os.Setenv(suppressDeprecations, "1")
	}
	for _, bin := range []string{"containerd", "runc", "ctr"} {
		if _, err := ctdtest.LookPath(bin, cleanEnv()); err != nil {
			return 0, fmt.Errorf("%w (apt-get install containerd runc; or run `make test`, which installs them)", err)
		}
	}
	rootfs := os.Getenv("SKILLBUILD_TEST_ROOTFS")
	if rootfs == "" {
		rootfs = "/var/cache/skillbuild/rootfs-bookworm"
	}
	if _, err := os.Stat(filepath.Join(rootfs, "usr/bin/python3")); err != nil {
		return 0, fmt.Errorf("no python rootfs at %s (run `make base-rootfs`, or set SKILLBUILD_TEST_ROOTFS)", rootfs)
	}
	dir, err := os.MkdirTemp("", "skillbuild-it-")
	if err != nil {
		return 0, err
	}
	env.dir = dir
	env.rootfs = rootfs
	env.root = filepath.Join(dir, "sbroot")
	env.base = baseRef

	ctd, err := ctdtest.Start(filepath.Join(dir, "containerd"), cleanEnv())
	if err != nil {
		return 0, err
	}
	env.ctd = ctd
	env.socket = ctd.Socket
	fmt.Fprintf(os.Stderr, "integration: containerd %s (%s)\n", ctd.Version, ctd.Binary)

	env.bin = filepath.Join(dir, "skillbuild")
	env.peak = filepath.Join(dir, "peakrss")
	if err := buildBinaries(os.Getenv(binDirEnv)); err != nil {
		return 0, err
	}
	if out, err := sbCmd("base", "import", "--rootfs", rootfs, "--name", baseRef).CombinedOutput(); err != nil {
		return 0, fmt.Errorf("base import: %v: %s", err, out)
	}
	db := filepath.Join("..", "scan", "testdata", "PyPI-pypa-20241010.zip")
	if out, err := sbCmd("db", "import", db).CombinedOutput(); err != nil {
		return 0, fmt.Errorf("db import: %v: %s", err, out)
	}
	return 0, nil
}

// The lanes' settings (Makefile: test-containerd2, test-cgroup2).
const (
	// containerdEnv names a directory holding containerd,
	// containerd-shim-runc-v2 and ctr: the suite runs against them
	// instead of the host's.
	containerdEnv = "SKILLBUILD_TEST_CONTAINERD"
	// binDirEnv names a directory of prebuilt skillbuild,
	// skillbuild-init and peakrss: the suite copies them instead of
	// building them (a test VM has no Go toolchain).
	binDirEnv = "SKILLBUILD_TEST_BINDIR"
	// suppressDeprecations silences containerd 2.x's ctr, which warns
	// on stderr about a cgroup v1 host at every call.
	suppressDeprecations = "CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS"
)

// buildBinaries puts skillbuild, the small init runs use (next to it, as
// `make build` puts it) and peakrss where env says: built from this
// tree, or copied from prebuilt.
func buildBinaries(prebuilt string) error {
	targets := []struct {
		to, pkg string
		static  bool
	}{{env.bin, "..", false}, {env.bin + "-init", "../runtime/pid1/cmd/skillbuild-init", true}, {env.peak, "../hack/peakrss", false}}
	for _, b := range targets {
		if prebuilt != "" {
			if err := rltest.CopyFile(filepath.Join(prebuilt, filepath.Base(b.to)), b.to, 0o755); err != nil {
				return fmt.Errorf("%s: %w", binDirEnv, err)
			}
			continue
		}
		cmd := exec.Command("go", "build", "-o", b.to, b.pkg)
		cmd.Stderr = os.Stderr
		if b.static {
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		}
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("go build %s: %w", b.pkg, err)
		}
	}
	return nil
}

func teardown() {
	stopRegistries()
	env.ctd.Stop()
	// The namespace's (empty) cgroup parents.
	if ctrls, err := os.ReadDir("/sys/fs/cgroup"); err == nil {
		for _, ctrl := range ctrls {
			os.Remove(filepath.Join("/sys/fs/cgroup", ctrl.Name(), namespace))
		}
		os.Remove(filepath.Join("/sys/fs/cgroup", namespace))
	}
	if env.dir != "" && os.Getenv("SKILLBUILD_TEST_KEEP") == "" {
		// Unmount anything the daemon left behind before removing its root.
		mounts.UnmountUnder(env.dir) //nolint:errcheck // best effort before removing the suite directory
		os.RemoveAll(env.dir)
	}
}

func dumpLog() {
	if env.ctd != nil {
		fmt.Fprintf(os.Stderr, "--- last lines of the private containerd's log (%s):\n%s\n", env.ctd.Log, env.ctd.Tail(60))
	}
}

// cleanEnv is the whole environment of every process the suite starts:
// the host's PIP_* and proxy variables never leak in.
// In the containerd 2.x lane the lane's binaries come first in PATH.
func cleanEnv() []string {
	e := []string{"PATH=" + sysPath(), "HOME=" + env.dir, "LANG=C.UTF-8"}
	if env.ctdBin != "" {
		e = append(e, suppressDeprecations+"=1")
	}
	return e
}

// sysPath is the PATH of the processes the suite starts.
func sysPath() string {
	p := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	if env.ctdBin != "" {
		p = env.ctdBin + ":" + p
	}
	return p
}

func sbCmd(args ...string) *exec.Cmd {
	full := append([]string{"--address", env.socket, "--namespace", namespace, "--root", env.root}, args...)
	cmd := exec.Command(env.bin, full...)
	cmd.Env = cleanEnv()
	return cmd
}

// runPeakRSS runs cmd (not started) and returns the peak resident set
// size, in KiB, of its program alone. cmd.ProcessState.SysUsage cannot
// tell it: a child's ru_maxrss starts at its Go parent's peak, this test
// binary's (see hack/peakrss), so cmd runs under peakrss instead.
func runPeakRSS(cmd *exec.Cmd) (int64, error) {
	read, err := peakrss.Wrap(cmd, env.peak)
	if err != nil {
		return 0, err
	}
	err = cmd.Run()
	u, rerr := read()
	if err != nil {
		return 0, err
	}
	return u.MaxRSSKiB, rerr
}

// result is what a skillbuild invocation did.
type result struct {
	stdout, stderr string
	code           int
}

// sb runs the skillbuild binary with the suite's daemon and root.
func sb(t *testing.T, args ...string) result {
	t.Helper()
	return sbRoot(t, env.root, 10*time.Minute, args...)
}

// sbRoot runs skillbuild with the suite's daemon and state root root,
// failing the test when the command does not finish within limit.
func sbRoot(t *testing.T, root string, limit time.Duration, args ...string) result {
	t.Helper()
	return sbArgsWithin(t, limit, append([]string{"--address", env.socket, "--namespace", namespace, "--root", root}, args...)...)
}

// sbArgs runs the skillbuild binary with exactly args.
func sbArgs(t *testing.T, args ...string) result {
	t.Helper()
	return sbArgsWithin(t, 10*time.Minute, args...)
}

// sbArgsWithin runs the skillbuild binary with exactly args, failing the
// test when it does not finish within limit.
func sbArgsWithin(t *testing.T, limit time.Duration, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, env.bin, args...)
	cmd.Env = cleanEnv()
	r := runCmd(t, cmd, "", args)
	if ctx.Err() != nil {
		t.Fatalf("skillbuild %v did not finish within %s; stderr: %s", args, limit, tailString(r.stderr, 1500))
	}
	return r
}

// runCmd runs a skillbuild command (args without the global flags, for
// the log; who, when set, says as which user) and returns what it did.
func runCmd(t testing.TB, cmd *exec.Cmd, who string, args []string) result {
	t.Helper()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%sskillbuild %v: %v", who, args, err)
	}
	// A command's stderr goes into the log only when it failed: a failing
	// test's own message must not drown in the progress of every build
	// before it (assertions on a command that exited 0 carry what they need).
	if r.code == 0 {
		t.Logf("%sskillbuild %s → exit 0", who, strings.Join(args, " "))
	} else {
		t.Logf("%sskillbuild %s → exit %d\nstderr (tail): %s", who, strings.Join(args, " "), r.code, tailString(r.stderr, 600))
	}
	return r
}

func tailString(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// runIn runs argv in image through skillbuild's runtime (hardened spec,
// the image's user, env and working directory) and returns its stdout. A
// non-zero exit is an error carrying stderr. (ctr run --rm was used here
// first; it loses the output of a process that exits fast now and then.)
func runIn(t *testing.T, image string, argv ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := client.New(env.socket, client.WithDefaultNamespace(namespace))
	if err != nil {
		return "", err
	}
	defer c.Close()
	in, err := json.Marshal(map[string][]string{"argv": argv})
	if err != nil {
		return "", err
	}
	named, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		return "", err
	}
	res, err := sbruntime.Run(ctx, c, sbruntime.Request{
		Image:  named.String(),
		Code:   []byte(runInCode),
		Inputs: in,
		Limits: sbruntime.Limits{MemoryBytes: 512 << 20, Timeout: time.Minute},
	}, sbruntime.WithStateDir(filepath.Join(env.dir, "runin")), sbruntime.WithoutSweep(), sbruntime.WithSharedUID())
	if err != nil {
		return "", err
	}
	if res.Error != nil {
		return "", fmt.Errorf("run %v in %s: %s: %s", argv, image, res.Error.Type, res.Error.Message)
	}
	var out struct {
		Out, Err string
		RC       int
	}
	if err := json.Unmarshal(res.Result, &out); err != nil {
		return "", fmt.Errorf("run %v in %s: result %s: %w", argv, image, res.Result, err)
	}
	if out.RC != 0 {
		return out.Out, fmt.Errorf("run %v in %s: exit %d: %s", argv, image, out.RC, out.Err)
	}
	return out.Out, nil
}

const runInCode = `import subprocess
r = subprocess.run(inputs["argv"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
result = {"out": r.stdout.decode(), "err": r.stderr.decode(), "rc": r.returncode}
`

// cgroupV2 reports whether this host runs the unified cgroup hierarchy
// only (the cgroup v2 lane's VM does; Debian's hybrid default does not).
func cgroupV2() bool {
	_, err := os.Stat("/sys/fs/cgroup/cgroup.controllers")
	return err == nil
}
