package config

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// updateGolden regenerates testdata/*/want.json when set:
//
//	SKILLBUILD_UPDATE_GOLDEN=1 go test ./config -run TestLoadGolden
const updateGoldenEnv = "SKILLBUILD_UPDATE_GOLDEN"

// TestLoadGolden checks precedence end to end: explicit flags over
// skill.yaml over CLI defaults over package defaults.
func TestLoadGolden(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   Input
	}{
		{name: "defaults", in: Input{ID: "weather", Version: "3"}},
		{name: "file", in: Input{File: "skill.yaml"}},
		{name: "flags-over-file", in: Input{
			File: "skill.yaml",
			// Explicit flags win over the file, even when equal to a default.
			ID: "weather-cli", Memory: "256m", IndexURL: "https://cli.example/simple",
			FindLinks:    []string{"cli-wheels"},
			Allow:        []string{"GHSA-aaaa-bbbb-cccc:2030-12-31:cli reason: with colon"},
			Requirements: []string{"flask>=3"},
			MinSeverity:  "critical",
			AllowSdist:   false,
			// Not set explicitly: CLI defaults lose to the file.
			BuildMemory: "1g", CPUs: "0.5", Version: "9",
			Set: map[string]bool{
				FlagID: true, FlagMemory: true, FlagIndexURL: true, FlagFindLinks: true,
				FlagAllow: true, FlagMinSeverity: true, FlagAllowSdist: true,
			},
		}},
		{name: "requirements-file", in: Input{Timeout: "5s", Set: map[string]bool{FlagTimeout: true}, File: "skill.yaml"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir, err := filepath.Abs(filepath.Join("testdata", tt.name))
			require.NoError(t, err)
			tt.in.Dir = dir
			s, err := Load(tt.in)
			require.NoError(t, err)
			got, err := json.MarshalIndent(s, "", "  ")
			require.NoError(t, err)
			got = append([]byte(strings.ReplaceAll(string(got), dir, "$TESTDATA")), '\n')
			golden := filepath.Join(dir, "want.json")
			if os.Getenv(updateGoldenEnv) != "" {
				require.NoError(t, os.WriteFile(golden, got, 0o644))
			}
			want, err := os.ReadFile(golden)
			require.NoError(t, err, "run with %s=1 to create", updateGoldenEnv)
			assert.Equal(t, string(want), string(got), "rerun with %s=1 to update", updateGoldenEnv)
		})
	}
}

func TestLoadCLIDefaultFillsGaps(t *testing.T) {
	t.Parallel()
	// A non-empty value the user did not set beats the package default
	// when skill.yaml is silent.
	s, err := Load(Input{Dir: t.TempDir(), ID: "a", Version: "1", BuildMemory: "3g", Pids: "10"})
	require.NoError(t, err)
	assert.Equal(t, int64(3<<30), s.Build.MemoryBytes)
	assert.Equal(t, int64(10), s.Run.Pids)
	assert.Equal(t, "docker.io/library/atom-skill:a-v1", s.Tag())
	assert.Empty(t, s.Requirements)
}

// TestLoadRuntime: run.runtime follows the precedence of every run
// limit: an explicit --runtime, then skill.yaml, then a CLI default (a
// server's own), then runc.
func TestLoadRuntime(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "skill.yaml"), []byte("id: a\nversion: 1\nrun: {runtime: gvisor}\n"), 0o600))
	for _, tc := range []struct {
		name string
		in   Input
		want string
	}{
		{name: "default", in: Input{ID: "a", Version: "1"}, want: RuntimeRunc},
		{name: "file", in: Input{File: "skill.yaml"}, want: RuntimeGVisor},
		{name: "explicit flag over file", in: Input{File: "skill.yaml", Runtime: "runc", Set: map[string]bool{FlagRuntime: true}}, want: RuntimeRunc},
		{name: "file over CLI default", in: Input{File: "skill.yaml", Runtime: "runc"}, want: RuntimeGVisor},
		{name: "CLI default over package default", in: Input{ID: "a", Version: "1", Runtime: "gvisor"}, want: RuntimeGVisor},
	} {
		tc.in.Dir = dir
		s, err := Load(tc.in)
		require.NoError(t, err, tc.name)
		assert.Equal(t, tc.want, s.Run.Runtime, tc.name)
	}
}

