package cli

import (
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The CLI reference is generated from the app; regenerate with
// SKILLBUILD_UPDATE_DOCS=1 go test -run TestCLIDocs ./cli (or make docs).
func TestCLIDocsUpToDate(t *testing.T) {
	md, err := newApp(rootlessMode{}.defaults()).ToMarkdown()
	require.NoError(t, err)
	if os.Getenv("SKILLBUILD_UPDATE_DOCS") != "" {
		require.NoError(t, os.WriteFile("../docs/cli.md", []byte(md), 0o644))
	}
	want, err := os.ReadFile("../docs/cli.md")
	require.NoError(t, err)
	assert.Equal(t, string(want), md, "docs/cli.md is stale: run `make docs`")
}
