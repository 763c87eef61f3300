package integration

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestZZNoBuildLeftovers runs after the build tests (this file sorts last,
// and parallel tests only start after it):
// no staging image, no build container and no build cgroup survives them.
func TestZZNoBuildLeftovers(t *testing.T) {
	ctx := context.Background()
	c := suiteClient(t)
	imgs, err := c.ImageService().List(ctx)
	require.NoError(t, err)
	for _, img := range imgs {
		assert.False(t, strings.Contains(img.Name, "skillbuild-staging"), "staging image left: %s", img.Name)
	}
	// BuildKit's containerd worker runs steps as containers in the same
	// namespace; all of them are gone once the builds returned.
	cs, err := c.Containers(ctx)
	require.NoError(t, err)
	for _, ct := range cs {
		labels, _ := ct.Labels(ctx)
		assert.NotEmpty(t, labels["org.skillbuild.run"], "container %s left behind", ct.ID())
	}
	// The build cgroup of the suite's root (see build/cgroup.go).
	name := "skillbuild-" + digest.FromString(env.root).Encoded()[:12]
	entries, _ := filepath.Glob("/sys/fs/cgroup/*/" + name)
	more, _ := filepath.Glob("/sys/fs/cgroup/" + name)
	assert.Empty(t, append(entries, more...), "build cgroups left behind")
	// Nothing stays mounted under the state root.
	b, err := os.ReadFile("/proc/self/mountinfo")
	require.NoError(t, err)
	assert.NotContains(t, string(b), env.root, "mounts left under the state root")
}
