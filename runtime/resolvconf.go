package runtime

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/pkg/oci"
)

// resolvConfText replaces the image's /etc/resolv.conf in a run: a base
// made from a host's root filesystem carries that host's nameserver, and a
// run has no network and no DNS anyway.
const resolvConfText = "# skillbuild: a run has no network and no DNS\n"

const resolvConfPath = "/etc/resolv.conf"

// withResolvConf mounts the host file src (holding resolvConfText)
// read-only at dest: the image's /etc/resolv.conf, or the file it links to
// (imageFileTarget of the run's view). An image without one gets none
// (dest ""): a mountpoint cannot be created in the read-only image, and
// there is nothing to hide.
func withResolvConf(src, dest string) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if src == "" || dest == "" {
			return nil
		}
		replaceMount(s, readOnlyBind(src, dest))
		return nil
	}
}

// imageFileTarget finds the regular file p of the root filesystem mounts
// describe, following one symbolic link; it returns "" when there is none.
// Overlay and bind views (what a read-only view of the overlayfs
// snapshotter is) are read in place; anything else is mounted for the
// look.
func imageFileTarget(ctx context.Context, mounts []mount.Mount, p string) (string, error) {
	lookup := func(fsys func(string) (fs.FileInfo, string, error)) (string, error) {
		fi, link, err := fsys(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return "", nil
		case err != nil:
			return "", err
		case fi.Mode().IsRegular():
			return p, nil
		case fi.Mode()&fs.ModeSymlink == 0:
			return "", nil
		}
		target := link
		if !path.IsAbs(target) {
			target = path.Join(path.Dir(p), target)
		}
		target = path.Clean(target)
		fi, _, err = fsys(target)
		if err != nil || !fi.Mode().IsRegular() {
			return "", nil // dangling or odd: nothing of the host's is behind it
		}
		return target, nil
	}
	if dirs, ok := layerDirs(mounts); ok {
		return lookup(func(q string) (fs.FileInfo, string, error) { return layeredLstat(dirs, q) })
	}
	var out string
	err := mount.WithReadonlyTempMount(ctx, mounts, func(root string) error {
		var err error
		out, err = lookup(func(q string) (fs.FileInfo, string, error) {
			return lstatIn([]string{root}, q)
		})
		return err
	})
	return out, err
}

// layerDirs lists the directories of a view, uppermost first: an overlay
// mount's upperdir, if any (a gVisor run's root of its own), then its
// lowerdirs; or a bind mount's source.
func layerDirs(mounts []mount.Mount) ([]string, bool) {
	if len(mounts) != 1 {
		return nil, false
	}
	m := mounts[0]
	switch m.Type {
	case "bind":
		return []string{m.Source}, true
	case "overlay":
		var upper, lower []string
		for _, o := range m.Options {
			if v, ok := strings.CutPrefix(o, "upperdir="); ok {
				upper = []string{v}
			}
			if v, ok := strings.CutPrefix(o, "lowerdir="); ok {
				lower = strings.Split(v, ":")
			}
		}
		return append(upper, lower...), len(lower) > 0
	}
	return nil, false
}

// layeredLstat is Lstat of p in overlay layers (uppermost first): the first
// layer that has p wins, a whiteout hides it, an opaque parent stops the
// search. Parents that are links in a layer are not followed (resolv.conf
// sits directly in /etc).
func layeredLstat(dirs []string, p string) (fs.FileInfo, string, error) {
	for _, d := range dirs {
		fi, link, err := lstatIn([]string{d}, p)
		if err == nil {
			if fi.Mode()&fs.ModeCharDevice != 0 {
				if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Rdev == 0 {
					return nil, "", fs.ErrNotExist // whiteout
				}
			}
			return fi, link, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, "", err
		}
		if opaque(filepath.Join(d, path.Dir(p))) {
			break
		}
	}
	return nil, "", fs.ErrNotExist
}

func opaque(dir string) bool {
	buf := make([]byte, 1)
	n, err := syscall.Getxattr(dir, "trusted.overlay.opaque", buf)
	return err == nil && n == 1 && buf[0] == 'y'
}

func lstatIn(dirs []string, p string) (fs.FileInfo, string, error) {
	full := filepath.Join(dirs[0], p)
	fi, err := os.Lstat(full)
	if err != nil {
		return nil, "", err
	}
	var link string
	if fi.Mode()&fs.ModeSymlink != 0 {
		if link, err = os.Readlink(full); err != nil {
			return nil, "", err
		}
	}
	return fi, link, nil
}
