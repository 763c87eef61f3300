package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// TestBurstMarkdown: the burst rows give each binary's p50, p90 and ratio
// to ctr run --rm, what was ready and how deep the pool got, and the
// verdict on the target from the first row.
func TestBurstMarkdown(t *testing.T) {
	t.Parallel()
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	rep := &burstReport{maxWarm: 16, load: "1.00", ctr: ms(200, 200, 200)}
	rep.rows = []*burstRow{
		{name: "new", lat: ms(10, 20, 30, 40, 500), ready: []int{12}, depth: []int{9}, started: []int{21}, cpu: ms(150), wall: ms(900),
			again: ms(5, 6, 7), readyAgain: []int{16}},
		{name: "old", lat: ms(60, 70, 80), ready: []int{2}, depth: []int{-1}, started: []int{25}, cpu: ms(160), wall: ms(1500)},
	}
	text := rep.markdown()
	assert.Contains(t, text, "| new | 30 ms | 500 ms | 0.15× | 12 | 9 | 900 ms | 21 | 150 ms |")
	assert.Contains(t, text, "| old | 70 ms | 80 ms | 0.35× | 2 | n/a | 1.50 s | 25 | 160 ms |")
	assert.Contains(t, text, "| burst print(1) p50 | ≤ 0.2× ctr run --rm | 0.15× | met |")
	assert.Contains(t, text, "at least 11 of the 21 runs")
	assert.Contains(t, text, "| new, second burst once the pool is quiet | 6 ms | 7 ms | 0.03× | 16 |")

	rep.rows = rep.rows[1:]
	assert.Contains(t, rep.markdown(), "| 0.35× | **missed** |")
}
