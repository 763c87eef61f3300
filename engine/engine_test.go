package engine

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestFirstCloseOnlyStartsTheGCClock: a new root's first close writes the
// stamp without sizing the cache (the engine here has no worker: pruning
// would panic); a stamp younger than a day leaves the cache alone.
func TestFirstCloseOnlyStartsTheGCClock(t *testing.T) {
	t.Parallel()
	e := &Engine{opts: options{root: t.TempDir()}}
	require.NoError(t, e.dailyGC())
	_, err := os.Stat(filepath.Join(e.opts.root, "gc.stamp"))
	require.NoError(t, err)
	require.NoError(t, e.dailyGC())
}
