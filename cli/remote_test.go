package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skillbuild/skillbuild/server"
	"github.com/skillbuild/skillbuild/skill"
	"github.com/skillbuild/skillbuild/skill/api"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sbMain runs the command line with args and returns its exit code,
// stdout and stderr.
func sbMain(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := Main(context.Background(), append([]string{"skillbuild"}, args...), strings.NewReader(""), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestToServer(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args, env string
		want      bool
	}{
		{"skillbuild --host unix:///s.sock run -c 1 x", "", true},
		{"skillbuild --host=unix:///s.sock ls", "", true},
		{"skillbuild run -c 1 x --host unix:///s.sock", "", true},
		{"skillbuild ls", "unix:///s.sock", true},
		{"skillbuild ls", "", false},
		{"skillbuild --host unix:///s.sock pull x", "", false},
		{"skillbuild serve", "unix:///s.sock", false},
		{"skillbuild --root /r --host unix:///s.sock inspect x", "", true},
		{"skillbuild session ls", "unix:///s.sock", true},
		{"skillbuild session open x", "", false},
	} {
		assert.Equal(t, tc.want, toServer(strings.Fields(tc.args), tc.env), "%s (env %q)", tc.args, tc.env)
	}
}

// TestRemoteRefusals: what cannot go to a server is refused with exit
// code 2 naming it, before anything is sent; commands without an endpoint
// refuse --host.
func TestRemoteRefusals(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	host := "unix://" + filepath.Join(dir, "none.sock") // nothing listens: a refusal must come first
	links := filepath.Join(dir, "wheels")
	require.NoError(t, os.Mkdir(links, 0o755))
	yaml := filepath.Join(dir, "skill.yaml")
	require.NoError(t, os.WriteFile(yaml, []byte("id: a\nversion: 1\nrequirements: [x]\nindex: {find_links: [wheels]}\n"), 0o644))
	ages := filepath.Join(dir, "ages.yaml")
	require.NoError(t, os.WriteFile(ages, []byte("id: a\nversion: 1\npolicy: {db_max_age: 60d}\n"), 0o644))
	token := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(token, []byte("0123456789abcdef0123\n"), 0o600))
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"install", "a", "x", "--output", "oci-archive=x.tar"}, "--output cannot go to a server"},
		{[]string{"install", "a", "x", "-o", "oci-archive=x.tar"}, "--output cannot go to a server"},
		{[]string{"install", "a", "x", "--load"}, "--load cannot go to a server"},
		{[]string{"install", "a", "x", "--push", "r.example/x:1"}, "--push cannot go to a server"},
		{[]string{"install", "a", "x", "--sign-key", "k"}, "--sign-key cannot go to a server"},
		{[]string{"install", "a", "x", "--find-links", links}, "--find-links cannot go to a server"},
		{[]string{"install", "-f", yaml}, "index.find_links"},
		{[]string{"install", "-f", ages}, "policy.db_warn_age and policy.db_max_age"},
		{[]string{"install", "a", "x", "--builder", "tcp://127.0.0.1:1234"}, "--builder cannot go to a server"},
		{[]string{"run", "-c", "pass", "a", "--pull", "always"}, "--pull cannot go to a server"},
		{[]string{"run", "-c", "pass", "a", "--allow-unscanned"}, "--allow-unscanned cannot go to a server"},
		{[]string{"run", "-c", "pass", "a", "--require-limits=false"}, "--require-limits=false cannot go to a server"},
		{[]string{"run", "-c", "pass", "a", "--allow", "PYSEC-1:2030-01-01:x"}, "--allow cannot go to a server"},
		{[]string{"run", "-c", "pass", "a", "--trusted-key", "k.pub"}, "--trusted-key cannot go to a server"},
		{[]string{"scan", "x", "--db", "osv.zip"}, "--db cannot go to a server"},
		{[]string{"inspect", "a", "--insecure-registry", "r.example"}, "--insecure-registry cannot go to a server"},
		{[]string{"pull", "r.example/x:1"}, "skillbuild pull does not go over the API"},
		{[]string{"db", "status"}, "skillbuild db does not go over the API"},
		{[]string{"serve"}, "serve is the server"},
		{[]string{"session", "run", "abc"}, "no code: give --code FILE or -c CODE"},
		{[]string{"session", "run", "-c", "pass", "abc", "def"}, "session run takes exactly one SESSION_ID"},
		{[]string{"session", "open"}, "session open takes exactly one SKILL_ID"},
		{[]string{"session", "ls", "x"}, "session ls takes no arguments"},
		// Bad input is found here, as the local command finds it.
		{[]string{"run", "-c", "pass", "a", "--memory", "lots"}, `--memory: size "lots" is invalid`},
	} {
		code, _, stderr := sbMain(t, append([]string{"--host", host}, tc.args...)...)
		assert.Equal(t, api.ExitBadInput, code, "%v: %s", tc.args, stderr)
		assert.Contains(t, stderr, tc.want, "%v", tc.args)
	}

	// TCP takes a token.
	code, _, stderr := sbMain(t, "--host", "tcp://127.0.0.1:1", "ls")
	assert.Equal(t, api.ExitBadInput, code)
	assert.Contains(t, stderr, "bearer token")
	// A server that is not there: try again.
	for _, args := range [][]string{{"--host", host, "ls"}, {"--host", "tcp://127.0.0.1:1", "--token-file", token, "rm", "a"}} {
		code, _, stderr = sbMain(t, args...)
		assert.Equal(t, api.ExitTempFail, code, "%v: %s", args, stderr)
		assert.Contains(t, stderr, "cannot reach skillbuild serve at")
	}
	// With --json, a run that never reached the server still prints its
	// document.
	code, stdout, _ := sbMain(t, "--host", host, "run", "--json", "-c", "pass", "a")
	assert.Equal(t, api.ExitTempFail, code)
	var doc api.RunResult
	require.NoError(t, json.Unmarshal([]byte(stdout), &doc), stdout)
	assert.Equal(t, "Unavailable", doc.Error.Type)
	// Sessions live in a server: without one, exit code 2 says so.
	code, _, stderr = sbMain(t, "session", "ls")
	assert.Equal(t, api.ExitBadInput, code, stderr)
	assert.Contains(t, stderr, "sessions live in a server (skillbuild serve): give --host")
	// Version needs no server.
	code, _, _ = sbMain(t, "--host", host, "--version")
	assert.Equal(t, api.ExitOK, code)
}

