package runtime

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMarkSplitterAcrossWrites(t *testing.T) {
	t.Parallel()
	mark := callMarker("0123abcd")
	stream := append(append([]byte("before\x00skill"), mark...), []byte("after")...)
	// Every way of cutting the stream into two or three writes splits it
	// at the marker.
	for i := 0; i <= len(stream); i++ {
		for j := i; j <= len(stream); j++ {
			m := newMarkSplitter()
			m.Write([]byte("warm "))
			buf, found := m.begin(1<<20, nil, mark)
			m.Write(stream[:i])
			m.Write(stream[i:j])
			m.Write(stream[j:])
			select {
			case <-found:
			default:
				t.Fatalf("marker not found, cut at %d and %d", i, j)
			}
			m.end()
			require.Equal(t, "warm before\x00skill", string(buf.Bytes()), "cut at %d and %d", i, j)
			next, _ := m.begin(1<<20, nil, callMarker("ffff"))
			require.Equal(t, "after", string(next.Bytes()), "cut at %d and %d", i, j)
		}
	}
}

func TestMarkSplitterScansPastTheLimit(t *testing.T) {
	t.Parallel()
	mark := callMarker("beef")
	m := newMarkSplitter()
	buf, found := m.begin(4, nil, mark)
	m.Write(bytes.Repeat([]byte("y"), 100))
	m.Write(mark[:3])
	m.Write(mark[3:])
	<-found
	assert.Equal(t, "yyyy", string(buf.Bytes()))
	assert.True(t, buf.Truncated())
	// Without its marker a call's output keeps what was held back.
	buf, found = m.begin(100, nil, callMarker("cafe"))
	m.Write(mark[:5])
	m.end()
	select {
	case <-found:
		t.Fatal("found a marker that did not come")
	default:
	}
	assert.Equal(t, string(mark[:5]), string(buf.Bytes()))
}

func TestReportLines(t *testing.T) {
	t.Parallel()
	var lines []reportLine
	w := &lineWriter{limit: 8, emit: func(l reportLine) { lines = append(lines, l) }}
	for _, p := range []string{"\n", "{\"a\"", ":1}\n{\"b\":2", "}\n", "0123456789\nlast"} {
		w.Write([]byte(p))
	}
	w.end()
	require.Len(t, lines, 4)
	assert.Equal(t, `{"a":1}`, string(lines[0].data))
	assert.Equal(t, `{"b":2}`, string(lines[1].data))
	assert.ErrorIs(t, lines[2].err, errResultTooLarge)
	assert.Equal(t, "last", string(lines[3].data))
}
