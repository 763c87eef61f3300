package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/skillbuild/skillbuild/internal/ctdtest"
	"github.com/skillbuild/skillbuild/internal/mounts"
	"github.com/skillbuild/skillbuild/internal/peakrss"
)

// baseRef is the tag of the Debian python base in containerd and in
// buildah/podman storage.
const baseRef = "localhost/skillbuild/python:3.11-bookworm"

// namespace is the containerd namespace skillbuild and ctr use here.
const namespace = "skillbuild-bench"

// bench holds the private daemons, directories and the index of one run.
type bench struct {
	o      options
	out    io.Writer // progress lines
	dir    string
	logf   *os.File // every command's output, for post-mortems
	logMu  sync.Mutex
	sock   string
	ctd    *ctdtest.Daemon
	roots  int // skillbuild roots handed out
	index  *index
	podman bool   // buildah and podman columns enabled
	peak   string // hack/peakrss, built into dir (see execPeak)
}

// sysPath is the PATH of every process the benchmark starts.
const sysPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// cleanEnv is the whole environment of every process the benchmark starts:
// nothing from the host (PIP_*, proxies, CONTAINERD_ADDRESS) leaks in.
func (b *bench) cleanEnv() []string {
	return []string{"PATH=" + sysPath, "HOME=" + filepath.Join(b.dir, "home"), "LANG=C.UTF-8"}
}

func newBench(ctx context.Context, o options, out io.Writer) (*bench, error) {
	b := &bench{o: o, out: out, podman: !o.skipBuildah}
	dir := o.dir
	var err error
	if dir == "" {
		dir, err = os.MkdirTemp("/tmp", "sb-bench-")
	} else {
		err = os.MkdirAll(dir, 0o755)
	}
	if err != nil {
		return nil, err
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return nil, err
	}
	b.dir = dir
	if err := os.MkdirAll(filepath.Join(dir, "home"), 0o755); err != nil {
		return nil, err
	}
	if b.logf, err = os.Create(filepath.Join(dir, "bench.log")); err != nil {
		return nil, err
	}
	b.say("work directory %s (command log: %s)", dir, b.logf.Name())
	b.peak = filepath.Join(dir, "peakrss")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", b.peak, "github.com/skillbuild/skillbuild/hack/peakrss").CombinedOutput(); err != nil {
		b.close()
		return nil, fmt.Errorf("go build hack/peakrss: %v: %s", err, out)
	}
	if err := b.setup(ctx); err != nil {
		b.close()
		return nil, err
	}
	return b, nil
}

// logf2 prints a progress line with the elapsed time.
func (b *bench) say(format string, args ...any) {
	line := fmt.Sprintf("[%s] "+format+"\n", append([]any{time.Now().UTC().Format("15:04:05")}, args...)...)
	fmt.Fprint(b.out, line)
	b.logMu.Lock()
	defer b.logMu.Unlock()
	if b.logf != nil {
		b.logf.WriteString(line) //nolint:errcheck
	}
}

// result is one finished command.
type result struct {
	wall   time.Duration
	stdout []byte
	stderr []byte
	code   int
	maxRSS int64         // KiB: the program's own only from execPeak (see hack/peakrss)
	cpu    time.Duration // user + system CPU of the process and its waited-for children
	start  time.Time
}

// exec runs argv with the clean environment and returns what it did. An
// exit code other than 0 or one of ok is an error carrying stderr's tail.
// Its maxRSS is wait4's, never below this process's own peak: a Go
// program's child starts counting from its parent's (hack/peakrss).
func (b *bench) exec(ctx context.Context, stdin io.Reader, argv []string, ok ...int) (result, error) {
	return b.execRSS(ctx, stdin, argv, false, ok...)
}

// execPeak is exec with argv started by hack/peakrss: maxRSS and cpu are
// argv's own, and wall time includes peakrss's start (about 2 ms).
func (b *bench) execPeak(ctx context.Context, stdin io.Reader, argv []string, ok ...int) (result, error) {
	return b.execRSS(ctx, stdin, argv, true, ok...)
}

