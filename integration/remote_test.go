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
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sbEnv runs skillbuild with the suite's daemon and root, and extra
// environment variables.
func sbEnv(t *testing.T, extra []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	full := append([]string{"--address", env.socket, "--namespace", namespace, "--root", env.root}, args...)
	cmd := exec.CommandContext(ctx, env.bin, full...)
	cmd.Env = append(cleanEnv(), extra...)
	return runCmd(t, cmd, "", args)
}

// both runs a command here and with --host against host, and returns what
// each did.
func both(t *testing.T, host string, args ...string) (local, remote result) {
	t.Helper()
	local = sb(t, args...)
	remote = sb(t, append([]string{"--host", host}, args...)...)
	return local, remote
}

// jsonDoc decodes a command's --json document.
func jsonDoc(t *testing.T, r result) any {
	t.Helper()
	var doc any
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &doc), "stdout is one JSON document: %s\nstderr: %s", r.stdout, tailString(r.stderr, 1000))
	return doc
}

// without is doc with the fields at paths removed (dotted; a number
// indexes an array): the fields that legitimately differ between two runs
// of an operation.
func without(doc any, paths ...string) any {
	for _, p := range paths {
		keys := strings.Split(p, ".")
		v := doc
		for _, k := range keys[:len(keys)-1] {
			switch c := v.(type) {
			case map[string]any:
				v = c[k]
			case []any:
				var i int
				fmt.Sscan(k, &i)
				if i < len(c) {
					v = c[i]
				}
			}
		}
		if m, ok := v.(map[string]any); ok {
			delete(m, keys[len(keys)-1])
		}
	}
	return doc
}

// resultLine splits a run's plain stdout into what the code printed and
// the result line, decoded: a server sends the result as compact JSON,
// where the command line here prints the bytes the code's json.dumps
// wrote (the same value).
func resultLine(t *testing.T, stdout string) (string, any) {
	t.Helper()
	lines := strings.SplitAfter(stdout, "\n")
	if len(lines) < 2 {
		return stdout, nil
	}
	last := lines[len(lines)-2]
	var v any
	if json.Unmarshal([]byte(last), &v) != nil {
		return stdout, nil
	}
	return strings.Join(lines[:len(lines)-2], ""), v
}

