package llb

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/buildkit/client/llb"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/skillbuild/skillbuild/spec"
	"github.com/stretchr/testify/require"
)

// graphVersionsFile pins, per spec.GraphVersion, the digest of the graph
// and image config this package generates for a fixed skill and lock.
var graphVersionsFile = filepath.Join("testdata", "graph-versions.txt")

// TestGraphVersionPinned fails when what a build produces from the same
// skill changes without a new spec.GraphVersion: an unchanged skill is
// answered from an image built by the graph of the same version, so an
// image of an older graph must not pass for a new build. Bump
// spec.GraphVersion, then run with SKILLBUILD_UPDATE_GOLDEN=1 to record
// the new version's digest.
func TestGraphVersionPinned(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := testSkill(t)
	base := Base("docker.io/library/python@sha256:" + strings.Repeat("1", 64))
	venv := Venv(base, s)
	d := digest.Canonical.Digester()
	add := func(st llb.State) {
		def, err := st.Marshal(ctx, llb.LinuxAmd64)
		require.NoError(t, err)
		for _, dt := range def.Def {
			d.Hash().Write(dt)
		}
	}
	add(Resolve(base, s, ResolveOpts{}))
	for _, o := range []InstallOpts{{}, {SingleLayer: true}, {MaxLayers: 1}} {
		inst, err := Install(venv, s, testLock, o)
		require.NoError(t, err)
		add(inst.Root)
		for _, l := range inst.Layers {
			add(l)
		}
		add(ListLayers(venv, inst, s))
	}
	baseCfg, err := json.Marshal(ocispec.Image{Config: ocispec.ImageConfig{Env: []string{"PATH=/usr/bin:/bin"}}})
	require.NoError(t, err)
	cfg, err := ImageConfig(baseCfg, s, testLock, "docker.io/library/python@sha256:abc", "sha256:abc", nil)
	require.NoError(t, err)
	d.Hash().Write(cfg)
	got := d.Digest().String()

	pinned := map[string]string{}
	f, err := os.Open(graphVersionsFile)
	require.NoError(t, err)
	sc := bufio.NewScanner(f)
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if v, dg, ok := strings.Cut(sc.Text(), " "); ok {
			pinned[v] = dg
		}
	}
	f.Close()
	if os.Getenv("SKILLBUILD_UPDATE_GOLDEN") != "" && pinned[spec.GraphVersion] == "" {
		lines = append(lines, spec.GraphVersion+" "+got)
		require.NoError(t, os.WriteFile(graphVersionsFile, []byte(strings.Join(lines, "\n")+"\n"), 0o644))
		return
	}
	require.NotEmpty(t, pinned[spec.GraphVersion], "graph version %s has no pinned digest in %s: run with SKILLBUILD_UPDATE_GOLDEN=1", spec.GraphVersion, graphVersionsFile)
	require.Equal(t, pinned[spec.GraphVersion], got,
		"the graph or image config generated for a skill changed: bump spec.GraphVersion (images of version %s must not be reused for it) and run with SKILLBUILD_UPDATE_GOLDEN=1", spec.GraphVersion)
}
