package llb

import (
	"context"
	"strings"
	"testing"

	"github.com/moby/buildkit/solver/pb"
	digest "github.com/opencontainers/go-digest"
	"github.com/skillbuild/skillbuild/config"
	"github.com/skillbuild/skillbuild/lock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// layerDigests maps each distribution layer of the skill's install graph
// ("layer NAME==VERSION") to the digest of its diff op: BuildKit's cache
// key, and so what decides whether two skills share the layer.
func layerDigests(t *testing.T, s config.Skill, l lock.Lock) map[string]digest.Digest {
	t.Helper()
	in, err := Install(Venv(Base(s.Base), s), s, l, InstallOpts{})
	require.NoError(t, err)
	def, err := in.Root.Marshal(context.Background())
	require.NoError(t, err)
	out := map[string]digest.Digest{}
	for _, dt := range def.Def {
		var op pb.Op
		require.NoError(t, op.UnmarshalVT(dt))
		if _, ok := op.Op.(*pb.Op_Diff); !ok {
			continue
		}
		d := digest.FromBytes(dt)
		name := def.Metadata[d].Description["llb.customname"]
		require.True(t, strings.HasPrefix(name, "layer "), "diff op %q", name)
		out[strings.TrimPrefix(name, "layer ")] = d
	}
	return out
}

func dist(name, version string) lock.Dist {
	file := name + "-" + version + "-py3-none-any.whl"
	return lock.Dist{Name: name, Version: version, Filename: file, URL: "http://127.0.0.1:9/files/" + file,
		SHA256: digest.FromString(name + version).Encoded()}
}

// TestLayerDependsOnlyOnItsDistribution is the sharing claim proven
// without a daemon: a distribution's layer is the same whatever skill it
// is in, whatever else that skill installs, and whatever limits it builds
// with. It does change with the distribution's own file and the base.
func TestLayerDependsOnlyOnItsDistribution(t *testing.T) {
	t.Parallel()
	shared := dist("shared", "1.0")
	a := testSkill(t)
	la := lock.Lock{dist("alpha", "1.0"), shared, dist("zeta", "3.1")}

	b := testSkill(t)
	b.ID, b.Version = "another-skill", "7"
	b.Requirements = []config.Requirement{{Raw: "shared", Name: "shared"}, {Raw: "beta>2", Name: "beta", Specifier: ">2"}}
	b.Build = config.BuildLimits{MemoryBytes: 2 << 30, CPUs: 0.25, Pids: 7}
	lb := lock.Lock{dist("beta", "2.5"), shared}

	da, db := layerDigests(t, a, la), layerDigests(t, b, lb)
	require.Contains(t, da, "shared==1.0")
	assert.Equal(t, da["shared==1.0"], db["shared==1.0"], "the same layer in two skills with other ids, neighbours and limits")
	assert.Len(t, da, 3, "one layer per distribution")

	// Its own file makes a different layer...
	other := shared
	other.SHA256 = digest.FromString("rebuilt").Encoded()
	dc := layerDigests(t, a, lock.Lock{dist("alpha", "1.0"), other})
	assert.NotEqual(t, da["shared==1.0"], dc["shared==1.0"], "another file of the same version is another layer")
	// ...and so does another base.
	c := testSkill(t)
	c.Base = "docker.io/library/python:3.12-slim"
	assert.NotEqual(t, da["shared==1.0"], layerDigests(t, c, la)["shared==1.0"], "another base is another layer")
}
