package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"syscall"

	"github.com/skillbuild/skillbuild/config"
)

// pipeWatch passes writes on to w and cancels the run, with the error as
// the cause, once w's reader is gone (EPIPE): nobody reads what the run
// would print.
type pipeWatch struct {
	w      io.Writer
	name   string
	cancel context.CancelCauseFunc
}

func (p pipeWatch) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	if errors.Is(err, syscall.EPIPE) {
		p.cancel(fmt.Errorf("%s closed by its reader: %w", p.name, err))
	}
	return n, err
}

// readStdin reads stdin (at most max bytes) unless ctx is done first: a
// stdin nobody writes to must not make Ctrl-C and SIGTERM useless.
func readStdin(ctx context.Context, r io.Reader, max int64) ([]byte, error) {
	type read struct {
		b   []byte
		err error
	}
	done := make(chan read, 1)
	go func() {
		b, err := config.ReadLimited("stdin", r, max)
		done <- read{b, err}
	}()
	select {
	case rd := <-done:
		return rd.b, rd.err
	case <-ctx.Done():
		return nil, fmt.Errorf("reading stdin: %w", context.Cause(ctx))
	}
}

// runGC sets the garbage collector of a `skillbuild run` process: it lives
// for one run and its heap stays small (the output buffers are capped), so
// collecting as it goes costs more CPU (a third of the process's own, with
// the collector's idle workers) than the memory it frees. It collects only
// when the heap nears a bound a little above what the run may buffer (its
// two capped streams and their JSON copies): a run of print(1) never gets
// there, and one that floods its output keeps the process's memory flat
// however much the code prints.
func runGC(outputLimit string) {
	out, err := config.ParseSize(outputLimit)
	if err != nil || out <= 0 {
		out, _ = config.ParseSize(config.DefaultRunOutputLimit)
	}
	debug.SetGCPercent(-1)
	debug.SetMemoryLimit(96<<20 + 4*out)
}
