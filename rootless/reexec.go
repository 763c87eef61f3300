package rootless

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/moby/sys/userns"
	"golang.org/x/sys/unix"
)

// reexecMarker is set in the environment of a re-executed process, so a
// failed entry cannot loop.
const reexecMarker = "_SKILLBUILD_ROOTLESS_REEXEC"

// InNamespace reports whether the process runs inside RootlessKit's
// namespaces (RootlessKit's child, or a process Reexec moved there).
func InNamespace() bool {
	return userns.RunningInUserNS() && os.Getenv("ROOTLESSKIT_STATE_DIR") != ""
}

// ParentUID is the user's uid on the host: os.Geteuid() outside the
// namespaces, ROOTLESSKIT_PARENT_EUID inside them (where the process is
// uid 0).
func ParentUID() int {
	if InNamespace() {
		if n, err := strconv.Atoi(os.Getenv("ROOTLESSKIT_PARENT_EUID")); err == nil {
			return n
		}
	}
	return os.Geteuid()
}

// ChildPid reads the pid RootlessKit records for its child.
func ChildPid(stateDir string) (int, error) {
	return readPid(filepath.Join(stateDir, "child_pid"))
}

// Reexec replaces the calling process with exe and args run by nsenter
// in the user and mount namespaces of p's containerd, as root of that user
// namespace with the caller's working directory and env (plus the
// variables InNamespace and ParentUID read). It returns only on error:
// errdefs.ErrUnavailable when the instance does not run.
func Reexec(p Paths, exe string, args []string, env []string, wd string) error {
	if os.Getenv(reexecMarker) != "" {
		return fmt.Errorf("re-executed into the rootless namespaces of %s but not inside them: %w", p.RootlessKitDir(), errdefs.ErrFailedPrecondition)
	}
	pid, err := ChildPid(p.RootlessKitDir())
	if err != nil || processDead(pid) {
		return fmt.Errorf("rootless containerd is not running (no live child pid in %s): run `skillbuild rootless start` first: %w", p.RootlessKitDir(), errdefs.ErrUnavailable)
	}
	nsenter, err := exec.LookPath("nsenter")
	if err != nil {
		return fmt.Errorf("nsenter not found (apt-get install util-linux): %w", errdefs.ErrFailedPrecondition)
	}
	// No -r: nsenter would keep the host's root directory, where the
	// user namespace's root cannot reach root-owned state.
	argv := []string{nsenter, "--preserve-credentials", "-U", "-m", "-t", strconv.Itoa(pid), "-F"}
	if wd != "" {
		argv = append(argv, "-w"+wd)
	}
	argv = append(append(argv, "--", exe), args...)
	env = append(withoutVars(env, "ROOTLESSKIT_STATE_DIR", "ROOTLESSKIT_PARENT_EUID", "ROOTLESSKIT_PARENT_EGID", "PWD", reexecMarker),
		"ROOTLESSKIT_STATE_DIR="+p.RootlessKitDir(),
		"ROOTLESSKIT_PARENT_EUID="+strconv.Itoa(os.Geteuid()),
		"ROOTLESSKIT_PARENT_EGID="+strconv.Itoa(os.Getegid()),
		reexecMarker+"=1",
	)
	if wd != "" {
		// Go's os.Getwd trusts $PWD; getcwd(2) cannot name a directory
		// entered through another mount namespace's root.
		env = append(env, "PWD="+wd)
	}
	return unix.Exec(nsenter, argv, env)
}

func withoutVars(env []string, names ...string) []string {
	out := make([]string, 0, len(env))
next:
	for _, kv := range env {
		for _, n := range names {
			if strings.HasPrefix(kv, n+"=") {
				continue next
			}
		}
		out = append(out, kv)
	}
	return out
}

// ChildMain runs inside RootlessKit's namespaces, as their root: it puts
// shimDir over /run/containerd (containerd 1.6 keeps shim sockets and
// FIFOs there, whatever its config says; after RootlessKit's copy-up /run
// is a private tmpfs whose entries link to the host's), then replaces the
// process with argv (containerd). It returns only on error.
func ChildMain(shimDir string, argv []string) error {
	if !InNamespace() {
		return fmt.Errorf("the rootless child runs only inside RootlessKit: %w", errdefs.ErrFailedPrecondition)
	}
	if len(argv) == 0 {
		return fmt.Errorf("no command for the rootless child: %w", errdefs.ErrInvalidArgument)
	}
	const target = "/run/containerd"
	if st, err := os.Lstat(target); err == nil && !st.IsDir() {
		if err := os.Remove(target); err != nil {
			return fmt.Errorf("remove the host's %s link: %w", target, err)
		}
	}
	if err := os.MkdirAll(target, 0o711); err != nil {
		return fmt.Errorf("create %s: %w", target, err)
	}
	if err := os.MkdirAll(shimDir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", shimDir, err)
	}
	if err := unix.Mount(shimDir, target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind %s over %s: %w", shimDir, target, err)
	}
	bin, err := exec.LookPath(argv[0])
	if err != nil {
		return fmt.Errorf("%s: %w", argv[0], err)
	}
	return unix.Exec(bin, argv, os.Environ())
}
