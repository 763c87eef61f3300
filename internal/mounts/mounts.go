// Package mounts finds and detaches the mounts under a directory, as
// recorded in /proc/self/mountinfo.
package mounts

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// UnmountUnder detaches every mount at or below dir, deepest first, so
// that removing dir can never delete files of a mounted snapshot.
func UnmountUnder(dir string) error {
	if dir == "" {
		return nil
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	defer f.Close()
	mps, err := under(f, dir)
	if err != nil {
		return err
	}
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
func under(r io.Reader, dir string) ([]string, error) {
	ms, err := mountinfo.GetMountsFromReader(r, func(m *mountinfo.Info) (skip, stop bool) {
		return m.Mountpoint != dir && !strings.HasPrefix(m.Mountpoint, dir+string(filepath.Separator)), false
	})
	if err != nil {
		return nil, err
	}
	mps := make([]string, len(ms))
	for i, m := range ms {
		mps[i] = m.Mountpoint
	}
	sort.Sort(sort.Reverse(sort.StringSlice(mps)))
	return mps, nil
}
