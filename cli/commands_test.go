package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"github.com/skillbuild/skillbuild/skill/api"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestInterspersedFlags(t *testing.T) {
	t.Parallel()
	app := newApp(rootlessMode{}.defaults())
	cases := []struct {
		in, want string
	}{
		// Flags after the arguments move ahead of them, values included.
		{"skillbuild install weather requests --json", "skillbuild install --json -- weather requests"},
		{"skillbuild install weather -r req.txt requests --progress plain", "skillbuild install -r req.txt --progress plain -- weather requests"},
		{"skillbuild --root /r install weather --json", "skillbuild --root /r install --json -- weather"},
		{"skillbuild run weather --timeout=5s --json", "skillbuild run --timeout=5s --json -- weather"},
		// Global flags after the command move before it.
		{"skillbuild ls --json --address /a.sock", "skillbuild --address /a.sock ls --json"},
		{"skillbuild --root /r run w --namespace=x --json", "skillbuild --root /r --namespace=x run --json -- w"},
		// Subcommands.
		{"skillbuild db import osv.zip --json", "skillbuild db import --json -- osv.zip"},
		// "--" ends the flags: what follows is an argument.
		{"skillbuild install weather -- --json", "skillbuild install -- weather --json"},
		// Unknown flags stay flags, so the parser names them.
		{"skillbuild install weather --jsn", "skillbuild install --jsn -- weather"},
		// Nothing to do.
		{"skillbuild ls", "skillbuild ls"},
		{"skillbuild", "skillbuild"},
		{"skillbuild nosuchcommand a --json", "skillbuild nosuchcommand a --json"},
	}
	for _, tc := range cases {
		assert.Equal(t, tc.want, strings.Join(interspersed(app, strings.Fields(tc.in)), " "), tc.in)
	}
}

// TestFlagAfterArgumentsIsAFlag runs the whole CLI: flags after the
// requirement are read as flags (the document is JSON, the stale test
// database is accepted), not as requirements.
func TestFlagAfterArgumentsIsAFlag(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	var stdout, stderr bytes.Buffer
	code := Main(context.Background(), []string{"skillbuild", "--root", root, "db", "import", "../scan/testdata/PyPI-pypa-20241010.zip"}, strings.NewReader(""), &stdout, &stderr)
	require.Equal(t, api.ExitOK, code, "stderr: %s", stderr.String())
	stdout.Reset()
	stderr.Reset()
	code = Main(context.Background(), []string{"skillbuild", "--root", root, "scan", "--no-resolve", "pip==23.0.1", "--json", "--allow-stale-db"}, strings.NewReader(""), &stdout, &stderr)
	assert.Equal(t, api.ExitVulnerable, code, "stderr: %s", stderr.String())
	var doc struct {
		Safe  bool `json:"safe"`
		Vulns []struct {
			ID string `json:"id"`
		} `json:"vulnerabilities"`
	}
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &doc), "one JSON document on stdout, got %q (stderr %q)", stdout.String(), stderr.String())
	assert.False(t, doc.Safe)
	assert.NotEmpty(t, doc.Vulns)
}
