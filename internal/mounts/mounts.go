// Package mounts finds and detaches the mounts under a directory, as
// recorded in /proc/self/mountinfo.
package mounts

import (
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// UnmountUnder detaches every mount at or below dir, deepest first, so
// that removing dir can never delete files of a mounted snapshot.
func UnmountUnder(dir string) error {
	if dir == "" {
		return nil
	}
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	mps := under(string(b), dir)
	var errs []error
	for _, mp := range mps {
		if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil && err != unix.EINVAL && err != unix.ENOENT {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// under lists the mount points in mountinfo that are dir or below it,
// deepest first. A sibling that merely shares dir's prefix ("/a/b2" for
// "/a/b") is not below it.
func under(mountinfo, dir string) []string {
	var mps []string
	for _, l := range strings.Split(mountinfo, "\n") {
		f := strings.Fields(l)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+string(filepath.Separator))) {
			mps = append(mps, f[4])
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(mps)))
	return mps
}
