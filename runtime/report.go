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
// report never blocks the runner on a full pipe.
type reportReader struct {
	r, keep *os.File
	buf     *cappedBuffer
	done    chan error
	// ready is closed when the runner wrote its first byte: the newline
	// that says its modules are imported and it waits for its job.
	ready chan struct{}
}

// openReport opens the FIFO at path for reading, plus a write end of its
// own, so that the reader sees end-of-file only after finish (not before
// the runner opened its end).
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
	go func() {
		_, err := io.Copy(&firstWrite{w: rr.buf, c: rr.ready}, r)
		rr.done <- err
	}()
	return rr, nil
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
