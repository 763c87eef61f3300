package integration

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/skillbuild/skillbuild/internal/pyindex"
	"github.com/skillbuild/skillbuild/internal/regtest"
	"github.com/skillbuild/skillbuild/skill/api"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestArchiveOutputAndLoad hands an image over as files, as pipelines
// pass artifacts: install --output writes an OCI archive and an OCI
// layout that skopeo reads, and `load` brings them into another host's
// containerd, ready to run, with their attestations.
func TestArchiveOutputAndLoad(t *testing.T) {
	registries(t) // for the second containerd
	srv, _ := index(t, pyindex.Wheel{Name: "archived-dep", Version: "1.0"})
	dir := t.TempDir()
	file, layout := filepath.Join(dir, "skill.tar"), filepath.Join(dir, "layout")

	out, r := install(t, srv, "archived", []string{"--output", "oci-archive=" + file}, "archived-dep")
	require.Equal(t, 0, r.code, r.stderr)
	_, r = install(t, srv, "archived", []string{"--output", "oci-layout=" + layout}, "archived-dep")
	require.Equal(t, 0, r.code, r.stderr)
	assert.FileExists(t, filepath.Join(layout, "index.json"))
	assert.FileExists(t, filepath.Join(layout, "oci-layout"))

	// An existing archive is replaced, as every builder does
	// (outputs_test.go has the other cases).
	_, r = install(t, srv, "archived", []string{"--output", "oci-archive=" + file}, "archived-dep")
	require.Equal(t, 0, r.code, r.stderr)

	// skopeo reads both as they are.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, ref := range []string{"oci-archive:" + file, "oci:" + layout} {
		b, err := regtest.Skopeo(ctx, cleanEnv(), "inspect", ref)
		require.NoError(t, err)
		var ins struct{ Labels map[string]string }
		require.NoError(t, json.Unmarshal(b, &ins))
		assert.Equal(t, "archived", ins.Labels["org.skillbuild.skill.id"], ref)
		assert.Equal(t, "passed", ins.Labels["org.skillbuild.scan"], ref)
	}

	for ns, src := range map[string]string{"loaded-archive": file, "loaded-layout": layout} {
		r = sbHost2(t, ns, "load", "--json", src)
		require.Equal(t, 0, r.code, r.stderr)
		got := decodeJSON[api.LoadResult](t, r)
		require.Len(t, got, 1)
		assert.Equal(t, out.Digest, got[0].Digest, ns)
		assert.Contains(t, got[0].Names, "docker.io/library/atom-skill:archived-v1", ns)
		seen := map[string]bool{}
		for _, n := range got[0].Names {
			assert.False(t, seen[n], "%s: %s is listed once (the archive names it twice)", ns, n)
			seen[n] = true
		}

		trustHost2(t, ns)
		r = sbHost2(t, ns, "run", "--json", "-c", "import archived_dep; result = archived_dep.__version__", "archived")
		require.Equal(t, 0, r.code, r.stderr)
		d := decodeRun(t, r.stdout)
		requireClean(t, d)
		assert.Equal(t, `"1.0"`, string(d.Result))

		r = sbHost2(t, ns, "inspect", "--json", "archived")
		require.Equal(t, 0, r.code, r.stderr)
		insp := decodeJSON[api.InspectResult](t, r)
		assert.Equal(t, "passed", verdictOf(t, insp).Result, "the verdict attestation survived the file")
		assert.Contains(t, string(insp.SBOM), "pkg:pypi/archived-dep@1.0")
	}
	left, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range left {
		assert.Contains(t, []string{"skill.tar", "layout"}, e.Name(), "no temporary file is left")
	}
}
