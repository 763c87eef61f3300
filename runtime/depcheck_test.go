package runtime

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestImportBoundary keeps the architecture honest: runtime knows
// containerd and OCI specs, never the build pipeline or the scanner.
func TestImportBoundary(t *testing.T) {
	t.Parallel()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool on PATH to list dependencies")
	}
	out, err := exec.Command(gobin, "list", "-deps", ".").Output()
	require.NoError(t, err)
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"github.com/skillbuild/skillbuild/llb", "github.com/skillbuild/skillbuild/scan", "github.com/skillbuild/skillbuild/build", "github.com/moby/buildkit"} {
			assert.False(t, dep == banned || strings.HasPrefix(dep, banned+"/"), "runtime depends on %s", dep)
		}
	}
}
