package api

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/skillbuild/skillbuild/config"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// skillYAML sets every value a request has a field for, none at its
// default.
const skillYAML = `id: weather
version: 3.1
repo: registry.example/skills
base: localhost/py:3.11
requirements_file: reqs.txt
index:
  url: https://pypi.example/simple
  extra_urls: [https://extra.example/simple]
  allow_sdist: true
build: {memory: 1536m, cpus: 1.5, pids: 300, timeout: 90s}
run: {memory: 3g, cpus: 0.25, pids: 17, timeout: 1m30s, tmpfs_size: 100000, output_limit: 2k, runtime: gvisor}
policy:
  no_scan: false
  min_severity: high
  allow_stale_db: true
  allow:
    - {id: PYSEC-2023-1, package: pip, reason: "not used: at run time", expires: 2031-01-31}
preload: [numpy, pandas.core]
`

// loadSkillYAML loads skill.yaml (and its requirements file) as the
// command line does.
func loadSkillYAML(t *testing.T) config.Skill {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "skill.yaml"), []byte(skillYAML), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "reqs.txt"), []byte("# pinned\nrequests>=2.31 ; python_version >= \"3.8\"\nattrs[tests]==23.1\n"), 0o644))
	s, err := config.Load(config.Input{Dir: dir, File: "skill.yaml", Set: map[string]bool{}})
	require.NoError(t, err)
	return s
}

// TestWireCarriesTheSkill: what the server loads from a wired request is
// the skill the command line loaded from its files, field for field
// (requirements lose only where they were written).
func TestWireCarriesTheSkill(t *testing.T) {
	t.Parallel()
	local := loadSkillYAML(t)

	ireq := InstallRequest{Refresh: true, Local: InstallLocal{Outputs: []string{"oci-archive=x.tar"}}}.Wire(local)
	assert.Equal(t, InstallLocal{}, ireq.Local, "nothing local travels")
	assert.True(t, ireq.Refresh)
	remote, err := config.Load(ireq.Input())
	require.NoError(t, err)
	for i := range local.Requirements {
		local.Requirements[i].Source, local.Requirements[i].Line = "", 0
		remote.Requirements[i].Source, remote.Requirements[i].Line = "", 0
	}
	// The database's ages have no field: the server's defaults apply.
	local.Policy.WarnAge, local.Policy.MaxAge = remote.Policy.WarnAge, remote.Policy.MaxAge
	// Run limits do not travel with an install.
	local.Run = remote.Run
	assert.Equal(t, local, remote)

	rreq := RunRequest{Code: "print(1)", User: "1000", Image: "localhost/x:1"}.Wire(loadSkillYAML(t))
	assert.Equal(t, "print(1)", rreq.Code)
	assert.Equal(t, "1000", rreq.User)
	assert.Equal(t, "localhost/x:1", rreq.Image)
	fromRun, err := config.Load(rreq.Input())
	require.NoError(t, err)
	assert.Equal(t, loadSkillYAML(t).Run, fromRun.Run)
	assert.Equal(t, "3g", rreq.Memory)
	assert.Equal(t, "gvisor", rreq.Runtime)
	assert.Equal(t, "100000", rreq.TmpfsSize, "a size that is no whole unit stays bytes")

	sreq := ScanRequest{NoResolve: false, MinSeverity: "low"}.Wire(loadSkillYAML(t))
	assert.Equal(t, []string{`requests>=2.31 ; python_version >= "3.8"`, "attrs[tests]==23.1"}, sreq.Requirements)
	assert.Equal(t, "low", sreq.MinSeverity, "a scan's policy is its own, not the skill's")
	assert.Equal(t, "https://pypi.example/simple", sreq.IndexURL)
}

func TestSizeString(t *testing.T) {
	t.Parallel()
	for n, want := range map[int64]string{1: "1", 1024: "1k", 1536 << 20: "1536m", 4 << 30: "4g", 1<<20 + 1: "1048577"} {
		assert.Equal(t, want, sizeString(n))
		back, err := config.ParseSize(want)
		require.NoError(t, err)
		assert.Equal(t, n, back)
	}
}
