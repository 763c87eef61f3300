package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/skillbuild/skillbuild/internal/pyindex"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestServePreloadFromSkillYAML: a skill.yaml's preload list is recorded
// in the image, and serve's warm containers import it before the job
// comes. The module's import sleeps; the run's code checks, before it
// imports anything, that the module is already in sys.modules and that its
// import ran in another moment than the job (the marker the import left).
func TestServePreloadFromSkillYAML(t *testing.T) {
	links := t.TempDir()
	_, err := pyindex.BuildWheel(links, pyindex.Wheel{Name: "slowimport", Version: "1.0",
		Init: "import time\ntime.sleep(0.3)\nIMPORTED_BEFORE_JOB = True\n"})
	require.NoError(t, err)
	dir := t.TempDir()
	yaml := fmt.Sprintf("id: preloaded\nversion: 1\nbase: %s\nrequirements: [slowimport==1.0]\nindex: {find_links: [%s]}\npreload: [slowimport, json]\n", env.base, links)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "skill.yaml"), []byte(yaml), 0o644))
	r := sb(t, "install", "--json", "--no-scan", "--progress", "plain", "-f", filepath.Join(dir, "skill.yaml"))
	out := parseInstall(t, r)
	require.Equal(t, 0, r.code, "stderr: %s\nerror: %s", r.stderr, out.Error)

	s := startServe(t, "--warm-per-skill", "1", "--max-warm", "2")
	code := "import sys\nresult = ['slowimport' in sys.modules, getattr(sys.modules.get('slowimport'), 'IMPORTED_BEFORE_JOB', False)]"
	for range 3 {
		d := s.run(t, map[string]any{"skill_id": "preloaded", "code": code})
		requireClean(t, d)
		assert.JSONEq(t, "[true, true]", string(d.Result), "the skill's preload list was imported before the job")
	}
	assert.Equal(t, "0", s.metric(t, "skillbuild_pool_misses_total"), "every run had a warm container")
	// An image without a list: nothing imported ahead.
	d := s.run(t, map[string]any{"skill_id": "plain", "image": env.base, "code": "import sys\nresult = 'json' in sys.modules"})
	requireClean(t, d)
	s.stop(t)
	assertNoRunLeftovers(t)
}

// soakRuns is the number of runs of TestServeSoak; SKILLBUILD_SOAK_RUNS
// overrides it (the benchmark runs 1,000).
func soakRuns(t *testing.T) int {
	if v := os.Getenv("SKILLBUILD_SOAK_RUNS"); v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(t, err, "SKILLBUILD_SOAK_RUNS")
		return n
	}
	return 200
}

// TestServeSoak: many runs through one server from 16 clients, each
// printing and returning a token of its own: no result is lost or given to
// another run, and after the drain no container, task, snapshot, state
// directory or shim process of a run is left. The server's RSS at start
// and end is logged (not asserted: it is a measurement).
func TestServeSoak(t *testing.T) {
	total := soakRuns(t)
	s := startServe(t, "--warm-per-skill", "2", "--max-warm", "8")
	rssStart := rss(t, s.cmd.Process.Pid)
	var next, lost, mixed atomic.Int64
	var mu sync.Mutex
	var problems []string
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(total) {
					return
				}
				token := fmt.Sprintf("tok-%d-%x", i, i*7919)
				b, _ := json.Marshal(map[string]any{"skill_id": "soak", "image": env.base,
					"code": "print(inputs['t'])\nresult = inputs['t']", "inputs": map[string]string{"t": token}})
				resp, err := s.http.Post("http://skillbuild/v1/run", "application/json", bytes.NewReader(b))
				if err != nil {
					lost.Add(1)
					mu.Lock()
					problems = append(problems, fmt.Sprintf("%s: %v", token, err))
					mu.Unlock()
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				var d runDoc
				if json.Unmarshal(body, &d) != nil || resp.StatusCode != 200 {
					lost.Add(1)
					mu.Lock()
					problems = append(problems, fmt.Sprintf("%s: status %d: %s", token, resp.StatusCode, body))
					mu.Unlock()
					continue
				}
				if d.Stdout != token+"\n" || string(d.Result) != strconv.Quote(token) {
					mixed.Add(1)
					mu.Lock()
					problems = append(problems, fmt.Sprintf("%s got stdout %q result %s", token, d.Stdout, d.Result))
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	rssEnd := rss(t, s.cmd.Process.Pid)
	for i, p := range problems {
		if i == 10 {
			t.Errorf("... and %d more", len(problems)-10)
			break
		}
		t.Error(p)
	}
	assert.Zero(t, lost.Load(), "results lost")
	assert.Zero(t, mixed.Load(), "results mixed up")
	t.Logf("soak: %d runs from 16 clients, %d lost, %d mixed up; server RSS %s at start, %s at the end (measured, not asserted)",
		total, lost.Load(), mixed.Load(), rssStart, rssEnd)
	s.stop(t)
	assertNoRunLeftovers(t)
	assert.Empty(t, runShims(t), "no shim of a run is left")
}

// runShims lists the containerd shim processes serving a run container
// of the suite's containerd.
func runShims(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("ps", "-eo", "pid=,args=").Output()
	require.NoError(t, err)
	var shims []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "containerd-shim") && strings.Contains(line, "sbrun-") && strings.Contains(line, env.socket) {
			shims = append(shims, strings.TrimSpace(line))
		}
	}
	return shims
}