// TestLoadResolver: --resolver beats skill.yaml's resolver; neither
// leaves it empty (the engine's default).
func TestLoadResolver(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "skill.yaml"), []byte("id: a\nversion: 1\nresolver: pip\n"), 0o644))
	s, err := Load(Input{Dir: dir, File: "skill.yaml"})
	require.NoError(t, err)
	assert.Equal(t, ResolverPip, s.Resolver)
	s, err = Load(Input{Dir: dir, File: "skill.yaml", Resolver: ResolverBuiltin, Set: map[string]bool{FlagResolver: true}})
	require.NoError(t, err)
	assert.Equal(t, ResolverBuiltin, s.Resolver)
	s, err = Load(Input{Dir: dir, ID: "a", Version: "1"})
	require.NoError(t, err)
	assert.Empty(t, s.Resolver)
}

func TestLoadErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		yaml  string            // skill.yaml content ("" for no file)
		files map[string]string // extra files in the directory
		in    Input
		want  []string // substrings of the error
	}{
		{name: "missing id", in: Input{Version: "1"}, want: []string{"defaults: id: skill id is required"}},
		{name: "bad id flag", in: Input{ID: "../x", Version: "1", Set: map[string]bool{FlagID: true}}, want: []string{`flags: --id: skill id "../x" is invalid`}},
		{name: "bad version flag", in: Input{ID: "a", Version: "v3"}, want: []string{`flags: --version: skill version "v3" is invalid`}},
		{name: "zero version", in: Input{ID: "a", Version: "0"}, want: []string{`--version: skill version "0" is not positive`}},
		{name: "bad repo", in: Input{ID: "a", Version: "1", Repo: "Atom"}, want: []string{"flags: --repo: image repository \"Atom\" is invalid"}},
		{name: "bad base", in: Input{ID: "a", Version: "1", Base: "python:"}, want: []string{"flags: --base: base image \"python:\" is invalid"}},
		{name: "bad memory flag", in: Input{ID: "a", Version: "1", Memory: "0", Set: map[string]bool{FlagMemory: true}}, want: []string{`flags: --memory: size "0" must be positive`}},
		{name: "bad cpus", in: Input{ID: "a", Version: "1", BuildCPUs: "lots"}, want: []string{`flags: --build-cpus: cpus "lots" is invalid`}},
		{name: "bad timeout", in: Input{ID: "a", Version: "1", Timeout: "30"}, want: []string{`flags: --timeout: duration "30" is invalid`}},
		{name: "bad pids", in: Input{ID: "a", Version: "1", BuildPids: "-1"}, want: []string{`flags: --build-pids: pids "-1"`}},
		{name: "bad severity", in: Input{ID: "a", Version: "1", MinSeverity: "HIGH"}, want: []string{`flags: --min-severity: severity "HIGH" is invalid`}},
		{name: "bad runtime flag", in: Input{ID: "a", Version: "1", Runtime: "runsc", Set: map[string]bool{FlagRuntime: true}}, want: []string{`flags: --runtime: runtime "runsc" is invalid: use one of runc, gvisor`}},
		{name: "bad index", in: Input{ID: "a", Version: "1", IndexURL: "ftp://u:s3cret@x/simple"}, want: []string{"flags: --index-url: index URL", "must be http or https"}},
		{name: "bad extra index", in: Input{ID: "a", Version: "1", ExtraIndexURL: []string{"x"}}, want: []string{"flags: --extra-index-url: index URL \"x\""}},
		{name: "missing find-links", in: Input{ID: "a", Version: "1", FindLinks: []string{"nope"}}, want: []string{`flags: --find-links: find-links directory "nope": no such file or directory`}},
		{name: "find-links file", files: map[string]string{"f": "x"}, in: Input{ID: "a", Version: "1", FindLinks: []string{"f"}}, want: []string{`--find-links: find-links "f" is not a directory`}},
		{name: "bad allow flag", in: Input{ID: "a", Version: "1", Allow: []string{"PYSEC-1:2027-01-31:"}}, want: []string{"flags: --allow: reason: a reason is required"}},
		{name: "malformed allow flag", in: Input{ID: "a", Version: "1", Allow: []string{"PYSEC-1"}}, want: []string{`flags: --allow: allow entry "PYSEC-1" is malformed`}},
		{name: "bad requirement arg", in: Input{ID: "a", Version: "1", Requirements: []string{"-e ."}}, want: []string{"args: argument 1: \"-e .\": pip option -e is not allowed"}},
		{name: "missing -r", in: Input{ID: "a", Version: "1", RequirementFiles: []string{"nope.txt"}}, want: []string{"flags: -r: requirements file:", "nope.txt"}},
		{name: "bad -r line", files: map[string]string{"r.txt": "ok\n--index-url https://x/simple\n"}, in: Input{ID: "a", Version: "1", RequirementFiles: []string{"r.txt"}}, want: []string{"r.txt:2: \"--index-url https://x/simple\": pip option --index-url"}},
		{name: "duplicate across args and -r", files: map[string]string{"r.txt": "ok\nFlask<3\n"}, in: Input{ID: "a", Version: "1", Requirements: []string{"flask"}, RequirementFiles: []string{"r.txt"}}, want: []string{`r.txt:2: "Flask<3": project "flask" is already required at args "flask"`}},
		{name: "missing skill.yaml", in: Input{File: "nope.yaml"}, want: []string{"nope.yaml: --file: ", "no such file"}},
		{name: "empty skill.yaml", yaml: "# nothing\n", want: []string{"skill.yaml: file is empty"}},
		{name: "unknown field", yaml: "id: a\nversion: 1\nnmae: x\n", want: []string{`skill.yaml:3: nmae: unknown field "nmae" in skill`}},
		{name: "unknown nested field", yaml: "id: a\nversion: 1\nrun:\n  memroy: 1g\n", want: []string{`skill.yaml:4: memroy: unknown field "memroy" in run`}},
		{name: "unknown allow field", yaml: "id: a\nversion: 1\npolicy:\n  allow:\n    - {id: X-1, reasn: y, expires: 2027-01-01}\n", want: []string{`skill.yaml:5: reasn: unknown field "reasn" in an allow entry`}},
		{name: "list for scalar", yaml: "id: a\nversion: [1]\n", want: []string{"skill.yaml:2: expected a single value, found a list"}},
		{name: "scalar for mapping", yaml: "id: a\nversion: 1\nrun: fast\n", want: []string{`skill.yaml:3: expected run (a mapping), found the value "fast"`}},
		{name: "top-level list", yaml: "- a\n", want: []string{"skill.yaml:1: expected skill (a mapping), found a list"}},
		{name: "duplicate key", yaml: "id: a\nversion: 1\nid: b\n", want: []string{`skill.yaml:3: mapping key "id" already defined at line 1`}},
		{name: "syntax error", yaml: "id: a\nversion: 1\n  run: x\n", want: []string{"skill.yaml:3: "}},
		{name: "two documents", yaml: "id: a\nversion: 1\n---\nid: b\n", want: []string{"skill.yaml:3: more than one YAML document"}},
		{name: "bad version in file", yaml: "id: a\nversion: v3\n", want: []string{`skill.yaml:2: version: skill version "v3" is invalid`}},
		{name: "float version in file", yaml: "id: a\nversion: 1.\n", want: []string{`skill.yaml:2: version: skill version "1." is invalid`}},
		{name: "bad id in file", yaml: "id: a/b\nversion: 1\n", want: []string{`skill.yaml:1: id: skill id "a/b" is invalid`}},
		{name: "bad size in file", yaml: "id: a\nversion: 1\nrun:\n  memory: 0\n", want: []string{`skill.yaml:4: run.memory: size "0" must be positive`}},
		{name: "bad runtime in file", yaml: "id: a\nversion: 1\nrun:\n  runtime: kata\n", want: []string{`skill.yaml:4: run.runtime: runtime "kata" is invalid: use one of runc, gvisor`}},
		{name: "bad build timeout in file", yaml: "id: a\nversion: 1\nbuild: {timeout: -5m}\n", want: []string{`skill.yaml:3: build.timeout: duration "-5m" must be positive`}},
		{name: "bad bool in file", yaml: "id: a\nversion: 1\nindex: {allow_sdist: maybe}\n", want: []string{`skill.yaml:3: index.allow_sdist: expected true or false, found "maybe"`}},
		{name: "bad requirement in file", yaml: "id: a\nversion: 1\nrequirements:\n  - ok\n  - ./local\n", want: []string{`skill.yaml:5: requirements[1]: "./local": local paths are not allowed`}},
		{name: "multiline requirement in file", yaml: "id: a\nversion: 1\nrequirements:\n  - |\n    ok\n    -i https://x\n", want: []string{"skill.yaml:4: requirements[0]: ", "one requirement per list item"}},
		{name: "duplicate requirement in file", yaml: "id: a\nversion: 1\nrequirements:\n  - ok\n  - OK>=1\n", want: []string{`skill.yaml:5: "OK>=1": project "ok" is already required at skill.yaml:4`}},
		{name: "requirements and requirements_file", yaml: "id: a\nversion: 1\nrequirements: [ok]\nrequirements_file: r.txt\n", want: []string{"skill.yaml:4: requirements_file: set either requirements or requirements_file, not both"}},
		{name: "bad line in requirements_file", yaml: "id: a\nversion: 1\nrequirements_file: r.txt\n", files: map[string]string{"r.txt": "ok\nx @ https://h/x.whl\n"}, want: []string{`r.txt:2: "x @ https://h/x.whl": URLs are not allowed`}},
		{name: "missing requirements_file", yaml: "id: a\nversion: 1\nrequirements_file: r.txt\n", want: []string{"skill.yaml:3: requirements_file: requirements file:"}},
		{name: "bad allow entry in file", yaml: "id: a\nversion: 1\npolicy:\n  allow:\n    - id: PYSEC-1\n      expires: 2027-13-01\n", want: []string{"skill.yaml:5: policy.allow[0].reason: a reason is required", `skill.yaml:5: policy.allow[0].expires: expiry date "2027-13-01" is invalid`}},
		{name: "find_links missing in file", yaml: "id: a\nversion: 1\nindex: {find_links: [nope]}\n", want: []string{`skill.yaml:3: index.find_links[0]: find-links directory "nope"`}},
		{name: "bad extra url in file", yaml: "id: a\nversion: 1\nindex: {extra_urls: [\"https://u:s3cret@/x\"]}\n", want: []string{"skill.yaml:3: index.extra_urls[0]: index URL"}},
		{name: "bad preload in file", yaml: "id: a\nversion: 1\npreload:\n  - numpy\n  - \"os; import x\"\n", want: []string{`skill.yaml:5: preload[1]: "os; import x" is not a Python module name`}},
		{name: "bad resolver flag", in: Input{ID: "a", Version: "1", Resolver: "uv"}, want: []string{`flags: --resolver: resolver "uv" is not one of auto, pip, builtin`}},
		{name: "bad resolver in file", yaml: "id: a\nversion: 1\nresolver: fast\n", want: []string{`skill.yaml:3: resolver: resolver "fast" is not one of auto, pip, builtin`}},
		{name: "bad preload in request", in: Input{ID: "a", Version: "1", Preload: []string{"numpy", "os; import x"}}, want: []string{`preload[1]: "os; import x" is not a Python module name`}},
		{name: "warn age over max age", in: Input{ID: "a", Version: "1", DBWarnAge: "40d"}, want: []string{"policy.db_warn_age: warn age 960h0m0s is longer than max age 720h0m0s"}},
		{name: "all errors at once", yaml: "id: A\nversion: 0\nrun: {memory: x, cpus: 0}\n", want: []string{"skill.yaml:1: id:", "skill.yaml:2: version:", "skill.yaml:3: run.memory:", "skill.yaml:3: run.cpus:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			for name, content := range tt.files {
				require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
			}
			in := tt.in
			in.Dir = dir
			if tt.yaml != "" {
				require.NoError(t, os.WriteFile(filepath.Join(dir, "skill.yaml"), []byte(tt.yaml), 0o644))
				in.File = "skill.yaml"
			}
			s, err := Load(in)
			require.Error(t, err, "loaded %+v", s)
			assert.True(t, errdefs.IsInvalidArgument(err), "not an invalid argument: %v", err)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
			assert.NotContains(t, err.Error(), "s3cret")
			assert.NotContains(t, err.Error(), "config.")
			assert.Equal(t, Skill{}, s)
		})
	}
}

// TestLoadPreloadOfRequest: a request's preload list replaces
// skill.yaml's; without one, skill.yaml's stands.
func TestLoadPreloadOfRequest(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "skill.yaml"), []byte("id: a\nversion: 1\npreload: [numpy]\n"), 0o644))
	s, err := Load(Input{Dir: dir, File: "skill.yaml"})
	require.NoError(t, err)
	assert.Equal(t, []string{"numpy"}, s.Preload)
	s, err = Load(Input{Dir: dir, File: "skill.yaml", Preload: []string{"pandas.core", "json"}})
	require.NoError(t, err)
	assert.Equal(t, []string{"pandas.core", "json"}, s.Preload)
}
