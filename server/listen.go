package server

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// DefaultListen is where the server listens unless told otherwise.
const DefaultListen = "unix:///run/skillbuild/api.sock"

// Listen opens addr: unix:///path/to.sock (created with mode 0660, owned
// by group when it is not empty; a stale socket left by a dead server is
// replaced, a live one is an error) or tcp://HOST:PORT with HOST a
// loopback address or localhost.
func Listen(addr, group string) (net.Listener, error) {
	u, err := url.Parse(addr)
	if err != nil || (u.Scheme != "unix" && u.Scheme != "tcp") {
		return nil, fmt.Errorf("listen address %q: use unix:///path/to.sock or tcp://127.0.0.1:PORT: %w", addr, errdefs.ErrInvalidArgument)
	}
	if u.Scheme == "tcp" {
		if group != "" {
			return nil, fmt.Errorf("--group applies to a unix socket only, not to %s: %w", addr, errdefs.ErrInvalidArgument)
		}
		host, port, err := net.SplitHostPort(u.Host)
		if err != nil {
			return nil, fmt.Errorf("listen address %q: %v: %w", addr, err, errdefs.ErrInvalidArgument)
		}
		if host == "localhost" {
			host = "127.0.0.1"
		}
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			return nil, fmt.Errorf("listen address %q: TCP only on a loopback address (127.0.0.1, [::1]); use a unix socket to share the API: %w", addr, errdefs.ErrInvalidArgument)
		}
		return net.Listen("tcp", net.JoinHostPort(host, port))
	}
	path := u.Path
	if u.Host != "" || path == "" || !filepath.IsAbs(path) {
		return nil, fmt.Errorf("listen address %q: a unix socket needs an absolute path (unix:///run/skillbuild/api.sock): %w", addr, errdefs.ErrInvalidArgument)
	}
	gid := -1
	if group != "" {
		if gid, err = lookupGroup(group); err != nil {
			return nil, err
		}
	}
	return listenUnix(path, gid, nil)
}

// maxSocketPath is the longest path a client can connect to (sun_path
// holds 108 bytes with its terminating NUL).
const maxSocketPath = 107

// listenUnix creates the unix socket path, mode 0660 and group gid (when
// gid >= 0), so that nothing placed in path's directory can redirect what
// is done to it. The socket is bound in a directory of its own that this
// process creates beside path (mode 0700: nobody else can enter it, let
// alone replace what is in it), reached through its descriptor, never its
// name; its mode and group are set there; and only then is it renamed
// onto path, which replaces whatever path is (a symbolic link included)
// without following it. beforeMode, if not nil, runs between the bind and
// the mode change (a test's attacker).
func listenUnix(path string, gid int, beforeMode func()) (_ net.Listener, err error) {
	if len(path) > maxSocketPath {
		return nil, fmt.Errorf("socket path %s is %d bytes long; a unix socket path must be at most %d: %w", path, len(path), maxSocketPath, errdefs.ErrInvalidArgument)
	}
	dir, name := filepath.Split(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("socket directory: %w", err)
	}
	if err := removeStaleSocket(path); err != nil {
		return nil, err
	}
	parent, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socket directory %s: %w", dir, err)
	}
	defer unix.Close(parent)
	private, privateName, err := makePrivateDir(parent, name)
	if err != nil {
		return nil, fmt.Errorf("socket directory %s: %w", dir, err)
	}
	defer func() {
		unix.Unlinkat(private, "s", 0) //nolint:errcheck // gone once renamed
		unix.Close(private)
		unix.Unlinkat(parent, privateName, unix.AT_REMOVEDIR) //nolint:errcheck // best effort: empty once renamed
	}()

	// Nobody but the owner may connect before the mode and group are set.
	old := syscall.Umask(0o177)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: fmt.Sprintf("/proc/self/fd/%d/s", private), Net: "unix"})
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	ln.SetUnlinkOnClose(false) // it unlinks by the name it was bound at
	defer func() {
		if err != nil {
			ln.Close()
		}
	}()
	if beforeMode != nil {
		beforeMode()
	}
	if gid >= 0 {
		if err := unix.Fchownat(private, "s", -1, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return nil, fmt.Errorf("socket group: %w", err)
		}
	}
	if err := unix.Fchmodat(private, "s", 0o660, 0); err != nil {
		return nil, fmt.Errorf("socket mode: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Fstatat(private, "s", &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	if err := unix.Renameat(private, "s", parent, name); err != nil {
		return nil, fmt.Errorf("put the socket at %s: %w", path, err)
	}
	return &unixListener{UnixListener: ln, addr: &net.UnixAddr{Name: path, Net: "unix"}, dev: st.Dev, ino: st.Ino}, nil
}

// makePrivateDir creates a directory only this process's user can enter,
// in parent, named after name, and opens it without following a link.
func makePrivateDir(parent int, name string) (fd int, dirName string, err error) {
	for range 10 {
		var b [6]byte
		if _, err := rand.Read(b[:]); err != nil {
			return -1, "", err
		}
		dirName = fmt.Sprintf(".%s.%x", name, b)
		err = unix.Mkdirat(parent, dirName, 0o700)
		if errors.Is(err, unix.EEXIST) {
			continue
		}
		if err != nil {
			return -1, "", err
		}
		fd, err = unix.Openat(parent, dirName, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return -1, "", err
		}
		// What was opened is the directory made above, not one put in its
		// place: ours, and closed to everyone else.
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil || st.Uid != uint32(os.Geteuid()) || st.Mode&0o077 != 0 {
			unix.Close(fd)
			return -1, "", fmt.Errorf("%s was replaced while it was created", dirName)
		}
		return fd, dirName, nil
	}
	return -1, "", fmt.Errorf("no free name for a private directory: %w", unix.EEXIST)
}

// unixListener is a listener on a socket renamed into place: its address
// is where clients connect, and Close removes the socket there, unless
// another one (a new server's) took its place.
type unixListener struct {
	*net.UnixListener
	addr     *net.UnixAddr
	dev, ino uint64
}

func (l *unixListener) Addr() net.Addr { return l.addr }

func (l *unixListener) Close() error {
	err := l.UnixListener.Close()
	var st unix.Stat_t
	if unix.Lstat(l.addr.Name, &st) == nil && st.Dev == l.dev && st.Ino == l.ino {
		os.Remove(l.addr.Name) //nolint:errcheck // as net.UnixListener does
	}
	return err
}

func lookupGroup(name string) (int, error) {
	if n, err := strconv.Atoi(name); err == nil && n >= 0 {
		return n, nil
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		return -1, fmt.Errorf("group %q: %v: %w", name, err, errdefs.ErrInvalidArgument)
	}
	return strconv.Atoi(g.Gid)
}

// removeStaleSocket removes a socket at path that nobody answers on.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("%s exists and is not a socket: %w", path, errdefs.ErrInvalidArgument)
	}
	if c, err := net.Dial("unix", path); err == nil {
		c.Close()
		return fmt.Errorf("another server answers on %s: %w", path, errdefs.ErrUnavailable)
	} else if !strings.Contains(err.Error(), "connection refused") && !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("check socket %s: %w", path, err)
	}
	return os.Remove(path)
}
