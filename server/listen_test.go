package server

import (
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestListenUnixCannotBeRedirected plays the attacker who can write the
// socket's directory: between the bind and the mode change, the socket's
// name is made a symbolic link to another file. The mode and group meant
// for the socket must not reach that file; the socket ends up at its name
// with them, and closing removes it and nothing else.
func TestListenUnixCannotBeRedirected(t *testing.T) {
	t.Parallel()
	gid := os.Getgid() // a group this process may give without privilege
	if os.Geteuid() == 0 {
		gid = 4242
	}
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	require.NoError(t, os.WriteFile(target, []byte("secret"), 0o600))
	sock := filepath.Join(dir, "api.sock")

	ln, err := listenUnix(sock, gid, func() {
		os.Remove(sock) //nolint:errcheck // the socket, where it is bound at its name
		require.NoError(t, os.Symlink(target, sock))
	})
	require.NoError(t, err)

	fi, err := os.Lstat(target)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode(), "the target's mode is unchanged")
	assert.Equal(t, uint32(os.Getgid()), fi.Sys().(*syscall.Stat_t).Gid, "the target's group is unchanged")

	fi, err = os.Lstat(sock)
	require.NoError(t, err)
	assert.Equal(t, os.ModeSocket|0o660, fi.Mode(), "the socket replaced the link, with its mode")
	assert.Equal(t, uint32(gid), fi.Sys().(*syscall.Stat_t).Gid)
	assert.Equal(t, sock, ln.Addr().String())
	c, err := net.Dial("unix", sock)
	require.NoError(t, err)
	c.Close()

	require.NoError(t, ln.Close())
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	assert.Equal(t, []string{"target"}, names, "closing removed the socket; no private directory is left")
}

// TestListenUnixCloseLeavesAnotherSocket: a listener whose name another
// server took over meanwhile does not remove that server's socket.
func TestListenUnixCloseLeavesAnotherSocket(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(t.TempDir(), "api.sock")
	ln, err := listenUnix(sock, -1, nil)
	require.NoError(t, err)
	require.NoError(t, os.Remove(sock))
	other, err := listenUnix(sock, -1, nil)
	require.NoError(t, err)
	defer other.Close()
	require.NoError(t, ln.Close())
	c, err := net.Dial("unix", sock)
	require.NoError(t, err, "the other server's socket is still there")
	c.Close()
}
