package runtime

import (
	"bytes"
	"io"
	"sync"
)

// carryLimit bounds what a session's container writes between two calls
// (after a call's marker, before the next call): it goes to the next
// call's output.
const carryLimit = 1 << 20

// markSplitter splits one output stream of a session's container between
// its calls. The runner ends each call's output with the call's marker
// (callMarker); the splitter scans every byte for it, also past the
// output limit, and holds back a tail that may be the start of a marker
// split across writes. Bytes before the marker are the call's (kept in
// its capped buffer, forwarded to its writer), bytes after it the next
// call's.
type markSplitter struct {
	mu    sync.Mutex
	mark  []byte
	cur   *cappedBuffer // the call's output; nil between calls
	carry *cappedBuffer // what came outside a call, for the next one
	held  []byte        // a tail of the stream that may start mark
	found chan struct{} // closed when the call's marker came
}

func newMarkSplitter() *markSplitter {
	return &markSplitter{carry: newCappedBuffer(carryLimit, nil)}
}

// begin starts a call whose output ends with mark: up to limit bytes of it
// are kept and forwarded to tee (if set). The returned channel is closed
// when the marker came.
func (m *markSplitter) begin(limit int64, tee io.Writer, mark []byte) (*cappedBuffer, <-chan struct{}) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cur = newCappedBuffer(limit, tee)
	m.cur.Write(m.carry.Bytes())
	m.carry, m.mark, m.held = nil, mark, nil
	m.found = make(chan struct{})
	return m.cur, m.found
}

// end ends the call (its marker came, or it will not): what is held goes
// to it, and what comes from now on to the next call.
func (m *markSplitter) end() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cur != nil {
		m.cur.Write(m.held)
		m.cur, m.held = nil, nil
	}
	if m.carry == nil {
		m.carry = newCappedBuffer(carryLimit, nil)
	}
}

func (m *markSplitter) Write(p []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cur == nil {
		return m.carry.Write(p)
	}
	data := append(m.held, p...)
	m.held = nil
	if i := bytes.Index(data, m.mark); i >= 0 {
		m.cur.Write(data[:i])
		m.cur = nil
		close(m.found)
		m.carry = newCappedBuffer(carryLimit, nil)
		m.carry.Write(data[i+len(m.mark):])
		return len(p), nil
	}
	k := markPrefixAtEnd(data, m.mark)
	m.cur.Write(data[:len(data)-k])
	m.held = append([]byte(nil), data[len(data)-k:]...)
	return len(p), nil
}

// markPrefixAtEnd is the length of the longest end of data that is a
// proper start of mark.
func markPrefixAtEnd(data, mark []byte) int {
	for k := min(len(mark)-1, len(data)); k > 0; k-- {
		if bytes.HasSuffix(data, mark[:k]) {
			return k
		}
	}
	return 0
}

// callMarker is what the runner writes to the end of a call's stdout and
// stderr (runner.py's _session).
func callMarker(mark string) []byte { return []byte("\x00skillbuild-end-" + mark + "\x00") }
