package runtime

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// runnerReport is the document runner.py reports.
type runnerReport struct {
	ExitCode  int             `json:"exit_code"`
	Error     *CodeError      `json:"error"`
	ResultSet bool            `json:"result_set"`
	Result    json.RawMessage `json:"result"`
	// Files and FilesOmitted are what the runner found under OutDir:
	// claims of the code's process, checked by checkOutFiles.
	Files        []reportFile `json:"files"`
	FilesOmitted int          `json:"files_omitted"`
}

var errResultTooLarge = errors.New("result too large")

// reportReader is the host's end of a run's report channel: a unix
// socket in the sandbox directory that the run's init connects to before
// it starts anything (see pid1.Args). The reader accepts that one
// connection, then removes the socket's path and closes the listener, so
// that no process of the run can reach the host after the init; the
// init waits for the path to go before it starts the runner. What comes
// on the connection is the runner's, as the init relays it: its ready
// line, then its report (a session's: one line per call). It is read
// while the run goes on, so a large report never blocks the init, and
// each line is delivered as soon as it is complete (next).
type reportReader struct {
	ln    *net.UnixListener
	limit int64 // of one line
	done  chan error
	// ready is closed when the runner's first byte came: the newline that
	// says its modules are imported and it waits for its job.
	ready chan struct{}

	mu   sync.Mutex
	conn *net.UnixConn // the init's, once accepted
	// lines are the complete lines not taken yet (empty ones dropped),
	// held bytes their size together; a line over limit is kept as
	// errResultTooLarge. more is poked at each new line.
	lines []reportLine
	held  int64
	more  chan struct{}
}

// reportLine is one line of the report channel, or why it is not there.
type reportLine struct {
	data []byte
	err  error
}

// openReport listens on a unix socket at path for the run's init. The
// socket is writable by everyone (connecting needs it): only the
// container reaches it, through the sandbox directory. limit bounds one
// report line.
func openReport(path string, limit int64) (*reportReader, error) {
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("report socket: %w", err)
	}
	ln.SetUnlinkOnClose(false) // removed at the accept, or with the state directory
	if err := os.Chmod(path, 0o622); err != nil {
		ln.Close()
		return nil, fmt.Errorf("report socket: %w", err)
	}
	rr := &reportReader{ln: ln, limit: limit, done: make(chan error, 1), ready: make(chan struct{}), more: make(chan struct{}, 1)}
	go func() { rr.done <- rr.read(path) }()
	return rr, nil
}

// read accepts the init's connection, removes path, and reads the
// connection to its end.
func (rr *reportReader) read(path string) error {
	c, err := rr.ln.AcceptUnix()
	if err != nil {
		return nil // closed by finish: the init never connected, nothing was reported
	}
	// The init waits for this before it starts the runner; a path left
	// in place would let the run's processes reach the host.
	rmErr := os.Remove(path)
	rr.ln.Close()
	rr.mu.Lock()
	rr.conn = c
	rr.mu.Unlock()
	if rmErr != nil {
		return fmt.Errorf("remove the report socket's path: %w", rmErr)
	}
	lw := &lineWriter{limit: rr.limit, emit: rr.add}
	_, err = io.Copy(&firstWrite{w: lw, c: rr.ready}, c)
	lw.end()
	return err
}

// add keeps a line for next. What the host has not taken is bounded: past
// twice the line limit a line is dropped and an error kept in its place
// (a runner sends a line per call and waits for the next call).
func (rr *reportReader) add(l reportLine) {
	rr.mu.Lock()
	if rr.held+int64(len(l.data)) > 2*rr.limit {
		l = reportLine{err: errResultTooLarge}
	}
	rr.held += int64(len(l.data))
	rr.lines = append(rr.lines, l)
	rr.mu.Unlock()
	select {
	case rr.more <- struct{}{}:
	default:
	}
}

// take returns the first line not taken, if there is one.
func (rr *reportReader) take() (reportLine, bool) {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	if len(rr.lines) == 0 {
		return reportLine{}, false
	}
	l := rr.lines[0]
	rr.lines = rr.lines[1:]
	rr.held -= int64(len(l.data))
	return l, true
}

// lineWriter splits what is written to it into lines (empty ones
// dropped) and emits each complete one; the last, unterminated, at end.
// A line longer than limit is emitted as errResultTooLarge.
type lineWriter struct {
	limit int64
	emit  func(reportLine)
	cur   []byte
	over  bool
}

func (w *lineWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		chunk := p
		if i >= 0 {
			chunk = p[:i]
		}
		if !w.over {
			if int64(len(w.cur)+len(chunk)) > w.limit {
				w.over, w.cur = true, nil
			} else {
				w.cur = append(w.cur, chunk...)
			}
		}
		if i < 0 {
			break
		}
		w.flush()
		p = p[i+1:]
	}
	return n, nil
}

func (w *lineWriter) flush() {
	switch {
	case w.over:
		w.emit(reportLine{err: errResultTooLarge})
	case len(bytes.TrimSpace(w.cur)) > 0:
		w.emit(reportLine{data: w.cur})
	}
	w.cur, w.over = nil, false
}

// end emits the last line, if it has no newline.
func (w *lineWriter) end() { w.flush() }

// reportDrainTimeout bounds the wait for the report's end after the run's
// processes are gone (the init's end is closed by then).
const reportDrainTimeout = 5 * time.Second

// finish ends the reading, once every process of the run is gone, and
// decodes the report. It returns (nil, nil) when the runner reported
// nothing.
func (rr *reportReader) finish() (*runnerReport, error) {
	rr.ln.Close() // an init that never connected never will
	select {
	case err := <-rr.done:
		if err != nil {
			return nil, err
		}
	case <-time.After(reportDrainTimeout):
		rr.close()
		return nil, errors.New("the report did not end")
	}
	rr.close()
	var last reportLine
	for {
		l, ok := rr.take()
		if !ok {
			break
		}
		last = l
	}
	if last.err != nil {
		return nil, last.err
	}
	return decodeReport(last.data)
}

// decodeReport decodes a report line; (nil, nil) when there is none.
func decodeReport(data []byte) (*runnerReport, error) {
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

// close closes the listener and the init's connection; safe after
// finish. A warm sandbox's init sees its host's end close (see
// pid1.WarmArgs).
func (rr *reportReader) close() {
	rr.ln.Close()
	rr.mu.Lock()
	if rr.conn != nil {
		rr.conn.Close()
	}
	rr.mu.Unlock()
}
