package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testdata/events.json is `go test -json` of three packages (times made
// distinct): a passes (with a skip and a TestMain that prints), b fails
// (a test with a failing and a passing subtest, one that fails flat, one
// that passes and prints), c does not build.
func TestReportPrintsWhatPlainGoTestDoes(t *testing.T) {
	t.Parallel()
	f, err := os.Open(filepath.Join("testdata", "events.json"))
	require.NoError(t, err)
	defer f.Close()
	var stdout, stderr bytes.Buffer
	r := newReport(&stdout, &stderr)
	require.NoError(t, r.read(f))
	r.finish(3)
	// What `go test ./...` printed for the same packages, but for the
	// order of c's line (go test -json reports a package when it ends) and
	// b's time; then the three slowest, parents and subtests alike.
	assert.Equal(t, "ok  \texample.com/trx/a\t(cached)\n"+
		"FAIL\texample.com/trx/c [build failed]\n"+
		"printed in pass\n"+
		"--- FAIL: TestFail (0.00s)\n"+
		"    b_test.go:10: before subs\n"+
		"    --- FAIL: TestFail/bad (0.00s)\n"+
		"        b_test.go:12: sub bad log\n"+
		"        b_test.go:12: sub bad error\n"+
		"    b_test.go:13: parent error\n"+
		"printed in flat\n"+
		"--- FAIL: TestFailFlat (0.00s)\n"+
		"    b_test.go:15: flat fatal\n"+
		"FAIL\n"+
		"FAIL\texample.com/trx/b\t3.912s\n"+
		"FAIL\n"+
		"\n"+
		"slowest 3 tests:\n"+
		"      3.50s  b TestFail\n"+
		"      3.25s  b TestFail/bad\n"+
		"      1.50s  a TestPass\n", stdout.String())
	assert.Equal(t, "# example.com/trx/c [example.com/trx/c.test]\nc/c_test.go:5:33: undefined: undefined\n", stderr.String(),
		"build errors go to stderr, as go test puts them")
}

func TestReportOfPassingPackagesIsTheirOKLines(t *testing.T) {
	t.Parallel()
	in := `{"Action":"start","Package":"m/p"}
{"Action":"run","Package":"m/p","Test":"TestA"}
{"Action":"output","Package":"m/p","Test":"TestA","Output":"=== RUN   TestA\n"}
{"Action":"output","Package":"m/p","Test":"TestA","Output":"    a_test.go:3: a log line\n"}
{"Action":"output","Package":"m/p","Test":"TestA","Output":"--- PASS: TestA (2.00s)\n"}
{"Action":"pass","Package":"m/p","Test":"TestA","Elapsed":2}
{"Action":"output","Package":"m/p","Output":"PASS\n"}
{"Action":"output","Package":"m/p","Output":"ok  \tm/p\t2.013s\n"}
{"Action":"pass","Package":"m/p","Elapsed":2.013}
{"Action":"start","Package":"m/q"}
{"Action":"output","Package":"m/q","Output":"?   \tm/q\t[no test files]\n"}
{"Action":"skip","Package":"m/q","Elapsed":0}
not an event
`
	var stdout, stderr bytes.Buffer
	r := newReport(&stdout, &stderr)
	require.NoError(t, r.read(bytes.NewReader([]byte(in))))
	r.finish(0)
	assert.Equal(t, "ok  \tm/p\t2.013s\n?   \tm/q\t[no test files]\nnot an event\n", stdout.String())
	assert.Empty(t, stderr.String())
}

// TestRunExitsAsTheCommandDid: the status is the command's, whatever the
// report says.
func TestRunExitsAsTheCommandDid(t *testing.T) {
	t.Parallel()
	sh, err := exec.LookPath("sh")
	require.NoError(t, err)
	for _, code := range []int{0, 1, 2, 3} {
		var stdout, stderr bytes.Buffer
		got := run([]string{sh, "-c", `printf '%s\n' '{"Action":"output","Package":"m/p","Output":"ok  \tm/p\t0.1s\n"}' '{"Action":"pass","Package":"m/p"}'; echo oops >&2; exit ` + strconv.Itoa(code)}, 10, &stdout, &stderr)
		assert.Equal(t, code, got)
		assert.Equal(t, "ok  \tm/p\t0.1s\n", stdout.String())
		assert.Equal(t, "oops\n", stderr.String(), "the command's stderr passes through")
	}
	var stdout, stderr bytes.Buffer
	assert.Equal(t, 1, run([]string{filepath.Join(t.TempDir(), "missing")}, 10, &stdout, &stderr))
	assert.Contains(t, stderr.String(), "testreport:")
}