func (b *bench) execRSS(ctx context.Context, stdin io.Reader, argv []string, peak bool, ok ...int) (result, error) {
	cmd := exec.CommandContext(ctx, lookSys(argv[0]), argv[1:]...)
	var readPeak func() (peakrss.Usage, error)
	if peak {
		var err error
		if readPeak, err = peakrss.Wrap(cmd, b.peak); err != nil {
			return result{}, err
		}
	}
	cmd.Env = b.cleanEnv()
	cmd.Dir = b.dir
	cmd.Stdin = stdin
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	cmd.WaitDelay = 10 * time.Second
	t0 := time.Now()
	err := cmd.Run()
	r := result{wall: time.Since(t0), stdout: so.Bytes(), stderr: se.Bytes(), start: t0}
	if cmd.ProcessState != nil {
		r.code = cmd.ProcessState.ExitCode()
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			r.maxRSS = ru.Maxrss
			r.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
	}
	if readPeak != nil {
		u, perr := readPeak()
		r.maxRSS = u.MaxRSSKiB // zero: unknown
		if perr == nil {
			r.cpu = u.CPU
		}
	}
	b.logMu.Lock()
	fmt.Fprintf(b.logf, "$ %s\n# exit %d in %s, maxrss %d KiB\n%s%s\n", strings.Join(argv, " "), r.code, r.wall.Round(time.Millisecond), r.maxRSS, tail(so.Bytes(), 2000), tail(se.Bytes(), 4000))
	b.logMu.Unlock()
	if err != nil {
		var ee *exec.ExitError
		if asExit(err, &ee) {
			for _, c := range ok {
				if c == r.code {
					return r, nil
				}
			}
		}
		return r, fmt.Errorf("%s: %v\n%s", strings.Join(short(argv), " "), err, tail(se.Bytes(), 1500))
	}
	return r, nil
}

// lookSys resolves a command name on sysPath, the PATH the benchmark gives
// its processes, not on the caller's PATH (a pyenv python3 there must not
// replace Debian's, which is the one in the base image).
func lookSys(name string) string {
	if strings.Contains(name, "/") {
		return name
	}
	for _, d := range filepath.SplitList(sysPath) {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p
		}
	}
	return name
}

func asExit(err error, ee **exec.ExitError) bool {
	e, ok := err.(*exec.ExitError)
	if ok {
		*ee = e
	}
	return ok
}

// short abbreviates long argument lists in error messages.
func short(argv []string) []string {
	if len(argv) > 14 {
		return append(append([]string{}, argv[:14]...), fmt.Sprintf("... (%d more)", len(argv)-14))
	}
	return argv
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	s := string(b)
	if s != "" && !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	return s
}

// setup installs missing tools, starts the private containerd, imports the
// base everywhere and serves the wheel index.
func (b *bench) setup(ctx context.Context) error {
	if err := b.ensureTools(ctx); err != nil {
		return err
	}
	if err := b.startContainerd(ctx); err != nil {
		return err
	}
	b.say("containerd on %s", b.sock)
	// The two imports are independent: run them side by side.
	podmanErr := make(chan error, 1)
	go func() {
		if !b.podman {
			podmanErr <- nil
			return
		}
		podmanErr <- b.podmanImport(ctx)
	}()
	r, err := b.exec(ctx, nil, b.sbArgs("", "base", "import", "--rootfs", b.o.rootfs, "--name", baseRef))
	if perr := <-podmanErr; perr != nil {
		return fmt.Errorf("import the base into podman/buildah storage: %w", perr)
	}
	if err != nil {
		return fmt.Errorf("import the base into containerd: %w", err)
	}
	b.say("base imported into containerd (%s) and buildah/podman storage", r.wall.Round(time.Millisecond))
	ix, err := newIndex(filepath.Join(b.dir, "wheels"))
	if err != nil {
		return err
	}
	b.index = ix
	b.say("index %s: %d wheels, %.1f MB (%.0f KB of Python each, unpacked)", ix.srv.URL(), ix.count, float64(ix.bytes)/1e6, float64(ix.unpacked)/1e3)
	return nil
}

