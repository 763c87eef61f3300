package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPct(t *testing.T) {
	t.Parallel()
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	for _, tc := range []struct {
		name string
		in   []time.Duration
		p    float64
		want time.Duration
	}{
		{"empty", nil, 50, 0},
		{"odd median", ms(5, 1, 3), 50, 3 * time.Millisecond},
		{"even median averages the middle two", ms(4, 1, 3, 2), 50, 2500 * time.Microsecond},
		{"p95 of 50 is the 48th", ms(seq(50)...), 95, 48 * time.Millisecond},
		{"p100 is the max", ms(7, 9, 8), 100, 9 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tc.want, pct(tc.in, tc.p))
		})
	}
}

func seq(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i + 1
	}
	return out
}

func TestKind(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"install sbbench-core-001==1.0.0":       "install",
		"[internal] load metadata":              "load",
		"exporting to image":                    "exporting to",
		"resolve requirements":                  "resolve requirements",
		"layer sbbench-core-001==1.0.0":         "layer",
		"":                                      "(unnamed)",
		"check layers for conflicting files":    "check",
		"merge 31 layers":                       "merge",
		"fetch sbbench-core-009==1.0.0 from fl": "fetch",
	} {
		assert.Equal(t, want, kind(in), in)
	}
}

// TestVertexReport feeds a rawjson stream (as progressui writes it: one
// SolveStatus per line, a vertex repeated as it starts and completes) and
// checks the timeline adds up.
func TestVertexReport(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) string { return t0.Add(time.Duration(ms) * time.Millisecond).Format(time.RFC3339Nano) }
	lines := []string{
		fmt.Sprintf(`{"vertexes":[{"digest":"sha256:a","name":"resolve requirements","started":%q}]}`, at(500)),
		fmt.Sprintf(`{"vertexes":[{"digest":"sha256:a","name":"resolve requirements","started":%q,"completed":%q}]}`, at(500), at(1500)),
		fmt.Sprintf(`{"vertexes":[{"digest":"sha256:b","name":"install x==1","started":%q,"completed":%q},`+
			`{"digest":"sha256:c","name":"install y==1","started":%q,"completed":%q,"cached":true}]}`, at(1600), at(2000), at(1700), at(1800)),
		`not json: ignored`,
	}
	s := sample{start: t0, wall: 2500 * time.Millisecond, stderr: []byte(strings.Join(lines, "\n"))}
	out := vertexReport(s)
	require.Contains(t, out, "3 vertices")
	assert.Contains(t, out, "| process start → first vertex (exec, vulnerability database load, lock, BuildKit engine start) | 500 ms |")
	assert.Contains(t, out, "| inside vertices (union of their intervals) | 1.40 s |")
	assert.Contains(t, out, "| gaps between vertices (between solves: reading the report, scan, planning) | 100 ms |")
	assert.Contains(t, out, "| last vertex → exit (export bookkeeping, tag, engine shutdown) | 500 ms |")
	assert.Contains(t, out, "| install | 2 (1) | 500 ms | 400 ms |")

	assert.Equal(t, "no vertex timings in the rawjson stream\n", vertexReport(sample{stderr: []byte("{}")}))
}

func TestDockerfileIsTheSeedsApproach(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "FROM "+baseRef+"\n"+
		"RUN python3 -m venv /opt/venv\n"+
		"COPY requirements.txt /requirements.txt\n"+
		"RUN /opt/venv/bin/pip install --disable-pip-version-check --index-url http://127.0.0.1:1/simple -r /requirements.txt\n",
		dockerfile("http://127.0.0.1:1/simple"))
}

func TestModuleIsDistinctAndSized(t *testing.T) {
	t.Parallel()
	a, b := module(1, 0), module(2, 0)
	assert.NotEqual(t, a, b)
	assert.Equal(t, a, module(1, 0), "deterministic")
	assert.GreaterOrEqual(t, len(a), moduleBytes)
	assert.Less(t, len(a), moduleBytes+200)
}
