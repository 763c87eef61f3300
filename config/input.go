package config

import (
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/containerd/errdefs"
)

// Size caps of the files skillbuild reads as input. Each is checked before
// the file is read, and the read itself is bounded.
const (
	// MaxInputsSize bounds `run --inputs-file` (a JSON object).
	MaxInputsSize = 64 << 20
	// MaxCodeSize bounds `run --code` (Python source).
	MaxCodeSize = 16 << 20
	// MaxRequirementsSize bounds a skill.yaml or requirements file.
	MaxRequirementsSize = maxFileSize
	// MaxDBSize bounds an OSV export zip given to `db import`.
	MaxDBSize = 1 << 30
)

// OpenInput opens the file at path as an input given by the user: without
// blocking (a FIFO with no writer or a device would hang a plain open), and
// only if it is a regular file of at most max bytes (max <= 0: no bound).
// Every error is errdefs.ErrInvalidArgument and says what is wrong (what
// the file is, its size); one from the system also wraps it (a missing
// file is fs.ErrNotExist too).
func OpenInput(path string, max int64) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, &inputError{msg: err.Error(), err: err}
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, &inputError{msg: err.Error(), err: err}
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, &inputError{msg: fmt.Sprintf("%s is %s, not a regular file", path, fileKind(fi.Mode()))}
	}
	if max > 0 && fi.Size() > max {
		f.Close()
		return nil, &inputError{msg: fmt.Sprintf("%s is %d bytes, more than the %d allowed", path, fi.Size(), max)}
	}
	// Regular files ignore O_NONBLOCK; clear it anyway so readers see an
	// ordinary file.
	if err := syscall.SetNonblock(int(f.Fd()), false); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// ReadInput reads the file at path as OpenInput opens it, at most max
// bytes (a file that grows past max while read is refused too).
func ReadInput(path string, max int64) ([]byte, error) {
	f, err := OpenInput(path, max)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadLimited(path, f, max)
}

// ReadLimited reads r to its end, refusing with errdefs.ErrInvalidArgument
// more than max bytes (a stream like stdin has no size to check first);
// name says what r is in errors.
func ReadLimited(name string, r io.Reader, max int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, &inputError{msg: fmt.Sprintf("read %s: %v", name, err), err: err}
	}
	if int64(len(b)) > max {
		return nil, &inputError{msg: fmt.Sprintf("%s is more than the %d bytes allowed", name, max)}
	}
	return b, nil
}

// inputError is a bad input file: errdefs.ErrInvalidArgument, and the
// underlying error (fs.ErrNotExist...) if any, with a message that is only
// what happened.
type inputError struct {
	msg string
	err error
}

func (e *inputError) Error() string { return e.msg }

func (e *inputError) Unwrap() []error {
	if e.err == nil {
		return []error{errdefs.ErrInvalidArgument}
	}
	return []error{errdefs.ErrInvalidArgument, e.err}
}

func fileKind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&os.ModeNamedPipe != 0:
		return "a FIFO"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m&os.ModeCharDevice != 0:
		return "a character device"
	case m&os.ModeDevice != 0:
		return "a block device"
	default:
		return "not a regular file"
	}
}
