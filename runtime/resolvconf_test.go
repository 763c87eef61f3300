package runtime

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// layer makes a directory with files: "path" → content, "path -> target"
// for a symbolic link, "path" → "" with a trailing "!" for a whiteout.
func layer(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if link, target, ok := strings.Cut(name, " -> "); ok {
			p := filepath.Join(dir, link)
			require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
			require.NoError(t, os.Symlink(target, p))
			continue
		}
		p := filepath.Join(dir, strings.TrimSuffix(name, "!"))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		if strings.HasSuffix(name, "!") {
			if err := syscall.Mknod(p, syscall.S_IFCHR, 0); err != nil {
				t.Skipf("a whiteout needs mknod (root): %v", err)
			}
			continue
		}
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	}
	return dir
}

func TestImageFileTarget(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	overlay := func(dirs ...string) []mount.Mount {
		return []mount.Mount{{Type: "overlay", Source: "overlay", Options: []string{"lowerdir=" + strings.Join(dirs, ":")}}}
	}
	bind := func(dir string) []mount.Mount {
		return []mount.Mount{{Type: "bind", Source: dir, Options: []string{"ro", "rbind"}}}
	}
	file := layer(t, map[string]string{"etc/resolv.conf": "nameserver 10.0.0.1\n"})
	link := layer(t, map[string]string{"etc/resolv.conf -> ../run/resolvconf/resolv.conf": "", "run/resolvconf/resolv.conf": "nameserver 10.0.0.1\n"})
	dangling := layer(t, map[string]string{"etc/resolv.conf -> /run/systemd/resolve/stub-resolv.conf": ""})
	none := layer(t, map[string]string{"etc/hostname": "x"})

	for _, tc := range []struct {
		name   string
		mounts []mount.Mount
		want   string
	}{
		{name: "a regular file", mounts: bind(file), want: "/etc/resolv.conf"},
		{name: "a link to a file: the file is covered", mounts: bind(link), want: "/run/resolvconf/resolv.conf"},
		{name: "a dangling link: nothing to cover", mounts: bind(dangling), want: ""},
		{name: "no file", mounts: bind(none), want: ""},
		{name: "a file in a lower layer", mounts: overlay(none, file), want: "/etc/resolv.conf"},
		{name: "the upper layer's link wins", mounts: overlay(dangling, file), want: ""},
	} {
		got, err := imageFileTarget(ctx, tc.mounts, resolvConfPath)
		require.NoError(t, err, tc.name)
		assert.Equal(t, tc.want, got, tc.name)
	}
	// A whiteout in an upper layer hides the lower file.
	whiteout := layer(t, map[string]string{"etc/resolv.conf!": ""})
	got, err := imageFileTarget(ctx, overlay(whiteout, file), resolvConfPath)
	require.NoError(t, err)
	assert.Empty(t, got, "whited out")
}
