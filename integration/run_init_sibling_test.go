package integration

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/skillbuild/skillbuild/runtime/pid1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRunInitSibling: a run's PID 1 is the small static skillbuild-init
// next to the binary (nothing else mounted for it); a binary without one
// beside it is its own init, and runs the same.
func TestRunInitSibling(t *testing.T) {
	c := ctdClient(t)
	kill := startSleepingRun(t, "5m", "init-sibling")
	ct := theRunContainer(t, c)
	spec, err := ct.Spec(context.Background())
	require.NoError(t, err)
	var sources []string
	for _, m := range spec.Mounts {
		if filepath.Dir(m.Destination) == filepath.Dir(pid1.Path) || filepath.Dir(m.Destination) == filepath.Join(filepath.Dir(pid1.Path), "lib") {
			sources = append(sources, m.Source+" -> "+m.Destination)
		}
	}
	assert.Equal(t, []string{env.bin + "-init -> " + pid1.Path}, sources, "only the static init, no loader or libraries")
	assert.Equal(t, pid1.Path, spec.Process.Args[0])
	kill()
	r := sb(t, "ls")
	require.Equal(t, 0, r.code, r.stderr)

	// Without a sibling the binary is its own init.
	alone := filepath.Join(t.TempDir(), "skillbuild")
	data, err := os.ReadFile(env.bin)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(alone, data, 0o755))
	cmd := sbCmd("run", "--json", "--image", env.base, "-c", "print(1)", "init-alone")
	cmd.Path, cmd.Args[0] = alone, alone
	out, err := cmd.Output()
	require.NoError(t, err, "%s", out)
	d := decodeRun(t, string(out))
	assert.Equal(t, "1\n", d.Stdout)
	assertNoRunLeftovers(t)
}
