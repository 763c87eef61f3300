// Package peakrss starts a command under the hack/peakrss program and
// reads back that command's own peak RSS and CPU time, which wait4 cannot
// give a Go parent (see hack/peakrss). The test suite and the benchmark
// use it; the product does not.
package peakrss

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"time"
)

// Usage is what peakrss reports of the program it ran.
type Usage struct {
	MaxRSSKiB int64
	CPU       time.Duration // user + system, with the program's waited-for children
}

// Wrap makes cmd, not yet started, run its program under the peakrss
// program bin. Call read once cmd is done (or failed to start): it
// returns the program's usage and closes the report pipe.
func Wrap(cmd *exec.Cmd, bin string) (read func() (Usage, error), err error) {
	if cmd.Err != nil {
		return nil, cmd.Err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.ExtraFiles = append(cmd.ExtraFiles, w)
	fd := 2 + len(cmd.ExtraFiles)
	cmd.Args = append([]string{bin, strconv.Itoa(fd), cmd.Path}, cmd.Args[1:]...)
	cmd.Path = bin
	return func() (Usage, error) {
		w.Close()
		defer r.Close()
		report, err := io.ReadAll(r)
		if err != nil {
			return Usage{}, err
		}
		var u Usage
		var user, sys int64
		if _, err := fmt.Sscan(string(report), &u.MaxRSSKiB, &user, &sys); err != nil {
			return Usage{}, fmt.Errorf("peakrss report %q: %w", report, err)
		}
		u.CPU = time.Duration(user + sys)
		return u, nil
	}, nil
}