// TestRemoteMatchesLocal runs the same operations here and with --host
// against a real server on the same state root, and compares exit codes,
// output and documents. What differs legitimately: a run's duration_ms,
// and its uid and gid (every run gets a uid of its own); the advice in the
// message of a missing image (the server's speaks of the API: "install it
// first (POST /v1/install ...)" where the command line's says "run
// `skillbuild install ...` first"); the build steps and logs of the second
// of two identical refused installs (it finds the resolve in BuildKit's
// cache); when containerd recorded an image made again (created,
// updated); and, without --json, the spacing of the result line (a server
// sends it as compact JSON).
func TestRemoteMatchesLocal(t *testing.T) {
	srv, _ := index(t, pyindex.Wheel{Name: "remotepkg", Version: "1.0"})
	s := startServe(t, "--warm-per-skill", "1", "--max-warm", "2")
	host := "unix://" + s.sock
	install := []string{"install", "--json", "--base", env.base, "--index-url", srv.URL(), "remote", "remotepkg==1.0"}

	// Install: built here, then the same through the server and here
	// again: both answer from the image already there.
	r := sb(t, install...)
	require.Equal(t, 0, r.code, r.stderr)
	local, remote := sb(t, install...), sb(t, append([]string{"--host", host}, install...)...)
	require.Equal(t, 0, remote.code, remote.stderr)
	assert.Equal(t, local.code, remote.code)
	assert.Equal(t, jsonDoc(t, local), jsonDoc(t, remote), "install --json")
	// Without --json: the tag on stdout, the build's progress on stderr.
	plain := sb(t, "--host", host, "install", "--progress", "plain", "--base", env.base, "--index-url", srv.URL(), "remote", "remotepkg==1.0")
	require.Equal(t, 0, plain.code, plain.stderr)
	assert.Equal(t, "atom-skill:remote-v1\n", plain.stdout)

	// A vulnerable install is refused both ways, with the same findings.
	local, remote = both(t, host, "install", "--json", "--base", env.base, "--index-url", srv.URL(), "remote-vuln", "pip==23.0.1")
	assert.Equal(t, 3, local.code, local.stderr)
	assert.Equal(t, 3, remote.code, remote.stderr)
	cached := []string{"executed_steps", "build_logs"}
	assert.Equal(t, without(jsonDoc(t, local), cached...), without(jsonDoc(t, remote), cached...), "a refused install --json")
	local, remote = both(t, host, "install", "--progress", "quiet", "--base", env.base, "--index-url", srv.URL(), "remote-vuln", "pip==23.0.1")
	assert.Equal(t, 3, remote.code)
	assert.Equal(t, local.stderr, remote.stderr, "the findings and the refusal, printed alike")

	// Runs: a clean one, a failing one, a timeout, an OOM kill, a missing
	// skill; as documents and as plain output with exit codes.
	runs := []struct {
		name string
		args []string
		exit int // without --json
	}{
		{"clean", []string{"-c", "import remotepkg, sys\nprint('hi')\nprint('to stderr', file=sys.stderr)\nresult = {'v': remotepkg.__version__, 'x': inputs['x']}", "--inputs", `{"x": 7}`, "remote"}, 0},
		{"exception", []string{"-c", "print('before')\nraise ValueError('boom')", "remote"}, 1},
		{"exit status", []string{"-c", "import sys\nsys.exit(7)", "remote"}, 7},
		{"timeout", []string{"--timeout", "2s", "-c", "import time\nprint('sleeping', flush=True)\ntime.sleep(60)", "remote"}, 124},
		{"oom", []string{"--memory", "64m", "-c", "b = []\nwhile True:\n    b.append(bytearray(8 << 20))", "remote"}, 137},
		{"missing skill", []string{"-c", "pass", "remote-nope"}, 4},
		{"bad input", []string{"--cpus", "0", "-c", "pass", "remote"}, 2},
	}
	for _, tc := range runs {
		t.Run("run "+tc.name, func(t *testing.T) {
			local, remote := both(t, host, append([]string{"run", "--json"}, tc.args...)...)
			assert.Equal(t, local.code, remote.code, "run --json exit code; stderr here: %s, there: %s", local.stderr, remote.stderr)
			ld, rd := jsonDoc(t, local), jsonDoc(t, remote)
			differ := []string{"duration_ms", "uid", "gid"}
			if tc.name == "missing skill" {
				lm, rm := ld.(map[string]any)["error"].(map[string]any)["message"], rd.(map[string]any)["error"].(map[string]any)["message"]
				assert.Contains(t, lm, "image atom-skill:remote-nope-v1 not found, run `skillbuild install remote-nope` first")
				assert.Contains(t, rm, "image atom-skill:remote-nope-v1 not found, install it first (POST /v1/install")
				differ = append(differ, "error.message")
			}
			assert.Equal(t, without(ld, differ...), without(rd, differ...), "run --json document")

			local, remote = both(t, host, append([]string{"run"}, tc.args...)...)
			assert.Equal(t, tc.exit, local.code, local.stderr)
			assert.Equal(t, tc.exit, remote.code, remote.stderr)
			lout, lres := resultLine(t, local.stdout)
			rout, rres := resultLine(t, remote.stdout)
			assert.Equal(t, lout, rout, "stdout")
			assert.Equal(t, lres, rres, "the result")
			if tc.name != "missing skill" {
				assert.Equal(t, local.stderr, remote.stderr, "stderr")
			}
		})
	}

	// ls, inspect: the same documents; a missing image is 4 both ways.
	local, remote = both(t, host, "ls", "--json")
	require.Equal(t, 0, remote.code, remote.stderr)
	assert.Equal(t, jsonDoc(t, local), jsonDoc(t, remote), "ls --json")
	local, remote = both(t, host, "ls", "--json", "--unpacked")
	assert.Equal(t, jsonDoc(t, local), jsonDoc(t, remote), "ls --json --unpacked")
	local, remote = both(t, host, "ls")
	assert.Equal(t, local.stdout, remote.stdout, "ls")
	local, remote = both(t, host, "inspect", "--json", "remote")
	require.Equal(t, 0, remote.code, remote.stderr)
	assert.Equal(t, jsonDoc(t, local), jsonDoc(t, remote), "inspect --json")
	local, remote = both(t, host, "inspect", "remote")
	assert.Equal(t, local.stdout, remote.stdout, "inspect")
	local, remote = both(t, host, "inspect", "--json", "remote-nope")
	assert.Equal(t, 4, local.code)
	assert.Equal(t, 4, remote.code, remote.stderr)

	// rm: a version that is not there is 4 both ways, with the same
	// document; then the image goes through the server, is made again
	// here, and goes here.
	local, remote = both(t, host, "rm", "--json", "--version", "9", "remote")
	assert.Equal(t, 4, local.code)
	assert.Equal(t, 4, remote.code, remote.stderr)
	assert.Equal(t, jsonDoc(t, local), jsonDoc(t, remote), "rm --json of nothing")
	remote = sb(t, "--host", host, "rm", "--json", "remote")
	require.Equal(t, 0, remote.code, remote.stderr)
	r = sb(t, install...)
	require.Equal(t, 0, r.code, r.stderr)
	local = sb(t, "rm", "--json", "remote")
	require.Equal(t, 0, local.code, local.stderr)
	assert.Equal(t, without(jsonDoc(t, local), "removed.0.created", "removed.0.updated"),
		without(jsonDoc(t, remote), "removed.0.created", "removed.0.updated"), "rm --json")
	// The run of a removed skill: 4 through the server too.
	remote = sb(t, "--host", host, "run", "-c", "pass", "remote")
	assert.Equal(t, 4, remote.code, remote.stderr)

	s.stop(t)
	assertNoRunLeftovers(t)
}

