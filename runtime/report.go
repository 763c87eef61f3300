package runtime

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"time"
)

// runnerReport is the document runner.py writes to the report FIFO.
type runnerReport struct {
	ExitCode  int             `json:"exit_code"`
	Error     *CodeError      `json:"error"`
	ResultSet bool            `json:"result_set"`
	Result    json.RawMessage `json:"result"`
}

var errResultTooLarge = errors.New("result too large")

// reportReader reads the report FIFO while the run goes on, so a large
// report never blocks the init on a full pipe. The FIFO's first byte is
// the init's (pid1.ReportHeld: it holds the write end); the reader then
// removes the FIFO's path, so that no process of the run can open it, and
// what follows is the runner's, as the init relays it: its ready line,
// then its report (see pid1.Args).
type reportReader struct {
	r, keep *os.File
	buf     *cappedBuffer
	done    chan error
	// ready is closed when the runner's first byte came: the newline that
	// says its modules are imported and it waits for its job.
	ready chan struct{}
}

// openReport opens the FIFO at path for reading, plus a write end of its
// own, so that the reader sees end-of-file only after finish (not before
// the init opened its end).
func openReport(path string, limit int64) (*reportReader, error) {
	r, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("open report fifo: %w", err)
	}
	keep, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("open report fifo: %w", err)
	}
	rr := &reportReader{r: r, keep: keep, buf: newCappedBuffer(limit, nil), done: make(chan error, 1), ready: make(chan struct{})}
	go func() { rr.done <- rr.read(path) }()
	return rr, nil
}

// read reads the FIFO to its end: the init's byte, upon which it removes
// path, then the runner's.
func (rr *reportReader) read(path string) error {
	held := make([]byte, 1)
	if _, err := io.ReadFull(rr.r, held); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // the init never held it: nothing was reported
		}
		return err
	}
	// The init holds the FIFO and waits for this before it starts the
	// runner; a path left in place would let the run's processes open it.
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("remove the report fifo's path: %w", err)
	}
	_, err := io.Copy(&firstWrite{w: rr.buf, c: rr.ready}, rr.r)
	return err
}

// reportDrainTimeout bounds the wait for the report's end after the run's
// processes are gone (their write ends are closed by then).
const reportDrainTimeout = 5 * time.Second

// finish ends the reading, once every process of the run is gone, and
// decodes the report. It returns (nil, nil) when the runner reported
// nothing.
func (rr *reportReader) finish() (*runnerReport, error) {
	rr.keep.Close()
	select {
	case err := <-rr.done:
		if err != nil {
			return nil, err
		}
	case <-time.After(reportDrainTimeout):
		rr.r.Close()
		return nil, errors.New("the report did not end")
	}
	rr.r.Close()
	if rr.buf.Truncated() {
		return nil, errResultTooLarge
	}
	data := bytes.TrimSpace(rr.buf.Bytes()) // the runner's ready line
	if len(data) == 0 {
		return nil, nil
	}
	var rep runnerReport
	if err := json.Unmarshal(data, &rep); err != nil {
		return nil, fmt.Errorf("decode report: %w", err)
	}
	return &rep, nil
}

// firstWrite closes c at its first write of a byte to w.
type firstWrite struct {
	w    io.Writer
	c    chan struct{}
	once sync.Once
}

func (f *firstWrite) Write(p []byte) (int, error) {
	if len(p) > 0 {
		f.once.Do(func() { close(f.c) })
	}
	return f.w.Write(p)
}

// close releases the FIFO ends; safe after finish.
func (rr *reportReader) close() {
	rr.keep.Close()
	rr.r.Close()
}
