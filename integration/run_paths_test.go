package integration

import (
	"encoding/json"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// runSpec is one run as a test case states it, whatever path it takes.
type runSpec struct {
	code string
	// limits are by their API field name (memory, cpus, pids, timeout,
	// tmpfs_size, output_limit); the CLI flag is the name with '-' for
	// '_'.
	limits map[string]string
	user   string
	inputs map[string]any
}

// runPath is a way a run reaches the runtime, `skillbuild run --json` or
// POST /v1/run of a `skillbuild serve`, under one of the runtimes.
type runPath struct {
	name    string
	runtime string // runc or gvisor
	// run runs spec and returns its document; the command or request
	// itself must succeed.
	run func(t *testing.T, spec runSpec) runDoc
	// warm: the path may give a run a container started ahead of time.
	warm bool
}

// cliPath runs through `skillbuild run --json` in the base image under
// runtime: runc by default, gVisor from a skill.yaml that says so (run.runtime).
func cliPath(t *testing.T, runtime string) runPath {
	var file []string
	if runtime != "runc" {
		f := filepath.Join(t.TempDir(), "skill.yaml")
		require.NoError(t, os.WriteFile(f, []byte("id: hostile\nversion: 1\nrun: {runtime: "+runtime+"}\n"), 0o600))
		file = []string{"-f", f}
	}
	return runPath{name: "cli", runtime: runtime, run: func(t *testing.T, spec runSpec) runDoc {
		t.Helper()
		flags := slices.Clone(file)
		for _, k := range slices.Sorted(maps.Keys(spec.limits)) {
			flags = append(flags, "--"+strings.ReplaceAll(k, "_", "-"), spec.limits[k])
		}
		if spec.user != "" {
			flags = append(flags, "--user", spec.user)
		}
		if spec.inputs != nil {
			raw, err := json.Marshal(spec.inputs)
			require.NoError(t, err)
			f := filepath.Join(t.TempDir(), "inputs.json")
			require.NoError(t, os.WriteFile(f, raw, 0o600))
			flags = append(flags, "--inputs-file", f)
		}
		return runCode(t, spec.code, flags...)
	}}
}

// servePath runs through POST /v1/run of s in the base image under
// runtime (its request field runtime, when not runc).
func servePath(s *served, runtime string) runPath {
	return runPath{name: "serve", runtime: runtime, warm: true, run: func(t *testing.T, spec runSpec) runDoc {
		t.Helper()
		req := map[string]any{"skill_id": "hostile", "image": env.base, "code": spec.code}
		for k, v := range spec.limits {
			req[k] = v
		}
		if spec.user != "" {
			req["user"] = spec.user
		}
		if spec.inputs != nil {
			req["inputs"] = spec.inputs
		}
		if runtime != "runc" {
			req["runtime"] = runtime
		}
		return s.run(t, req)
	}}
}

// health is the server's /v1/health document.
func (s *served) health(t *testing.T) map[string]any {
	t.Helper()
	var h map[string]any
	_, _, b := s.call(t, http.MethodGet, "/v1/health", nil)
	require.NoError(t, json.Unmarshal(b, &h), "%s", b)
	return h
}

// hits is the server's count of runs that got a warm container.
func (s *served) hits(t *testing.T) int {
	t.Helper()
	n, err := strconv.Atoi(s.metric(t, "skillbuild_pool_hits_total"))
	require.NoError(t, err)
	return n
}

// runWarm runs spec through s twice: as it comes (cold, or in a warm
// container of an earlier run's limits), then, once every container the
// pool was starting is up, in the warm container started for this one,
// which the pool's hit count must show. It returns both documents.
func (s *served) runWarm(t *testing.T, p runPath, spec runSpec) [2]runDoc {
	t.Helper()
	var docs [2]runDoc
	docs[0] = p.run(t, spec)
	require.Eventually(t, func() bool { return s.health(t)["starting"] == float64(0) }, 2*time.Minute, 20*time.Millisecond, "the pool's starts ended")
	hits := s.hits(t)
	docs[1] = p.run(t, spec)
	require.Equal(t, hits+1, s.hits(t), "the second run got a warm container")
	return docs
}
