package runtime

import (
	"context"
	"io"
	"sync"
)

// cappedBuffer keeps the first limit bytes written to it and counts the
// rest, which it drops. It never fails or blocks a write, so the producer
// (the container's output pipe) is always drained: the output is collected
// here first. Kept bytes are then copied to tee, if set, by a goroutine of
// its own, so a slow or stuck reader of tee never holds up the run or its
// teardown; an error from tee stops the copying, never the capture.
type cappedBuffer struct {
	mu      sync.Mutex
	limit   int64
	buf     []byte
	dropped int64

	tee    io.Writer
	sent   int           // bytes of buf given to tee
	ended  bool          // no more writes: the forwarder stops once it caught up
	wake   chan struct{} // wakes the forwarder
	done   chan struct{} // closed when the forwarder stopped
	teeErr error

	// divert, once set, takes every later write in place of the buffer
	// (a session's output goes through a markSplitter).
	divert io.Writer
}

func newCappedBuffer(limit int64, tee io.Writer) *cappedBuffer {
	b := &cappedBuffer{limit: limit, tee: tee, wake: make(chan struct{}, 1), done: make(chan struct{})}
	if tee == nil {
		close(b.done)
	} else {
		go b.forward()
	}
	return b
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	if b.divert != nil {
		w := b.divert
		b.mu.Unlock()
		return w.Write(p)
	}
	keep := p
	if room := b.limit - int64(len(b.buf)); int64(len(keep)) > room {
		if room < 0 {
			room = 0
		}
		keep = keep[:room]
	}
	b.dropped += int64(len(p) - len(keep))
	b.buf = append(b.buf, keep...)
	b.mu.Unlock()
	if len(keep) > 0 {
		b.poke()
	}
	return len(p), nil
}

func (b *cappedBuffer) poke() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// forward copies kept bytes to tee as they come. Kept bytes are never
// changed once appended, so a chunk is written without holding the lock.
func (b *cappedBuffer) forward() {
	defer close(b.done)
	for {
		b.mu.Lock()
		chunk, ended := b.buf[b.sent:], b.ended
		b.mu.Unlock()
		if len(chunk) == 0 {
			if ended {
				return
			}
			<-b.wake
			continue
		}
		_, err := b.tee.Write(chunk)
		b.mu.Lock()
		b.sent += len(chunk)
		b.teeErr = err
		b.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// end says no more bytes come: the forwarder stops once tee has all of
// them.
func (b *cappedBuffer) end() {
	b.mu.Lock()
	b.ended = true
	b.mu.Unlock()
	b.poke()
}

// flush ends the buffer and waits until tee has every kept byte, tee
// failed, or ctx is done; it returns tee's error, if any, or ctx's.
func (b *cappedBuffer) flush(ctx context.Context) error {
	b.end()
	select {
	case <-b.done:
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.teeErr
	case <-ctx.Done():
		return ctx.Err()
	}
}

// divertTo writes the kept bytes to w and makes w take every later
// write, in order.
func (b *cappedBuffer) divertTo(w io.Writer) {
	b.mu.Lock()
	defer b.mu.Unlock()
	w.Write(b.buf) //nolint:errcheck // a markSplitter never fails
	b.divert = w
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
