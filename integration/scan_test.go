package integration

import (
	"strings"
	"testing"
	"time"

	sbllb "github.com/skillbuild/skillbuild/llb"

	"github.com/skillbuild/skillbuild/internal/pyindex"
	"github.com/skillbuild/skillbuild/skill/api"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Debian's pip 23.0.1 wheel is affected by PYSEC-2023-228 (CVE-2023-5752,
// fixed in 23.3) in the PyPA advisory data the suite imports.
const pipAdvisory = "PYSEC-2023-228"

func assertRefused(t *testing.T, out installJSON, r result, id string) {
	t.Helper()
	assert.Equal(t, 3, r.code, "exit code 3: refused as vulnerable")
	assert.False(t, out.Success)
	assert.Equal(t, "vulnerabilities detected", out.Error)
	require.NotEmpty(t, out.Vulnerabilities)
	found := false
	for _, v := range out.Vulnerabilities {
		if v.ID == pipAdvisory && v.Package == "pip" && v.Version == "23.0.1" {
			found = true
		}
	}
	assert.True(t, found, "finding %s for pip 23.0.1 in %+v", pipAdvisory, out.Vulnerabilities)
	for _, s := range out.Steps {
		assert.False(t, strings.HasPrefix(s, sbllb.StepInstall), "nothing may be installed after a refusal, but %q ran", s)
	}
	assert.False(t, imageExists(t, "atom-skill:"+id+"-v1"), "no tag after a refusal")
}

func TestInstallRefusesVulnerableDirectRequirement(t *testing.T) {
	srv, _ := index(t)
	out, r := install(t, srv, "vuln-direct", nil, "pip==23.0.1")
	assertRefused(t, out, r, "vuln-direct")
}

func TestInstallRefusesVulnerableTransitiveRequirement(t *testing.T) {
	srv, _ := index(t, pyindex.Wheel{Name: "uses-pip", Version: "1.0", Requires: []string{"pip==23.0.1"}})
	out, r := install(t, srv, "vuln-transitive", nil, "uses-pip")
	assertRefused(t, out, r, "vuln-transitive")
}

func TestInstallAllowListLetsAFindingThrough(t *testing.T) {
	srv, _ := index(t)
	future := time.Now().AddDate(0, 1, 0).Format(time.DateOnly)
	out, r := install(t, srv, "vuln-allowed", []string{"--allow", pipAdvisory + "@pip:" + future + ":pip is only used at build time"}, "pip==23.0.1")
	require.Equal(t, 0, r.code, r.stderr)
	assert.True(t, out.Success)
	ref := "docker.io/library/" + out.ImageTag
	assert.Equal(t, "passed-with-allowed", imageLabel(t, ref, "org.skillbuild.scan"))
	assert.Contains(t, imageLabel(t, ref, "org.skillbuild.scan.allowed"), pipAdvisory)
	assert.NotEmpty(t, imageLabel(t, ref, "org.skillbuild.scan.db.sha256"))

	past := time.Now().AddDate(0, 0, -2).Format(time.DateOnly)
	out, r = install(t, srv, "vuln-expired", []string{"--allow", pipAdvisory + "@pip:" + past + ":was fine once"}, "pip==23.0.1")
	assert.NotEqual(t, 0, r.code)
	assert.False(t, out.Success)
	assert.Contains(t, out.Error, "expired")
	assert.Contains(t, out.Error, pipAdvisory)
	assert.False(t, imageExists(t, "atom-skill:vuln-expired-v1"))
}

func TestInstallSafeBuildRecordsVerdict(t *testing.T) {
	srv, _ := index(t, pyindex.Wheel{Name: "harmless", Version: "1.0"})
	out, r := install(t, srv, "safe", nil, "harmless")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, "passed", out.Scan)
	ref := "docker.io/library/" + out.ImageTag
	assert.Equal(t, "passed", imageLabel(t, ref, "org.skillbuild.scan"))

	out, r = install(t, srv, "unscanned", []string{"--no-scan"}, "harmless")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, "disabled", out.Scan)
	assert.Contains(t, r.stderr, "scan disabled")
	assert.Equal(t, "disabled", imageLabel(t, "docker.io/library/"+out.ImageTag, "org.skillbuild.scan"))
}

func TestScanResolvesLikeInstall(t *testing.T) {
	srv, _ := index(t, pyindex.Wheel{Name: "uses-pip", Version: "1.0", Requires: []string{"pip==23.0.1"}})
	r := sb(t, "scan", "--json", "--progress", "quiet", "--base", env.base, "--index-url", srv.URL(), "uses-pip")
	assert.Equal(t, 3, r.code, r.stderr)
	v := decodeJSON[api.ScanResult](t, r)
	assert.False(t, v.Safe)
	assert.Len(t, v.Packages, 2, "the transitive pip is scanned too")
	require.NotEmpty(t, v.Findings)
	assert.Equal(t, "pip", v.Findings[0].Package)

	r = sb(t, "scan", "--json", "--no-resolve", "pip==23.3")
	assert.Equal(t, 0, r.code, r.stderr)
}

// TestScanAllowShorthandWhileResolving: `scan --allow ID REQ` accepts the
// documented ID shorthand when it resolves, as it does with --no-resolve.
func TestScanAllowShorthandWhileResolving(t *testing.T) {
	srv, _ := index(t, pyindex.Wheel{Name: "uses-pip", Version: "1.0", Requires: []string{"pip==23.0.1"}})
	r := sb(t, "scan", "--allow", pipAdvisory, "--json", "--progress", "quiet", "--base", env.base, "--index-url", srv.URL(), "uses-pip")
	require.Equal(t, 0, r.code, r.stderr)
	v := decodeJSON[api.ScanResult](t, r)
	assert.True(t, v.Safe)
	require.NotEmpty(t, v.Allowed)
	assert.Equal(t, pipAdvisory, v.Allowed[0].ID)
}
