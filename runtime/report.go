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
}

var errResultTooLarge = errors.New("result too large")

// reportReader is the host's end of a run's report channel: a unix
// socket in the sandbox directory that the run's init connects to before
// it starts anything (see pid1.Args). The reader accepts that one
// connection, then removes the socket's path and closes the listener, so
// that no process of the run can reach the host after the init; the
// init waits for the path to go before it starts the runner. What comes
// on the connection is the runner's, as the init relays it: its ready
// line, then its report. It is read while the run goes on, so a large
// report never blocks the init.
type reportReader struct {
	ln   *net.UnixListener
	buf  *cappedBuffer
	done chan error
	// ready is closed when the runner's first byte came: the newline that
	// says its modules are imported and it waits for its job.
	ready chan struct{}

	mu   sync.Mutex
	conn *net.UnixConn // the init's, once accepted
}

// openReport listens on a unix socket at path for the run's init. The
// socket is writable by everyone (connecting needs it): only the
// container reaches it, through the sandbox directory.
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
	rr := &reportReader{ln: ln, buf: newCappedBuffer(limit, nil), done: make(chan error, 1), ready: make(chan struct{})}
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
	_, err = io.Copy(&firstWrite{w: rr.buf, c: rr.ready}, c)
	return err
}

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
