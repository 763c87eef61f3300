package server

import (
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
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("socket directory: %w", err)
	}
	if err := removeStaleSocket(path); err != nil {
		return nil, err
	}
	// Nobody but root may connect before the mode and group are set.
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(true)
	if gid >= 0 {
		if err := os.Chown(path, -1, gid); err != nil {
			ln.Close()
			return nil, fmt.Errorf("socket group: %w", err)
		}
	}
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, fmt.Errorf("socket mode: %w", err)
	}
	return ln, nil
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
