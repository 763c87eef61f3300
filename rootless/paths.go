package rootless

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/containerd/errdefs"
)

// Env is what the paths of a user's rootless instance depend on: the
// user's id and the XDG variables (empty when unset). The caller reads them
// from the environment; nothing in this package does.
type Env struct {
	UID        int
	Home       string
	DataHome   string // $XDG_DATA_HOME
	ConfigHome string // $XDG_CONFIG_HOME
	RuntimeDir string // $XDG_RUNTIME_DIR
	TempDir    string // os.TempDir(), for the runtime directory fallback
}

// Paths are the files and directories of one user's rootless instance.
type Paths struct {
	// Data holds what persists: containerd's root and skillbuild's state
	// root ($XDG_DATA_HOME/skillbuild, or ~/.local/share/skillbuild).
	Data string
	// Run holds what lives as long as the daemon: the socket, RootlessKit's
	// state, containerd's state, the config ($XDG_RUNTIME_DIR/skillbuild).
	Run string
	// UnitDir is where systemd looks for the user's units
	// ($XDG_CONFIG_HOME/systemd/user, or ~/.config/systemd/user; empty
	// without either).
	UnitDir string
}

// PathsFor returns the paths of e's rootless instance. Without
// $XDG_RUNTIME_DIR it uses /run/user/UID when that exists and belongs to
// the user, and otherwise TempDir/skillbuild-run-UID (created 0700, and
// refused unless it is a directory the user owns).
func PathsFor(e Env) (Paths, error) {
	data := e.DataHome
	if data == "" {
		if e.Home == "" {
			return Paths{}, fmt.Errorf("neither XDG_DATA_HOME nor HOME is set: set one of them: %w", errdefs.ErrInvalidArgument)
		}
		data = filepath.Join(e.Home, ".local", "share")
	}
	if !filepath.IsAbs(data) {
		return Paths{}, fmt.Errorf("data directory %q is not absolute: %w", data, errdefs.ErrInvalidArgument)
	}
	run := e.RuntimeDir
	if run == "" {
		run = fallbackRuntimeDir(e)
	}
	if !filepath.IsAbs(run) {
		return Paths{}, fmt.Errorf("runtime directory %q is not absolute: %w", run, errdefs.ErrInvalidArgument)
	}
	unitDir := ""
	switch {
	case filepath.IsAbs(e.ConfigHome):
		unitDir = filepath.Join(e.ConfigHome, "systemd", "user")
	case e.Home != "":
		unitDir = filepath.Join(e.Home, ".config", "systemd", "user")
	}
	return Paths{Data: filepath.Join(data, "skillbuild"), Run: filepath.Join(run, "skillbuild"), UnitDir: unitDir}, nil
}

func fallbackRuntimeDir(e Env) string {
	userRun := filepath.Join("/run/user", strconv.Itoa(e.UID))
	if ownedDir(userRun, e.UID) == nil {
		return userRun
	}
	tmp := e.TempDir
	if tmp == "" {
		tmp = "/tmp"
	}
	return filepath.Join(tmp, "skillbuild-run-"+strconv.Itoa(e.UID))
}

// ownedDir checks that dir is a directory (not a symlink) owned by uid and
// not writable by anyone else.
func ownedDir(dir string, uid int) error {
	st, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !st.IsDir() || !ok || int(sys.Uid) != uid || st.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%s is not a directory owned by uid %d and writable only by it: %w", dir, uid, errdefs.ErrFailedPrecondition)
	}
	return nil
}

// Socket is containerd's socket: the default --address of a user.
func (p Paths) Socket() string { return filepath.Join(p.Run, "containerd.sock") }

// StateRoot is skillbuild's state directory (build cache, vulnerability
// database, lock, runs): the default --root of a user.
func (p Paths) StateRoot() string { return filepath.Join(p.Data, "state") }

// RootlessKitDir is RootlessKit's state directory (child_pid, api.sock).
func (p Paths) RootlessKitDir() string { return filepath.Join(p.Run, "rootlesskit") }

// ContainerdRoot is containerd's persistent root (content, snapshots).
func (p Paths) ContainerdRoot() string { return filepath.Join(p.Data, "containerd") }

// containerdState is containerd's state directory.
func (p Paths) containerdState() string { return filepath.Join(p.Run, "containerd-state") }

// ShimDir is the directory mounted over /run/containerd inside the
// namespaces (shim sockets and FIFOs).
func (p Paths) ShimDir() string { return filepath.Join(p.Run, "containerd-run") }

// Config is the generated containerd config.
func (p Paths) Config() string { return filepath.Join(p.Run, "containerd.toml") }

// PidFile holds RootlessKit's pid.
func (p Paths) PidFile() string { return filepath.Join(p.Run, "rootlesskit.pid") }

// Log is the daemon's log (RootlessKit's and containerd's output); it
// outlives the daemon for a look after a failure.
func (p Paths) Log() string { return filepath.Join(p.Data, "containerd.log") }

// prepare creates the directories of p, 0700, and checks the runtime
// directory's parent belongs to uid.
func (p Paths) prepare(uid int) error {
	parent := filepath.Dir(p.Run)
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return fmt.Errorf("runtime directory: %w", err)
	}
	if err := ownedDir(parent, uid); err != nil {
		return fmt.Errorf("runtime directory: %w (set XDG_RUNTIME_DIR to a private directory of yours)", err)
	}
	for _, d := range []string{p.Run, p.Data, p.ShimDir(), p.ContainerdRoot(), p.StateRoot()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
	}
	return nil
}
