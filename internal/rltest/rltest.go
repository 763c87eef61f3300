// Package rltest makes an unprivileged account for driving skillbuild's
// rootless mode, for the integration suite and the benchmark harness: the
// user with a subordinate id range of its own, a home and runtime
// directory, and a copy of the binary under test it can execute. Creating
// and removing accounts needs root.
package rltest

import (
	"bufio"
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
)

// User is an account made by New.
type User struct {
	Name             string
	UID, GID         int
	SubStart, SubLen int    // its subordinate uid range (the same for gids)
	Dir              string // shared with the user: binary, archives
	Home, RunDir     string
	Bin              string // the copy of the binary under test
	// PATH is the user's PATH (default: the system directories); a lane
	// testing other containerd binaries puts their directory first.
	PATH string
}

// defaultPATH is a User's PATH unless it says otherwise.
const defaultPATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// New creates an account named prefix+pid (useradd; subordinate ranges
// from login.defs, or a free one added with usermod) and copies bin where
// it can run it. Remove deletes it again.
func New(prefix, bin string) (*User, error) {
	for _, b := range []string{"useradd", "usermod", "userdel", "rootlesskit", "newuidmap", "newgidmap", "nsenter"} {
		if _, err := exec.LookPath(b); err != nil {
			return nil, fmt.Errorf("%s is needed for rootless mode (make deps installs it): %w", b, err)
		}
	}
	// Short: BuildKit's forwarded sockets live under the runtime directory
	// and unix socket paths end at 107 bytes.
	dir, err := os.MkdirTemp("", prefix+"-")
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	u := &User{Name: fmt.Sprintf("%s%d", prefix, os.Getpid()%100000), Dir: dir, Home: filepath.Join(dir, "home"), RunDir: filepath.Join(dir, "run")}
	if out, err := exec.Command("useradd", "--no-create-home", "--home-dir", u.Home, "--shell", "/usr/sbin/nologin", "--user-group", u.Name).CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("useradd: %v: %s", err, out)
	}
	if err := u.init(bin); err != nil {
		return nil, errors.Join(err, u.Remove())
	}
	return u, nil
}

func (u *User) init(bin string) error {
	// useradd gives new users a range where login.defs says so (Debian
	// does); otherwise add one no other line uses. One range only: two
	// make newuidmap write several extents, which some kernels refuse.
	var err error
	if u.SubStart, u.SubLen, err = subIDRange(u.Name); err != nil {
		return err
	}
	if u.SubLen == 0 {
		if u.SubStart, err = freeSubIDRange(); err != nil {
			return err
		}
		u.SubLen = 65536
		rng := fmt.Sprintf("%d-%d", u.SubStart, u.SubStart+u.SubLen-1)
		if out, err := exec.Command("usermod", "--add-subuids", rng, "--add-subgids", rng, u.Name).CombinedOutput(); err != nil {
			return fmt.Errorf("usermod: %v: %s", err, out)
		}
	}
	for _, id := range []struct {
		flag string
		to   *int
	}{{"-u", &u.UID}, {"-g", &u.GID}} {
		out, err := exec.Command("id", id.flag, u.Name).Output()
		if err != nil {
			return fmt.Errorf("id %s %s: %w", id.flag, u.Name, err)
		}
		*id.to, _ = strconv.Atoi(strings.TrimSpace(string(out)))
	}
	for _, d := range []string{u.Home, u.RunDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
		if err := os.Chown(d, u.UID, u.GID); err != nil {
			return err
		}
	}
	u.Bin = filepath.Join(u.Dir, "skillbuild")
	return CopyFile(bin, u.Bin, 0o755)
}

// Command is the binary under test run as the user with a clean
// environment of its own (XDG_RUNTIME_DIR set, XDG_DATA_HOME left to
// default under HOME), in its home.
func (u *User) Command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, u.Bin, args...)
	path := u.PATH
	if path == "" {
		path = defaultPATH
	}
	cmd.Env = []string{"PATH=" + path, "HOME=" + u.Home, "LANG=C.UTF-8", "XDG_RUNTIME_DIR=" + u.RunDir}
	cmd.Dir = u.Home
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(u.UID), Gid: uint32(u.GID), Groups: []uint32{}}}
	return cmd
}

// Processes lists the live (not zombie) processes of the user: its own
// uid or one of its subordinate ids, as "PID:NAME".
func (u *User) Processes() []string {
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
		uid := -1
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
		mine := uid == u.UID || (uid >= u.SubStart && uid < u.SubStart+u.SubLen)
		if mine && state != "Z" && state != "X" {
			out = append(out, e.Name()+":"+name)
		}
	}
	return out
}

// Remove stops the user's rootless instance, takes back its delegated
// cgroups, kills what is left and deletes the account, its subordinate
// ranges and (unless keep) its files.
func (u *User) Remove() error {
	return u.remove(false)
}

// RemoveKeepFiles is Remove without deleting the user's files (for a look
// after a failure).
func (u *User) RemoveKeepFiles() error { return u.remove(true) }

func (u *User) remove(keep bool) error {
	var errs []error
	if u.Bin != "" {
		if _, err := os.Stat(u.Bin); err == nil {
			u.Command(context.Background(), "rootless", "stop").Run()                  //nolint:errcheck // it may not run
			exec.Command(u.Bin, "rootless", "setup", "--user", u.Name, "--undo").Run() //nolint:errcheck // nothing may be delegated
		}
	}
	for _, p := range u.Processes() {
		pid, _ := strconv.Atoi(strings.SplitN(p, ":", 2)[0])
		syscall.Kill(pid, syscall.SIGKILL) //nolint:errcheck
	}
	if out, err := exec.Command("userdel", u.Name).CombinedOutput(); err != nil {
		errs = append(errs, fmt.Errorf("userdel %s: %v: %s", u.Name, err, out))
	}
	// userdel keeps subordinate ranges on some versions of shadow.
	for _, f := range []string{"/etc/subuid", "/etc/subgid"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var kept []string
		for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
			if !strings.HasPrefix(l, u.Name+":") && !strings.HasPrefix(l, strconv.Itoa(u.UID)+":") {
				kept = append(kept, l)
			}
		}
		if err := os.WriteFile(f, []byte(strings.Join(kept, "\n")+"\n"), 0o644); err != nil {
			errs = append(errs, err)
		}
	}
	if !keep {
		if err := os.RemoveAll(u.Dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// subIDRange is name's range in /etc/subuid, if it has one.
func subIDRange(name string) (start, n int, err error) {
	b, err := os.ReadFile("/etc/subuid")
	if os.IsNotExist(err) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		p := strings.Split(l, ":")
		if len(p) == 3 && p[0] == name {
			start, _ = strconv.Atoi(p[1])
			n, _ = strconv.Atoi(p[2])
			return start, n, nil
		}
	}
	return 0, 0, nil
}

// freeSubIDRange is the start of 65536 ids no line of /etc/subuid or
// /etc/subgid uses.
func freeSubIDRange() (int, error) {
	end := 100000
	for _, f := range []string{"/etc/subuid", "/etc/subgid"} {
		b, err := os.ReadFile(f)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return 0, err
		}
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
	return (end + 65535) / 65536 * 65536, nil
}

// CopyFile copies from to a new file to with mode.
func CopyFile(from, to string, mode os.FileMode) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