// TestRemoteTCPToken: --host on TCP with the bearer token from a file or
// the environment; a wrong or missing token is bad input (2) that says so,
// and a server that is not there is "try again" (75).
func TestRemoteTCPToken(t *testing.T) {
	dir := t.TempDir()
	const token = "remote-test-token-0123456789"
	tokenFile := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte(token+"\n"), 0o600))
	addr := fmt.Sprintf("tcp://127.0.0.1:%d", freePort(t))
	s := startServeTCP(t, addr, tokenFile, token, "--warm-per-skill", "1", "--max-warm", "1")

	want := sb(t, "ls", "--json")
	require.Equal(t, 0, want.code, want.stderr)
	for name, r := range map[string]result{
		"--token-file":                sb(t, "--host", addr, "--token-file", tokenFile, "ls", "--json"),
		"SKILLBUILD_TOKEN":            sbEnv(t, []string{"SKILLBUILD_TOKEN=" + token}, "--host", addr, "ls", "--json"),
		"SKILLBUILD_HOST, TOKEN_FILE": sbEnv(t, []string{"SKILLBUILD_HOST=" + addr, "SKILLBUILD_TOKEN_FILE=" + tokenFile}, "ls", "--json"),
	} {
		require.Equal(t, 0, r.code, "%s: %s", name, r.stderr)
		assert.Equal(t, jsonDoc(t, want), jsonDoc(t, r), name)
	}
	r := sbEnv(t, []string{"SKILLBUILD_TOKEN=" + token}, "--host", addr, "run", "--image", env.base, "-c", "print(6 * 7)", "tcp")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, "42\n", r.stdout)

	r = sbEnv(t, []string{"SKILLBUILD_TOKEN=not-the-token-at-all"}, "--host", addr, "ls")
	assert.Equal(t, 2, r.code, r.stderr)
	assert.Contains(t, r.stderr, "refused the bearer token")
	r = sb(t, "--host", addr, "ls")
	assert.Equal(t, 2, r.code, r.stderr)
	assert.Contains(t, r.stderr, "bearer token")

	for _, args := range [][]string{
		{"--host", fmt.Sprintf("tcp://127.0.0.1:%d", freePort(t)), "--token-file", tokenFile, "ls"},
		{"--host", "unix://" + filepath.Join(dir, "none.sock"), "run", "-c", "pass", "x"},
	} {
		r = sb(t, args...)
		assert.Equal(t, 75, r.code, "%v: %s", args, r.stderr)
		assert.Contains(t, r.stderr, "cannot reach skillbuild serve at")
	}

	// The Python client, installed as a package, works over TCP too.
	out := pythonClient(t, `
import sys, skillbuild_client as sbc
assert "/venv/" in sbc.__file__, sbc.__file__
c = sbc.Client(sys.argv[1], token=sys.argv[2])
assert c.openapi()["openapi"] == "3.1.0"
print(c.run("tcp", "result = 1", image=sys.argv[3])["result"])
`, strings.Replace(addr, "tcp://", "http://", 1), token, env.base)
	assert.Equal(t, "1\n", out)
	s.stop(t)
	assertNoRunLeftovers(t)
}
