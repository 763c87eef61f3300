package llb

import (
	"strings"
	"testing"

	"github.com/moby/buildkit/solver/pb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestResolveOverAnEarlierImage: resolving over an earlier image of the
// skill runs pip in that image, on its venv's interpreter, counting the
// distributions installed there (no --ignore-installed), with the same
// isolation as a resolution from scratch.
func TestResolveOverAnEarlierImage(t *testing.T) {
	t.Parallel()
	s := testSkill(t)
	const prev = "docker.io/library/atom-skill:weather-v1@sha256:" + "2222222222222222222222222222222222222222222222222222222222222222"
	over := Previous(prev)
	g := marshal(t, Resolve(Base(s.Base), s, ResolveOpts{Over: &over}))
	require.Len(t, g.execs, 1)
	e := g.execs[0]
	args := strings.Join(e.Meta.Args, " ")
	assert.Contains(t, args, "--python "+VenvDir+"/bin/python", "pip sees the venv's distributions")
	assert.NotContains(t, args, "--ignore-installed")
	assert.Contains(t, args, "--dry-run")
	assert.Contains(t, args, "--report "+reportDir+ReportFile)
	assert.Equal(t, pb.NetMode_NONE, e.Network)
	var images []string
	for _, src := range g.sources {
		if strings.HasPrefix(src.Identifier, "docker-image://") {
			images = append(images, src.Identifier)
		}
	}
	assert.Equal(t, []string{"docker-image://" + prev}, images, "the step's root is the earlier image, not the base")
}
