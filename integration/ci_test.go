package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skillbuild/skillbuild/internal/pyindex"
	"github.com/skillbuild/skillbuild/skill/api"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// ciRecipe is the script of docs/ci.md, as a reader would copy it.
func ciRecipe(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "docs", "ci.md"))
	require.NoError(t, err)
	doc := string(b)
	i := strings.Index(doc, "<!-- ci-recipe")
	require.GreaterOrEqual(t, i, 0, "docs/ci.md marks its recipe")
	start := strings.Index(doc[i:], "```sh\n")
	require.GreaterOrEqual(t, start, 0)
	body := doc[i+start+len("```sh\n"):]
	end := strings.Index(body, "```")
	require.GreaterOrEqual(t, end, 0)
	return body[:end]
}

// TestCIRecipe runs the CI job of docs/ci.md against a repository of two
// skills, one of them vulnerable: the safe one is pushed, the vulnerable
// one refused with exit 3 and not pushed, and both results are kept.
func TestCIRecipe(t *testing.T) {
	registries(t)
	srv, _ := index(t, pyindex.Wheel{Name: "ci-harmless", Version: "1.0"},
		pyindex.Wheel{Name: "ci-uses-pip", Version: "1.0", Requires: []string{"pip==23.0.1"}})
	repo := t.TempDir()
	for id, req := range map[string]string{"ci-good": "ci-harmless", "ci-bad": "ci-uses-pip"} {
		dir := filepath.Join(repo, "skills", id)
		require.NoError(t, os.MkdirAll(dir, 0o755))
		yaml := fmt.Sprintf("id: %s\nversion: 2\nbase: %s\nindex:\n  url: %s\nrequirements:\n  - %s\n", id, env.base, srv.URL(), req)
		require.NoError(t, os.WriteFile(filepath.Join(dir, "skill.yaml"), []byte(yaml), 0o644))
	}
	bin := filepath.Join(t.TempDir(), "bin")
	require.NoError(t, os.MkdirAll(bin, 0o755))
	require.NoError(t, os.Symlink(env.bin, filepath.Join(bin, "skillbuild")))

	// runJob runs the recipe as a runner with containerd at address,
	// namespace ns and state root root would.
	runJob := func(address, ns, root string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "bash", "-c", ciRecipe(t))
		cmd.Dir = repo
		cmd.Env = []string{"PATH=" + bin + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + env.dir, "LANG=C.UTF-8",
			"REGISTRY=" + regs.tls.Host + "/ci",
			"CONTAINERD_ADDRESS=" + address, "SKILLBUILD_NAMESPACE=" + ns, "SKILLBUILD_ROOT=" + root,
			"SKILLBUILD_REGISTRY_CA=" + regs.ca.CertFile}
		out, err := cmd.CombinedOutput()
		t.Logf("ci recipe output:\n%s", out)
		var ee *exec.ExitError
		require.ErrorAs(t, err, &ee)
		assert.Equal(t, 3, ee.ExitCode(), "a vulnerable skill fails the job with exit 3")
		assert.Contains(t, string(out), "REFUSED: ci-bad")
		assert.Contains(t, string(out), "ok: ci-good")
		return string(out)
	}
	first := runJob(env.socket, namespace, env.root)
	// The first job's --cache-from has nothing to read yet: a note, not an
	// error that reads like the build's failure.
	assert.NotRegexp(t, `ERROR.*buildcache`, first)
	assert.Contains(t, first, "none there yet")

	var good, bad api.InstallResult
	b, err := os.ReadFile(filepath.Join(repo, "skillbuild-results", "ci-good.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &good), string(b))
	assert.True(t, good.Success)
	require.NotNil(t, good.Push)
	assert.Equal(t, regs.tls.Host+"/ci/ci-good:v2", good.Push.Ref)
	tag, err := regs.tls.TagDigest("ci/ci-good", "v2")
	require.NoError(t, err)
	assert.Equal(t, good.Push.Digest.String(), tag, "the registry has what the result says")

	b, err = os.ReadFile(filepath.Join(repo, "skillbuild-results", "ci-bad.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &bad), string(b))
	assert.False(t, bad.Success)
	assert.Equal(t, "refused", bad.Scan)
	assert.Nil(t, bad.Push)
	tag, err = regs.tls.TagDigest("ci/ci-bad", "v2")
	require.NoError(t, err)
	assert.Empty(t, tag, "nothing was pushed for the refused skill")
	cacheTag, err := regs.tls.TagDigest("ci/ci-good", "buildcache")
	require.NoError(t, err)
	assert.NotEmpty(t, cacheTag, "the job exported the build cache")

	// The next job on a fresh runner (an empty root, a containerd holding
	// only the base) builds nothing: the registry cache answers every step,
	// and the image pushed is the same.
	freshRunner(t, "ci")
	runJob(regs.host2.Socket, "runner-ci", filepath.Join(env.dir, "runner-ci"))
	var again api.InstallResult
	b, err = os.ReadFile(filepath.Join(repo, "skillbuild-results", "ci-good.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &again), string(b))
	assert.True(t, again.Success)
	assert.Empty(t, again.Steps, "a fresh runner ran no step of the unchanged skill")
	require.NotNil(t, again.Push)
	assert.Equal(t, good.ManifestDigest, again.ManifestDigest, "the same image")
}
