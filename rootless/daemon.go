package rootless

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	ctd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
)

// Status is the state of a user's rootless instance.
type Status struct {
	Running bool `json:"running"`
	// Pid is RootlessKit's pid; ChildPid the pid of containerd, whose
	// namespaces Reexec enters.
	Pid               int       `json:"pid,omitempty"`
	ChildPid          int       `json:"child_pid,omitempty"`
	Socket            string    `json:"socket"`
	StateRoot         string    `json:"state_root"`
	Data              string    `json:"data_dir"`
	Run               string    `json:"run_dir"`
	Log               string    `json:"log"`
	ContainerdVersion string    `json:"containerd_version,omitempty"`
	Limits            LimitMode `json:"limits"`
	// Manager is what runs the instance: ManagerSystemd (the user unit)
	// or ManagerProcess (a background process of skillbuild's own).
	Manager string `json:"manager,omitempty"`
	// Unit is the installed systemd user unit, if any.
	Unit string `json:"unit,omitempty"`
}

// The values of Status.Manager.
const (
	ManagerSystemd = "systemd"
	ManagerProcess = "process"
)

type startOptions struct {
	child        []string
	env          []string
	readyTimeout time.Duration
	systemd      *Systemd
}

// StartOpt configures Start.
type StartOpt func(*startOptions) error

// WithChild sets the command RootlessKit runs inside the namespaces; it
// must call ChildMain with the arguments Start appends (the shim directory,
// then containerd's command line). Required.
func WithChild(argv ...string) StartOpt {
	return func(o *startOptions) error {
		if len(argv) == 0 || !filepath.IsAbs(argv[0]) {
			return fmt.Errorf("child command %q must start with an absolute path: %w", argv, errdefs.ErrInvalidArgument)
		}
		o.child = argv
		return nil
	}
}

// WithEnv sets the environment of RootlessKit and containerd (PATH must
// find rootlesskit, newuidmap, containerd, its shim and runc). Default:
// a bare PATH.
func WithEnv(env []string) StartOpt {
	return func(o *startOptions) error { o.env = env; return nil }
}

// WithReadyTimeout bounds the wait for containerd to answer. Default 60s.
func WithReadyTimeout(d time.Duration) StartOpt {
	return func(o *startOptions) error {
		if d <= 0 {
			return fmt.Errorf("ready timeout %s must be positive: %w", d, errdefs.ErrInvalidArgument)
		}
		o.readyTimeout = d
		return nil
	}
}

// WithSystemd makes Start start the installed unit (UnitName) through the
// user's systemd instead of a background process of its own; the unit
// runs Foreground. WithChild is then not needed.
func WithSystemd(sd Systemd) StartOpt {
	return func(o *startOptions) error { o.systemd = &sd; return nil }
}

func startOpts(opts []StartOpt) (startOptions, error) {
	o := startOptions{env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, readyTimeout: 60 * time.Second}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return o, err
		}
	}
	if len(o.child) == 0 && o.systemd == nil {
		return o, fmt.Errorf("no child command (WithChild): %w", errdefs.ErrInvalidArgument)
	}
	return o, nil
}

// usernsFile records the user namespace of a running instance, so Stop can
// find every process left in it.
func (p Paths) usernsFile() string { return filepath.Join(p.Run, "userns") }

// prepareInstance creates p's directories, removes what an instance that
// died left (stale sockets, state) and writes containerd's config.
func prepareInstance(p Paths, uid int) error {
	if uid == 0 {
		return fmt.Errorf("rootless containerd is for ordinary users; as root use the system containerd: %w", errdefs.ErrFailedPrecondition)
	}
	if err := p.prepare(uid); err != nil {
		return err
	}
	if _, err := cleanup(p); err != nil {
		return err
	}
	if err := os.WriteFile(p.Config(), containerdConfig(p), 0o600); err != nil {
		return fmt.Errorf("write containerd config: %w", err)
	}
	return nil
}

// rootlesskitArgv is RootlessKit's command line for p's instance.
func rootlesskitArgv(p Paths, child []string) []string {
	args := []string{
		"rootlesskit",
		"--state-dir=" + p.RootlessKitDir(),
		// containerd needs no network of its own, and every build step
		// and run gets a fresh network namespace anyway.
		"--net=host",
		"--copy-up=/etc", "--copy-up=/run",
		"--propagation=rslave",
	}
	args = append(args, child...)
	return append(args, p.ShimDir(), "containerd", "--config", p.Config())
}