// TestRemoteScanMatchesLocal: a scan of pins (no containerd needed) gives
// the same document and exit code here and through a real server on the
// same state root, pins given as arguments or in a -r file.
func TestRemoteScanMatchesLocal(t *testing.T) {
	t.Parallel()
	root, dir := t.TempDir(), t.TempDir()
	code, _, stderr := sbMain(t, "--root", root, "db", "import", "../scan/testdata/PyPI-pypa-20241010.zip")
	require.Equal(t, api.ExitOK, code, stderr)
	svc, err := skill.New(skill.WithRoot(root), skill.WithFace(api.FaceAPI))
	require.NoError(t, err)
	srv, err := server.New(svc)
	require.NoError(t, err)
	sock := filepath.Join(dir, "api.sock")
	ln, err := server.Listen("unix://"+sock, "")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		<-served
	})
	pins := filepath.Join(dir, "pins.txt")
	require.NoError(t, os.WriteFile(pins, []byte("# locked\npip==23.0.1\nsetuptools==65.5.0\n"), 0o644))

	for _, args := range [][]string{
		{"scan", "--json", "--no-resolve", "--allow-stale-db", "pip==23.0.1"},
		{"scan", "--json", "--no-resolve", "--allow-stale-db", "-r", pins},
		{"scan", "--json", "--no-resolve", "--allow-stale-db", "--min-severity", "critical", "-r", pins},
		{"scan", "--json", "--no-resolve", "--allow-stale-db", "pip==1.0.bad"},
	} {
		lcode, lout, lerr := sbMain(t, append([]string{"--root", root}, args...)...)
		rcode, rout, rerr := sbMain(t, append([]string{"--host", "unix://" + sock}, args...)...)
		assert.Equal(t, lcode, rcode, "%v: exit codes\nlocal: %s\nremote: %s", args, lerr, rerr)
		var local, remote map[string]any
		if lout == "" {
			assert.Empty(t, rout, "%v", args)
			assert.Equal(t, strings.TrimPrefix(lerr, "skillbuild: "), strings.TrimPrefix(rerr, "skillbuild: "), "%v", args)
			continue
		}
		require.NoError(t, json.Unmarshal([]byte(lout), &local), lout)
		require.NoError(t, json.Unmarshal([]byte(rout), &remote), "%s\n%s", rout, rerr)
		// The database's age counts in seconds between the two scans.
		delete(local["db"].(map[string]any), "age_seconds")
		delete(remote["db"].(map[string]any), "age_seconds")
		assert.Equal(t, local, remote, "%v", args)
	}
}