// podmanImport imports the base rootfs into buildah/podman storage.
func (b *bench) podmanImport(ctx context.Context) error {
	argv := append(b.podmanArgs(), "import", "-", baseRef)
	tarCmd := exec.CommandContext(ctx, "tar", "-C", b.o.rootfs, "--numeric-owner", "-c", ".")
	tarCmd.Env = b.cleanEnv()
	pipe, err := tarCmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := tarCmd.Start(); err != nil {
		return err
	}
	_, err = b.exec(ctx, pipe, argv)
	if werr := tarCmd.Wait(); err == nil && werr != nil {
		err = fmt.Errorf("tar %s: %w", b.o.rootfs, werr)
	}
	return err
}

// ensureTools installs buildah and podman with apt-get when missing.
func (b *bench) ensureTools(ctx context.Context) error {
	for _, t := range []string{"containerd", "ctr", "runc", "python3", "tar"} {
		if _, err := exec.LookPath(t); err != nil {
			return fmt.Errorf("%s not found (run `make deps`)", t)
		}
	}
	if !b.podman {
		return nil
	}
	var missing []string
	for _, t := range []string{"buildah", "podman"} {
		if _, err := exec.LookPath(t); err != nil {
			missing = append(missing, t)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	b.say("installing %s with apt-get", strings.Join(missing, " "))
	env := append(b.cleanEnv(), "DEBIAN_FRONTEND=noninteractive")
	for _, argv := range [][]string{{"apt-get", "update"}, append([]string{"apt-get", "install", "-y", "--no-install-recommends"}, missing...)} {
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Env = env
		cmd.Stdout, cmd.Stderr = b.logf, b.logf
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s: %w (see %s)", strings.Join(argv, " "), err, b.logf.Name())
		}
	}
	return nil
}

// startContainerd starts a private containerd with its own root, state and
// socket under the work directory.
func (b *bench) startContainerd(ctx context.Context) error {
	d, err := ctdtest.Start(filepath.Join(b.dir, "containerd"), b.cleanEnv())
	if err != nil {
		return err
	}
	b.ctd, b.sock = d, d.Socket
	return nil
}

// close stops the daemons and, unless -keep, removes the work directory.
func (b *bench) close() {
	if b.index != nil {
		b.index.srv.Close() //nolint:errcheck
	}
	if b.podman && !b.o.keep && b.dir != "" {
		// Unmount buildah/podman's overlay storage before removing it.
		exec.Command("podman", append(b.podmanArgs(), "system", "reset", "--force")...).Run() //nolint:errcheck
	}
	b.ctd.Stop()
	if b.logf != nil {
		b.logf.Close()
	}
	if b.o.keep || b.dir == "" {
		return
	}
	var err error
	for range 5 {
		mounts.UnmountUnder(b.dir) //nolint:errcheck // best effort while removing the bench directory
		if err = os.RemoveAll(b.dir); err == nil {
			return
		}
		time.Sleep(time.Second)
	}
	fmt.Fprintf(b.out, "bench: could not remove %s: %v\n", b.dir, err)
}

// newRoot returns a fresh skillbuild --root with the vulnerability database
// imported (untimed).
func (b *bench) newRoot(ctx context.Context, bin string) (string, error) {
	b.roots++
	root := filepath.Join(b.dir, fmt.Sprintf("sbroot-%02d", b.roots))
	if _, err := b.exec(ctx, nil, b.sbArgsBin(bin, root, "db", "import", b.o.db)); err != nil {
		return "", fmt.Errorf("db import: %w", err)
	}
	return root, nil
}

// sbArgs is the skillbuild argv with the private containerd and root.
func (b *bench) sbArgs(root string, args ...string) []string { return b.sbArgsBin("", root, args...) }

// sbArgsBin is sbArgs for another skillbuild binary (empty: -bin).
func (b *bench) sbArgsBin(bin, root string, args ...string) []string {
	if bin == "" {
		bin = b.o.bin
	}
	if root == "" {
		root = filepath.Join(b.dir, "sbroot-setup")
	}
	return append([]string{bin, "--address", b.sock, "--namespace", namespace, "--root", root}, args...)
}

// ctrArgs is the ctr argv for the private containerd.
func (b *bench) ctrArgs(args ...string) []string {
	return append([]string{"ctr", "--address", b.sock, "--namespace", namespace}, args...)
}

// podmanArgs are the global flags that keep buildah and podman in the work
// directory's own storage (containers/storage is shared by both tools).
func (b *bench) storageArgs() []string {
	return []string{"--root", filepath.Join(b.dir, "storage"), "--runroot", filepath.Join(b.dir, "runroot"), "--storage-driver", "overlay"}
}

func (b *bench) podmanArgs() []string {
	return append(append([]string{"podman"}, b.storageArgs()...),
		"--tmpdir", filepath.Join(b.dir, "libpod-tmp"), "--cgroup-manager", "cgroupfs", "--events-backend", "none", "--runtime", "runc")
}

func (b *bench) buildahArgs(args ...string) []string {
	return append(append([]string{"buildah"}, b.storageArgs()...), args...)
}

// machine describes the host and tool versions for the report header.
func (b *bench) machine(ctx context.Context) []string {
	var lines []string
	add := func(k, v string) { lines = append(lines, fmt.Sprintf("- %s: %s", k, strings.TrimSpace(v))) }
	first := func(argv ...string) string {
		cmd := exec.CommandContext(ctx, lookSys(argv[0]), argv[1:]...)
		cmd.Env = b.cleanEnv()
		out, err := cmd.CombinedOutput()
		if err != nil {
			return "unavailable (" + err.Error() + ")"
		}
		l, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
		return l
	}
	add("date", time.Now().UTC().Format(time.RFC3339))
	cpu := "?"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	add("cpu", fmt.Sprintf("%d cores, %s", runtime.NumCPU(), cpu))
	mem := "?"
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(l, "MemTotal:") {
				var kb int64
				fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(l, "MemTotal:")), "%d", &kb) //nolint:errcheck
				mem = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
			}
		}
	}
	add("memory", mem)
	var u syscall.Utsname
	if syscall.Uname(&u) == nil {
		add("kernel", utsString(u.Release[:]))
	}
	if data, err := os.ReadFile("/etc/os-release"); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(l, "PRETTY_NAME="); ok {
				add("os", strings.Trim(v, `"`))
			}
		}
	}
	wd, _ := os.Getwd()
	add("skillbuild", "commit "+first("git", "-C", wd, "describe", "--always", "--dirty")+" (binary "+b.o.bin+")")
	add("containerd", first("containerd", "--version"))
	add("runc", first("runc", "--version"))
	if b.podman {
		add("buildah", first("buildah", "--version"))
		add("podman", first("podman", "--version"))
	}
	add("python3 (host and base)", first("python3", "--version")+", pip "+first("python3", "-m", "pip", "--version"))
	add("go", runtime.Version())
	add("load average at start (the machine is shared)", loadAvg())
	return lines
}

func utsString(a []int8) string {
	var sb strings.Builder
	for _, c := range a {
		if c == 0 {
			break
		}
		sb.WriteByte(byte(c))
	}
	return sb.String()
}

// loadAvg is /proc/loadavg's 1, 5 and 15 minute averages.
func loadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// hasSingleLayerFlag says whether -bin's install knows --single-layer (a
// hidden flag: probe it, unknown flags fail before --help is handled).
func (b *bench) hasSingleLayerFlag(ctx context.Context) bool {
	_, err := b.exec(ctx, nil, []string{b.o.bin, "install", "--single-layer", "--help"})
	return err == nil
}