// Start runs containerd inside RootlessKit as the calling user, in a new
// session detached from the caller (or, WithSystemd, as the user's systemd
// unit), and returns once containerd answers on p.Socket(). An instance
// that already runs is left alone (its status is returned). A daemon that
// does not come up is stopped again, and the error carries the end of its
// log.
func Start(ctx context.Context, p Paths, opts ...StartOpt) (Status, error) {
	o, err := startOpts(opts)
	if err != nil {
		return Status{}, err
	}
	uid := os.Geteuid()
	if uid == 0 {
		return Status{}, prepareInstance(p, uid) // refuses root
	}
	if st := StatusOf(ctx, p); st.Running {
		return st, nil
	}
	if o.systemd != nil {
		return startUnit(ctx, p, o)
	}
	if err := prepareInstance(p, uid); err != nil {
		return Status{}, err
	}
	logf, err := os.OpenFile(p.Log(), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return Status{}, fmt.Errorf("open log: %w", err)
	}
	defer logf.Close()
	argv := rootlesskitArgv(p, o.child)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = o.env
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Dir = p.Data
	if err := cmd.Start(); err != nil {
		return Status{}, fmt.Errorf("start rootlesskit: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	fail := func(err error) (Status, error) {
		cmd.Process.Signal(syscall.SIGTERM) //nolint:errcheck
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill() //nolint:errcheck
			<-exited
		}
		killNamespace(readUserns(p))
		cleanup(p) //nolint:errcheck
		return Status{}, fmt.Errorf("%w\n--- end of %s:\n%s", err, p.Log(), tail(p.Log(), 20))
	}
	if err := os.WriteFile(p.PidFile(), []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o600); err != nil {
		return fail(fmt.Errorf("write pid file: %w", err))
	}
	st, err := waitReady(ctx, p, o.readyTimeout, exited)
	if err != nil {
		return fail(err)
	}
	cmd.Process.Release() //nolint:errcheck
	st.Manager = ManagerProcess
	return st, nil
}

// startUnit starts the installed unit and waits for its containerd.
func startUnit(ctx context.Context, p Paths, o startOptions) (Status, error) {
	if path := p.UnitPath(); path == "" {
		return Status{}, fmt.Errorf("no systemd unit directory: %w", errdefs.ErrInvalidArgument)
	} else if _, err := os.Stat(path); err != nil {
		return Status{}, fmt.Errorf("systemd unit %s is not installed (skillbuild rootless setup installs it): %w", path, errdefs.ErrFailedPrecondition)
	}
	if _, err := o.systemd.run(ctx, "start", UnitName); err != nil {
		return Status{}, fmt.Errorf("%w (journalctl --user -u %s says why)", err, UnitName)
	}
	// The unit restarts a containerd that dies; it failed for good when
	// systemd says so.
	exited := make(chan error, 1)
	stopWatch := make(chan struct{})
	defer close(stopWatch)
	go func() {
		for {
			select {
			case <-stopWatch:
				return
			case <-time.After(time.Second):
			}
			if out, err := o.systemd.run(ctx, "is-failed", UnitName); err == nil && strings.TrimSpace(string(out)) == "failed" {
				exited <- fmt.Errorf("unit %s failed", UnitName)
				return
			}
		}
	}()
	st, err := waitReady(ctx, p, o.readyTimeout, exited)
	if err != nil {
		o.systemd.run(context.WithoutCancel(ctx), "stop", UnitName) //nolint:errcheck
		return Status{}, fmt.Errorf("%w (journalctl --user -u %s says why)", err, UnitName)
	}
	st.Manager = ManagerSystemd
	return st, nil
}

// waitReady waits until p's containerd answers, the daemon exits (a value
// on exited) or timeout passes; it records the instance's user namespace.
func waitReady(ctx context.Context, p Paths, timeout time.Duration, exited chan error) (Status, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-exited:
			exited <- err
			return Status{}, fmt.Errorf("rootless containerd exited during start-up (%v)", err)
		case <-deadline.C:
			return Status{}, fmt.Errorf("rootless containerd did not answer on %s within %s: %w", p.Socket(), timeout, errdefs.ErrUnavailable)
		case <-ctx.Done():
			return Status{}, fmt.Errorf("start cancelled: %w", ctx.Err())
		case <-tick.C:
		}
		if _, err := os.Stat(p.Socket()); err != nil {
			continue
		}
		if v, err := ping(ctx, p.Socket()); err == nil {
			st := StatusOf(ctx, p)
			st.ContainerdVersion = v
			if st.ChildPid == 0 {
				return Status{}, fmt.Errorf("rootlesskit recorded no child pid in %s", p.RootlessKitDir())
			}
			if ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/user", st.ChildPid)); err == nil {
				os.WriteFile(p.usernsFile(), []byte(ns), 0o600) //nolint:errcheck
			}
			return st, nil
		}
	}
}

