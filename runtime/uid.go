package runtime

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/containerd/errdefs"
)

// A run whose user would be DefaultUID:DefaultGID (the image names no
// user, names root, or names 65532 as skillbuild's images do) runs as a
// uid:gid of its own instead, picked from RunUIDBase up to
// RunUIDBase+RunUIDCount-1 (or the range WithRunUIDRange sets) and held by
// no other live run of this state directory. The kernel accounts some
// quotas per uid across every namespace (POSIX message queue bytes,
// RLIMIT_NPROC, inotify instances), so a shared uid would let one run
// exhaust them for all the others.
const (
	RunUIDBase  = 1 << 30
	RunUIDCount = 1 << 16
)

// uidRange is the ids base up to base+count-1.
type uidRange struct{ base, count uint32 }

// WithRunUIDRange makes runs take their own uid (and gid, the same
// number) from base up to base+count-1 instead of RunUIDBase and up: a
// rootless runtime can only use the ids its user namespace maps (the
// user's subordinate ids). Every id of the range must be mapped for both
// users and groups, and none may be 0 or DefaultUID.
func WithRunUIDRange(base, count uint32) Opt {
	return func(o *options) error {
		end := uint64(base) + uint64(count)
		if base == 0 || count == 0 || end > 1<<32-1 || (base <= DefaultUID && end > DefaultUID) {
			return fmt.Errorf("run uid range %d+%d must be non-empty and hold neither 0 nor %d: %w", base, count, DefaultUID, errdefs.ErrInvalidArgument)
		}
		o.runUIDs = uidRange{base: base, count: count}
		return nil
	}
}

// uidLease is a uid held for one run: an flock on a file of the state
// directory, released by release or by the death of the process.
type uidLease struct {
	uid  uint32
	file *os.File
}

// leaseUID picks a free uid at random from r and locks it.
func leaseUID(stateDir string, r uidRange) (*uidLease, error) {
	dir := filepath.Join(stateDir, "uids")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("run uid leases: %w", err)
	}
	var b [4]byte
	for range 64 {
		if _, err := rand.Read(b[:]); err != nil {
			return nil, err
		}
		uid := r.base + binary.LittleEndian.Uint32(b[:])%r.count
		f, err := os.OpenFile(filepath.Join(dir, strconv.FormatUint(uint64(uid), 10)), os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			return nil, fmt.Errorf("run uid lease: %w", err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			continue // another live run holds it
		}
		if !samePath(f) {
			f.Close()
			continue // its holder released it (and removed the file) meanwhile
		}
		return &uidLease{uid: uid, file: f}, nil
	}
	return nil, fmt.Errorf("no free run uid after 64 tries: %w", errdefs.ErrUnavailable)
}

// release gives the uid back and removes the lease file, while still
// holding the lock: whoever locks the removed file next sees it is no
// longer at its path and tries again.
func (l *uidLease) release() {
	if l != nil && l.file != nil {
		_ = os.Remove(l.file.Name())
		l.file.Close()
		l.file = nil
	}
}

// samePath reports whether f is still the file at its path.
func samePath(f *os.File) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Stat(f.Name())
	return err == nil && os.SameFile(a, b)
}

// sweepUIDLeases removes the lease files that no live process holds (their
// holder died without releasing them).
func sweepUIDLeases(stateDir string) {
	dir := filepath.Join(stateDir, "uids")
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		f, err := os.OpenFile(filepath.Join(dir, e.Name()), os.O_RDWR, 0)
		if err != nil {
			continue
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil && samePath(f) {
			(&uidLease{file: f}).release()
			continue
		}
		f.Close()
	}
}
