package integration

import (
	"sort"
	"strings"
	"testing"

	"github.com/skillbuild/skillbuild/integration/pyindex"
	sbllb "github.com/skillbuild/skillbuild/llb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func packageNames(out installJSON) []string {
	var names []string
	for _, p := range out.Packages {
		names = append(names, p.Name+"=="+p.Version)
	}
	sort.Strings(names)
	return names
}

// TestResolveOverThePreviousImage: adding a requirement to a skill
// resolves in the previous image's venv: pip looks up only the new
// requirement (not the ones its installed distributions satisfy), only
// the new distribution is installed, and the lock is the one a
// resolution from scratch gives. Removing a requirement, or --refresh,
// resolves from scratch.
func TestResolveOverThePreviousImage(t *testing.T) {
	srv, _ := index(t,
		pyindex.Wheel{Name: "grow-a", Version: "1.0", Requires: []string{"grow-b"}},
		pyindex.Wheel{Name: "grow-b", Version: "2.0"},
		pyindex.Wheel{Name: "grow-c", Version: "3.0", Requires: []string{"grow-d"}},
		pyindex.Wheel{Name: "grow-d", Version: "4.0"})
	first, r := install(t, srv, "grow", nil, "grow-a==1.0")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, []string{"grow-a==1.0", "grow-b==2.0"}, packageNames(first))

	srv.ResetRequests()
	grown, r := install(t, srv, "grow", nil, "grow-a==1.0", "grow-c")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, []string{"grow-a==1.0", "grow-b==2.0", "grow-c==3.0", "grow-d==4.0"}, packageNames(grown))
	for _, req := range srv.Requests() {
		assert.NotContains(t, req, "grow-a", "an installed requirement is not looked up again")
		assert.NotContains(t, req, "grow-b", "an installed requirement is not looked up again")
	}
	assert.Contains(t, strings.Join(srv.Requests(), "\n"), "/simple/grow-c/")
	var installs []string
	for _, s := range grown.Steps {
		if strings.HasPrefix(s, sbllb.StepInstall) {
			installs = append(installs, s)
		}
	}
	sort.Strings(installs)
	assert.Equal(t, []string{sbllb.StepInstall + "grow-c==3.0", sbllb.StepInstall + "grow-d==4.0"}, installs)
	got, err := runIn(t, "docker.io/library/"+grown.ImageTag, "python3", "-c", "import grow_a, grow_b, grow_c, grow_d; print('ok')")
	require.NoError(t, err)
	assert.Equal(t, "ok\n", got)

	// The same lock as a resolution from scratch.
	fresh, r := install(t, srv, "grow-fresh", nil, "grow-a==1.0", "grow-c")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, packageNames(fresh), packageNames(grown))
	assert.Equal(t, imageLabel(t, "docker.io/library/"+fresh.ImageTag, "org.skillbuild.lock.digest"),
		imageLabel(t, "docker.io/library/"+grown.ImageTag, "org.skillbuild.lock.digest"))

	// A requirement removed: what it pulled in is gone too.
	srv.ResetRequests()
	shrunk, r := install(t, srv, "grow", nil, "grow-c")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, []string{"grow-c==3.0", "grow-d==4.0"}, packageNames(shrunk))
	assert.Contains(t, strings.Join(srv.Requests(), "\n"), "/simple/grow-c/", "resolved from scratch")
}