// Foreground prepares p's instance and replaces the calling process with
// RootlessKit, recording its own pid (which RootlessKit keeps): the main
// process of the systemd unit. On cgroup v2 it first moves into a leaf of
// the unit's delegated cgroup and enables the limits' controllers for
// containers (see evacuateV2); when that fails it says so on log and runs
// on (runs then fall back to rlimits, and report it). It returns only on
// error.
func Foreground(p Paths, log io.Writer, opts ...StartOpt) error {
	o, err := startOpts(opts)
	if err != nil {
		return err
	}
	if len(o.child) == 0 {
		return fmt.Errorf("no child command (WithChild): %w", errdefs.ErrInvalidArgument)
	}
	if err := prepareInstance(p, os.Geteuid()); err != nil {
		return err
	}
	if err := enterUnitCgroupV2(); err != nil {
		fmt.Fprintf(log, "skillbuild: no cgroup limits for runs: %v\n", err)
	}
	argv := rootlesskitArgv(p, o.child)
	bin, err := exec.LookPath(argv[0])
	if err != nil {
		return fmt.Errorf("rootlesskit: %w", err)
	}
	if err := os.WriteFile(p.PidFile(), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
		return fmt.Errorf("write pid file: %w", err)
	}
	if err := os.Chdir(p.Data); err != nil {
		return err
	}
	return syscall.Exec(bin, argv, o.env)
}

func ping(ctx context.Context, socket string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c, err := ctd.New(socket, ctd.WithTimeout(2*time.Second))
	if err != nil {
		return "", err
	}
	defer c.Close()
	v, err := c.Version(ctx)
	return v.Version, err
}

func containerdConfig(p Paths) []byte {
	return []byte(fmt.Sprintf(`# Generated by skillbuild rootless start; rewritten at every start.
version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = %q

[plugins."io.containerd.internal.v1.opt"]
  path = %q
`, p.ContainerdRoot(), p.containerdState(), p.Socket(), filepath.Join(p.Data, "opt")))
}

// StatusOf reports whether p's instance runs, and where its pieces are.
func StatusOf(ctx context.Context, p Paths) Status {
	st := Status{Socket: p.Socket(), StateRoot: p.StateRoot(), Data: p.Data, Run: p.Run, Log: p.Log()}
	if u := p.UnitPath(); u != "" {
		if _, err := os.Stat(u); err == nil {
			st.Unit = u
		}
	}
	st.Limits = DetectLimits(ParentUID())
	pid, err := readPid(p.PidFile())
	if err != nil || !isRootlessKit(pid, p) {
		return st
	}
	st.Pid = pid
	st.ChildPid, _ = ChildPid(p.RootlessKitDir())
	if v, err := ping(ctx, p.Socket()); err == nil {
		st.Running = true
		st.ContainerdVersion = v
	}
	return st
}

func readPid(file string) (int, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// isRootlessKit checks that pid is alive and is the RootlessKit of p (not
// a reused pid).
func isRootlessKit(pid int, p Paths) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || processDead(pid) {
		return false
	}
	args := bytes.Split(b, []byte{0})
	return len(args) > 1 && filepath.Base(string(args[0])) == "rootlesskit" &&
		bytes.Contains(b, []byte("--state-dir="+p.RootlessKitDir()+"\x00"))
}

// processDead reports whether pid is gone or a zombie.
func processDead(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// pid (comm) STATE ...: comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || b[i+2] == 'Z' || b[i+2] == 'X'
}

// StopResult is what Stop did.
type StopResult struct {
	// Stopped: an instance was running and was stopped.
	Stopped bool `json:"stopped"`
	// Leftovers is how many processes (shims, containers) remained in the
	// instance's user namespace after containerd exited, and were killed.
	Leftovers int `json:"leftovers_killed"`
}

// StopOpt configures Stop.
type StopOpt func(*stopOptions)

type stopOptions struct{ systemd *Systemd }

// StopSystemd stops the user unit through systemd first (so systemd does
// not restart it), then goes on as without it.
func StopSystemd(sd Systemd) StopOpt {
	return func(o *stopOptions) { o.systemd = &sd }
}

