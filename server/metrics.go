package server

import (
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/skillbuild/skillbuild/skill/api"
)

// Metric is one sample of /metrics besides the server's own counters.
// Samples of one name come together, the first one carrying Help and Type.
type Metric struct {
	Name   string
	Help   string
	Type   string // gauge (the default) or counter
	Labels map[string]string
	Value  float64
}

// runBuckets are the upper bounds, in seconds, of the run latency
// histogram.
var runBuckets = []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// metrics are the server's own counters, written in Prometheus' text
// format (there is no Prometheus client in the module: a few counters and
// one histogram are simple enough by hand).
type metrics struct {
	mu       sync.Mutex
	requests map[[2]string]int64 // endpoint, exit code
	inflight map[string]int64    // endpoint
	builds   map[string]int64    // exit code
	runCount int64
	runSum   float64
	runHist  []int64 // cumulative per runBuckets
}

func newMetrics() *metrics {
	return &metrics{requests: map[[2]string]int64{}, inflight: map[string]int64{}, builds: map[string]int64{}, runHist: make([]int64, len(runBuckets))}
}

func (m *metrics) request(endpoint string, code int) {
	m.mu.Lock()
	m.requests[[2]string{endpoint, strconv.Itoa(code)}]++
	m.mu.Unlock()
}

// begin counts a request of endpoint in flight until the returned func.
func (m *metrics) begin(endpoint string) func() {
	m.mu.Lock()
	m.inflight[endpoint]++
	m.mu.Unlock()
	return func() {
		m.mu.Lock()
		m.inflight[endpoint]--
		m.mu.Unlock()
	}
}

func (m *metrics) build(code int) {
	m.mu.Lock()
	m.builds[strconv.Itoa(code)]++
	m.mu.Unlock()
}

func (m *metrics) run(d time.Duration) {
	s := d.Seconds()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.runCount++
	m.runSum += s
	for i, b := range runBuckets {
		if s <= b {
			m.runHist[i]++
		}
	}
}

// write writes the server's metrics and extra in the text format.
func (m *metrics) write(w io.Writer, extra []Metric) {
	m.mu.Lock()
	defer m.mu.Unlock()
	fmt.Fprintln(w, "# HELP skillbuild_requests_total API requests by endpoint and CLI exit code.")
	fmt.Fprintln(w, "# TYPE skillbuild_requests_total counter")
	keys := slices.SortedFunc(maps.Keys(m.requests), func(a, b [2]string) int { return strings.Compare(a[0]+" "+a[1], b[0]+" "+b[1]) })
	for _, k := range keys {
		fmt.Fprintf(w, "skillbuild_requests_total{endpoint=%q,exit_code=%q} %d\n", k[0], k[1], m.requests[k])
	}
	fmt.Fprintln(w, "# HELP skillbuild_requests_in_flight API requests being answered, by endpoint.")
	fmt.Fprintln(w, "# TYPE skillbuild_requests_in_flight gauge")
	for _, k := range slices.Sorted(maps.Keys(m.inflight)) {
		fmt.Fprintf(w, "skillbuild_requests_in_flight{endpoint=%q} %d\n", k, m.inflight[k])
	}
	fmt.Fprintln(w, "# HELP skillbuild_builds_total Installs by CLI exit code (3: refused, known vulnerabilities).")
	fmt.Fprintln(w, "# TYPE skillbuild_builds_total counter")
	for _, k := range slices.Sorted(maps.Keys(m.builds)) {
		fmt.Fprintf(w, "skillbuild_builds_total{exit_code=%q} %d\n", k, m.builds[k])
	}
	fmt.Fprintln(w, "# HELP skillbuild_build_refusals_total Installs refused for known vulnerabilities.")
	fmt.Fprintln(w, "# TYPE skillbuild_build_refusals_total counter")
	fmt.Fprintf(w, "skillbuild_build_refusals_total %d\n", m.builds["3"])
	fmt.Fprintln(w, "# HELP skillbuild_run_duration_seconds Time to answer a run request, from the decoded request to the result.")
	fmt.Fprintln(w, "# TYPE skillbuild_run_duration_seconds histogram")
	for i, b := range runBuckets {
		fmt.Fprintf(w, "skillbuild_run_duration_seconds_bucket{le=%q} %d\n", strconv.FormatFloat(b, 'g', -1, 64), m.runHist[i])
	}
	fmt.Fprintf(w, "skillbuild_run_duration_seconds_bucket{le=\"+Inf\"} %d\n", m.runCount)
	fmt.Fprintf(w, "skillbuild_run_duration_seconds_sum %g\n", m.runSum)
	fmt.Fprintf(w, "skillbuild_run_duration_seconds_count %d\n", m.runCount)

	seen := map[string]bool{}
	for _, e := range extra {
		if !seen[e.Name] {
			seen[e.Name] = true
			typ := e.Type
			if typ == "" {
				typ = "gauge"
			}
			fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", e.Name, e.Help, e.Name, typ)
		}
		fmt.Fprintf(w, "%s%s %g\n", e.Name, labelString(e.Labels), e.Value)
	}
}

