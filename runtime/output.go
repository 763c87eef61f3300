package runtime

import (
	"io"
	"sync"
)

// cappedBuffer keeps the first limit bytes written to it and counts the
// rest, which it drops. It never fails a write, so the producer (the
// container's output pipe) is always drained and never blocks on a full
// buffer. Kept bytes are also copied to tee, if set; errors from tee are
// remembered and stop the copying, never the capture.
type cappedBuffer struct {
	mu      sync.Mutex
	limit   int64
	buf     []byte
	dropped int64
	tee     io.Writer
	teeErr  error
}

func newCappedBuffer(limit int64, tee io.Writer) *cappedBuffer {
	return &cappedBuffer{limit: limit, tee: tee}
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	keep := p
	if room := b.limit - int64(len(b.buf)); int64(len(keep)) > room {
		if room < 0 {
			room = 0
		}
		keep = keep[:room]
	}
	b.dropped += int64(len(p) - len(keep))
	b.buf = append(b.buf, keep...)
	if b.tee != nil && b.teeErr == nil && len(keep) > 0 {
		_, b.teeErr = b.tee.Write(keep)
	}
	return len(p), nil
}

// Bytes returns the kept bytes.
func (b *cappedBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]byte(nil), b.buf...)
}

// Truncated reports whether any byte was dropped.
func (b *cappedBuffer) Truncated() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.dropped > 0
}