// Stop ends p's instance: SIGTERM to RootlessKit (which passes it to
// containerd), SIGKILL after timeout, then SIGKILL to every process left
// in its user namespace (shims outlive containerd by design, and their
// containers with them); the namespaces, and every mount in them, end with
// their last process. The runtime directory's sockets and state are
// removed; the data directory (images, cache, database) stays.
func Stop(ctx context.Context, p Paths, timeout time.Duration, opts ...StopOpt) (StopResult, error) {
	var o stopOptions
	for _, opt := range opts {
		opt(&o)
	}
	var res StopResult
	ns := readUserns(p)
	pid, err := readPid(p.PidFile())
	running := err == nil && isRootlessKit(pid, p)
	if ns == "" && running {
		if cp, err := ChildPid(p.RootlessKitDir()); err == nil {
			ns, _ = os.Readlink(fmt.Sprintf("/proc/%d/ns/user", cp))
		}
	}
	if o.systemd != nil {
		if _, err := o.systemd.run(ctx, "stop", UnitName); err != nil {
			return res, err
		}
		res.Stopped = running
	}
	if running && !processDead(pid) {
		res.Stopped = true
		if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
			return res, fmt.Errorf("stop rootlesskit (pid %d): %w", pid, err)
		}
		if !waitGone(ctx, []int{pid}, timeout) {
			syscall.Kill(pid, syscall.SIGKILL) //nolint:errcheck
			if !waitGone(ctx, []int{pid}, 10*time.Second) {
				return res, fmt.Errorf("rootlesskit (pid %d) did not exit after SIGKILL", pid)
			}
		}
	}
	n, err := killNamespace(ns)
	res.Leftovers = n
	if err != nil {
		return res, err
	}
	if _, err := cleanup(p); err != nil {
		return res, err
	}
	return res, nil
}

func readUserns(p Paths) string {
	b, err := os.ReadFile(p.usernsFile())
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// NamespaceProcesses lists the processes whose user namespace is ns (as
// readlink /proc/PID/ns/user shows it, e.g. user:[4026532xyz]).
func NamespaceProcesses(ns string) []int {
	if ns == "" {
		return nil
	}
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if l, err := os.Readlink(filepath.Join("/proc", e.Name(), "ns", "user")); err == nil && l == ns && !processDead(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// killNamespace SIGKILLs every process in user namespace ns until none is
// left, and returns how many there were.
func killNamespace(ns string) (int, error) {
	seen := map[int]bool{}
	for i := 0; i < 100; i++ {
		pids := NamespaceProcesses(ns)
		if len(pids) == 0 {
			return len(seen), nil
		}
		for _, pid := range pids {
			seen[pid] = true
			syscall.Kill(pid, syscall.SIGKILL) //nolint:errcheck
		}
		time.Sleep(100 * time.Millisecond)
	}
	return len(seen), fmt.Errorf("processes %v of the rootless instance survive SIGKILL", NamespaceProcesses(ns))
}

func waitGone(ctx context.Context, pids []int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		alive := false
		for _, pid := range pids {
			if !processDead(pid) {
				alive = true
			}
		}
		if !alive {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

// cleanup removes the runtime files of a stopped instance; it returns what
// it removed.
func cleanup(p Paths) ([]string, error) {
	var removed []string
	for _, f := range []string{p.Socket(), p.Socket() + ".ttrpc", p.PidFile(), p.usernsFile(), p.Config(), p.RootlessKitDir(), p.containerdState(), p.ShimDir()} {
		if _, err := os.Lstat(f); err != nil {
			continue
		}
		if err := removeAllOwned(f); err != nil {
			return removed, fmt.Errorf("remove %s: %w", f, err)
		}
		removed = append(removed, f)
	}
	return removed, nil
}

// removeAllOwned is os.RemoveAll for a tree the user owns but may not be
// able to enter: containerd, root of its user namespace, makes directories
// such as the shim sockets' with mode 0600.
func removeAllOwned(path string) error {
	st, err := os.Lstat(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return err
	}
	if st.IsDir() {
		if st.Mode().Perm()&0o700 != 0o700 {
			if err := os.Chmod(path, 0o700); err != nil {
				return err
			}
		}
		entries, err := os.ReadDir(path)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if err := removeAllOwned(filepath.Join(path, e.Name())); err != nil {
				return err
			}
		}
	}
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
}

// tail returns the last n lines of file.
func tail(file string, n int) string {
	b, err := os.ReadFile(file)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