func labelString(l map[string]string) string {
	if len(l) == 0 {
		return ""
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(l)) {
		parts = append(parts, k+`="`+labelEscaper.Replace(l[k])+`"`)
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// labelEscaper escapes a label value as the text format wants it: a
// backslash, a double quote and a line feed are the only escapes (Go's %q
// would also escape other bytes the format takes as they are).
var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

func (s *Server) serveMetrics(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	s.metrics.write(w, append(poolMetrics(s.ops.PoolStats()), sessionMetrics(s.ops)...))
}

// poolMetrics are the warm pool's counters as samples.
func poolMetrics(st api.PoolStats) []Metric {
	ms := []Metric{
		{Name: "skillbuild_pool_warm", Help: "Warm run containers ready, all images.", Value: float64(st.Warm)},
		{Name: "skillbuild_pool_starting", Help: "Warm run containers being started.", Value: float64(st.Starting)},
		{Name: "skillbuild_pool_hits_total", Help: "Runs that got a warm container.", Type: "counter", Value: float64(st.Hits)},
		{Name: "skillbuild_pool_misses_total", Help: "Runs that started their own container.", Type: "counter", Value: float64(st.Misses)},
		{Name: "skillbuild_pool_discarded_total", Help: "Warm containers destroyed unused (idle, image changed or removed, died).", Type: "counter", Value: float64(st.Discarded)},
		{Name: "skillbuild_pool_destroying", Help: "Used or discarded run containers being removed.", Value: float64(st.Destroying)},
		{Name: "skillbuild_pool_waited_total", Help: "Runs that waited for a warm container being started.", Type: "counter", Value: float64(st.Waited)},
		{Name: "skillbuild_pool_start_failures_total", Help: "Background starts of warm containers that failed.", Type: "counter", Value: float64(st.StartFailures)},
	}
	for i, img := range slices.Sorted(maps.Keys(st.WarmByImage)) {
		m := Metric{Name: "skillbuild_pool_warm_by_image", Labels: map[string]string{"image": img}, Value: float64(st.WarmByImage[img])}
		if i == 0 {
			m.Help = "Warm run containers ready, per image."
		}
		ms = append(ms, m)
	}
	// Per image (a skill's image), one family after the other.
	images := slices.Sorted(maps.Keys(st.Images))
	for _, f := range []struct {
		name, help, typ string
		value           func(api.PoolImageStats) float64
	}{
		{"skillbuild_pool_image_ready", "Warm run containers ready, per image.", "gauge", func(i api.PoolImageStats) float64 { return float64(i.Ready) }},
		{"skillbuild_pool_image_starting", "Warm run containers being started, per image.", "gauge", func(i api.PoolImageStats) float64 { return float64(i.Starting) }},
		{"skillbuild_pool_image_target", "Warm run containers an image's recent runs ask for, ready or starting (its depth).", "gauge", func(i api.PoolImageStats) float64 { return float64(i.Target) }},
		{"skillbuild_pool_image_hits_total", "Runs that got a warm container, per image.", "counter", func(i api.PoolImageStats) float64 { return float64(i.Hits) }},
		{"skillbuild_pool_image_misses_total", "Runs that started their own container, per image.", "counter", func(i api.PoolImageStats) float64 { return float64(i.Misses) }},
		{"skillbuild_pool_image_waited_total", "Runs that waited for a warm container being started, per image.", "counter", func(i api.PoolImageStats) float64 { return float64(i.Waited) }},
	} {
		for i, img := range images {
			m := Metric{Name: f.name, Type: f.typ, Labels: map[string]string{"image": img}, Value: f.value(st.Images[img])}
			if i == 0 {
				m.Help = f.help
			}
			ms = append(ms, m)
		}
	}
	return ms
}
