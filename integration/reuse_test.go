package integration

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/skillbuild/skillbuild/internal/pyindex"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// osvExport writes an OSV export holding one record for each
// id → (package, fixed version) and returns its path.
func osvExport(t *testing.T, records map[string][2]string) string {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for id, pf := range records {
		rec := map[string]any{
			"id": id, "modified": "2026-01-02T03:04:05Z", "summary": "test advisory for " + pf[0],
			"affected": []any{map[string]any{
				"package": map[string]string{"ecosystem": "PyPI", "name": pf[0]},
				"ranges":  []any{map[string]any{"type": "ECOSYSTEM", "events": []any{map[string]string{"introduced": "0"}, map[string]string{"fixed": pf[1]}}}},
			}},
		}
		b, err := json.Marshal(rec)
		require.NoError(t, err)
		w, err := zw.Create(id + ".json")
		require.NoError(t, err)
		_, err = w.Write(b)
		require.NoError(t, err)
	}
	require.NoError(t, zw.Close())
	path := filepath.Join(t.TempDir(), "osv.zip")
	require.NoError(t, os.WriteFile(path, buf.Bytes(), 0o644))
	return path
}

// TestInstallUnchangedSkillStartsNoEngine: installing a skill again with
// nothing changed is answered from containerd's image store (same digest,
// "unchanged") without starting BuildKit, even while another process
// holds the build state lock; --refresh resolves again; and a database
// that now flags a pinned package refuses with exit 3 although the image
// exists, leaving the image as it was.
func TestInstallUnchangedSkillStartsNoEngine(t *testing.T) {
	srv, _ := index(t, pyindex.Wheel{Name: "reuse-pkg", Version: "1.0"})
	// Its own state root, to change its database; a short path (BuildKit
	// binds unix sockets under it).
	root := filepath.Join(env.dir, "reuse")
	require.NoError(t, os.MkdirAll(root, 0o700))
	r := sbRoot(t, root, time.Minute, "db", "import", osvExport(t, map[string][2]string{"TEST-OTHER-1": {"unrelated-pkg", "2.0"}}))
	require.Equal(t, 0, r.code, r.stderr)

	args := []string{"install", "--json", "--progress", "plain", "--base", env.base, "--index-url", srv.URL(), "reuse-skill", "reuse-pkg==1.0"}

	r = sbRoot(t, root, 10*time.Minute, args...)
	require.Equal(t, 0, r.code, r.stderr)
	first := parseInstall(t, r)
	assert.False(t, first.Unchanged)
	assert.Equal(t, "full", first.Resolve)

	// Hold the engine's state lock: an engine would wait for it (and the
	// command would not finish in time); the unchanged answer does not.
	lf, err := os.OpenFile(filepath.Join(root, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	require.NoError(t, err)
	require.NoError(t, unix.Flock(int(lf.Fd()), unix.LOCK_EX|unix.LOCK_NB))
	r = sbRoot(t, root, 2*time.Minute, args...)
	require.NoError(t, unix.Flock(int(lf.Fd()), unix.LOCK_UN))
	lf.Close()
	require.Equal(t, 0, r.code, r.stderr)
	again := parseInstall(t, r)
	assert.True(t, again.Success)
	assert.True(t, again.Unchanged, "answered from the image store")
	assert.True(t, again.Cached)
	assert.Empty(t, again.Steps)
	assert.Equal(t, "passed", again.Scan)
	assert.Equal(t, first.Digest, again.Digest)
	assert.Equal(t, first.Packages, again.Packages)
	assert.NotContains(t, r.stderr, "waiting for another skillbuild process")

	r = sbRoot(t, root, 10*time.Minute, append([]string{"install", "--refresh"}, args[1:]...)...)
	require.Equal(t, 0, r.code, r.stderr)
	refreshed := parseInstall(t, r)
	assert.False(t, refreshed.Unchanged, "--refresh builds")
	assert.Equal(t, "full", refreshed.Resolve, "--refresh resolves again")
	assert.Equal(t, first.Digest, refreshed.Digest, "same inputs, same image")

	// A newer database that flags the pinned version refuses the skill.
	r = sbRoot(t, root, time.Minute, "db", "import", osvExport(t, map[string][2]string{"TEST-REUSE-1": {"reuse-pkg", "2.0"}}))
	require.Equal(t, 0, r.code, r.stderr)
	r = sbRoot(t, root, 10*time.Minute, args...)
	assert.Equal(t, 3, r.code, "refused as vulnerable: %s", r.stderr)
	refused := parseInstall(t, r)
	assert.False(t, refused.Success)
	assert.False(t, refused.Unchanged)
	assert.Equal(t, "refused", refused.Scan)
	require.Len(t, refused.Vulnerabilities, 1)
	assert.Equal(t, "TEST-REUSE-1", refused.Vulnerabilities[0].ID)
	img, err := suiteClient(t).ImageService().Get(context.Background(), fullName(t, "atom-skill:reuse-skill-v1"))
	require.NoError(t, err)
	assert.Equal(t, first.Digest, img.Target.Digest.String(), "the refusal left the image as it was")
}
