package engine

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skillbuild/skillbuild/layers"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestFirstCloseOnlyStartsTheGCClock: a new root's first close writes the
// stamp and collects nothing; a stamp younger than a day leaves the stamp
// and the caches alone. (The engine here has no worker: a collection
// would not get past the build cache, so what is observed is the stamp's
// time and a layer list past its age, which a collection removes.)
func TestFirstCloseOnlyStartsTheGCClock(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	e := &Engine{opts: options{root: root}}
	stamp := filepath.Join(root, "gc.stamp")
	lists := filepath.Join(root, layers.ListDir)
	require.NoError(t, os.MkdirAll(lists, 0o700))
	stale := filepath.Join(lists, "sha256-stale")
	require.NoError(t, os.WriteFile(stale, nil, 0o600))
	old := time.Now().Add(-2 * layers.ListMaxAge)
	require.NoError(t, os.Chtimes(stale, old, old))

	require.NoError(t, e.dailyGC())
	b, err := os.ReadFile(stamp)
	require.NoError(t, err, "the first close starts the clock")
	written, err := time.Parse(time.RFC3339, strings.TrimSpace(string(b)))
	require.NoError(t, err, "the stamp says when: %q", b)
	assert.WithinDuration(t, time.Now(), written, time.Hour)
	assert.FileExists(t, stale, "the first close collects nothing")

	// A stamp an hour old: not due; the stamp keeps its time.
	hourAgo := time.Now().Add(-time.Hour).Truncate(time.Second)
	require.NoError(t, os.Chtimes(stamp, hourAgo, hourAgo))
	require.NoError(t, e.dailyGC())
	st, err := os.Stat(stamp)
	require.NoError(t, err)
	assert.Equal(t, hourAgo, st.ModTime().Truncate(time.Second), "a stamp younger than a day is not rewritten")
	assert.FileExists(t, stale, "nothing is collected before the day is over")
}
