package runtime

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// ownerName is the file in a run's state directory that its process holds
// an flock on for as long as the run's container or view may exist: the
// kernel drops the lock when the process dies however it dies (kill -9
// included), so a sweep can tell a run whose owner is gone at once,
// without waiting for its deadline.
const ownerName = "owner"

// holdOwner creates and locks the owner file of the run in dir.
func holdOwner(dir string) (*os.File, error) {
	f, err := lockedFile(filepath.Join(dir, ownerName))
	if err != nil {
		return nil, fmt.Errorf("run owner lock: %w", err)
	}
	return f, nil
}

// lockedFile creates path holding an exclusive flock. The file is locked
// under another name and then renamed into place, so a sweep never finds
// it unlocked while its owner lives (and never removes it as a dead
// owner's).
func lockedFile(path string) (*os.File, error) {
	f, err := os.CreateTemp(filepath.Dir(path), ".owner-*")
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	return f, nil
}

// ownerGone reports whether the run id of stateDir has an owner file that
// no process holds: its owner died. A run without one (created with
// another state directory, or by an older skillbuild) is not known to be
// gone.
func ownerGone(stateDir, id string) bool {
	return lockFree(filepath.Join(stateDir, id, ownerName))
}

// lockFree reports whether the file at path exists and no process holds
// its flock (see lockedFile): its owner died. A file that cannot be
// opened or locked is not known to be free.
func lockFree(path string) bool {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
		return false // held (or not lockable): alive as far as we know
	}
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN) //nolint:errcheck // closing drops it anyway
	return true
}
