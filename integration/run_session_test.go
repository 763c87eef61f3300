package integration

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	sbruntime "github.com/skillbuild/skillbuild/runtime"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sessionPool is a pool of the suite's containerd for session tests,
// closed (and checked to leave nothing) at the end of the test.
func sessionPool(t *testing.T, opts ...sbruntime.PoolOpt) *sbruntime.Pool {
	t.Helper()
	ctx := context.Background()
	r, err := sbruntime.New(ctx, ctdClient(t), sbruntime.WithStateDir(filepath.Join(env.root, "runs")))
	require.NoError(t, err)
	p, err := sbruntime.NewPool(ctx, r, append([]sbruntime.PoolOpt{sbruntime.WithWarmPerImage(1), sbruntime.WithMaxWarm(2)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() {
		require.NoError(t, p.Close(ctx))
		assertNoRunLeftovers(t)
	})
	return p
}

func call(t *testing.T, s *sbruntime.Session, code string, files map[string][]byte) sbruntime.Result {
	t.Helper()
	res, err := s.Call(context.Background(), sbruntime.Request{Code: []byte(code), Files: files})
	require.NoError(t, err)
	return res
}

func sha(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// testSessionBasics: state persists between calls, each call has its own
// output and result, SystemExit ends a call and not the session, files
// come in read-only and go out with their hashes, and Close ends it.
func testSessionBasics(t *testing.T, limits sbruntime.Limits) {
	ctx := context.Background()
	p := sessionPool(t)
	s, err := p.OpenSession(ctx, sbruntime.Request{Image: env.base, Limits: limits}, 10*time.Minute)
	require.NoError(t, err)

	first := call(t, s, "import json as j\nx = 41\nprint('one')\nresult = x", nil)
	require.Nil(t, first.Error, "%+v", first.Error)
	assert.Equal(t, "one\n", first.Stdout)
	assert.Equal(t, "41", string(first.Result))
	assert.Empty(t, first.SessionEnded)

	second := call(t, s, "import sys\nprint(x + 1, j.dumps([1]))\nprint('err', file=sys.stderr)", nil)
	require.Nil(t, second.Error, "%+v", second.Error)
	assert.Equal(t, "42 [1]\n", second.Stdout, "the second call sees the first's variables and modules, and only its own output")
	assert.Equal(t, "err\n", second.Stderr)
	assert.Nil(t, second.Result, "result is unset before each call")

	exit := call(t, s, "import sys\nprint('bye')\nsys.exit(3)", nil)
	assert.Equal(t, 3, exit.ExitCode)
	assert.Equal(t, "bye\n", exit.Stdout)
	assert.Empty(t, exit.SessionEnded)

	res, err := s.Call(ctx, sbruntime.Request{Code: []byte("result = inputs['a'] + x"), Inputs: json.RawMessage(`{"a": 1}`)})
	require.NoError(t, err)
	assert.Equal(t, "42", string(res.Result))

	// Files: in read-only, out with their hashes; the next call returns
	// only what changed, and still sees the earlier call's in files.
	in := map[string][]byte{"a.txt": []byte("hello"), "d/e/b.bin": {0, 1, 2, 255}}
	files := call(t, s, `
import os
data = open('/data/in/a.txt').read() + open('/data/in/d/e/b.bin', 'rb').read().hex()
try:
    open('/data/in/new', 'w')
    ro = 'writable'
except OSError as e:
    ro = type(e).__name__
try:
    open('/data/in/a.txt', 'a')
    ro2 = 'writable'
except OSError as e:
    ro2 = type(e).__name__
os.makedirs('/data/out/sub', exist_ok=True)
open('/data/out/r.txt', 'w').write(data)
open('/data/out/sub/keep.txt', 'w').write('k')
os.symlink('/etc/passwd', '/data/out/link')
result = [ro, ro2, [l.split()[5].split(',')[0] for l in open('/proc/self/mountinfo') if l.split()[4] == '/data/in']]
`, in)
	require.Nil(t, files.Error, "%+v\n%s", files.Error, files.Stderr)
	var ro []any
	require.NoError(t, json.Unmarshal(files.Result, &ro))
	require.Len(t, ro, 3)
	assert.NotEqual(t, "writable", ro[0], "the in files are read-only")
	assert.NotEqual(t, "writable", ro[1], "the in files are read-only")
	assert.Equal(t, []any{"ro"}, ro[2], "the in directory is mounted read-only")
	names := func(fs []sbruntime.File) []string {
		var n []string
		for _, f := range fs {
			n = append(n, f.Name)
		}
		return n
	}
	require.Equal(t, []string{"r.txt", "sub/keep.txt"}, names(files.Files), "regular files only, in name order")
	want := []byte("hello000102ff")
	assert.Equal(t, want, files.Files[0].Content)
	assert.Equal(t, sha(want), files.Files[0].SHA256)
	assert.Equal(t, int64(len(want)), files.Files[0].Size)
	assert.False(t, files.Files[0].Omitted)

	next := call(t, s, "open('/data/out/r.txt', 'a').write('!')\nresult = open('/data/in/a.txt').read()", map[string][]byte{"c.txt": []byte("c")})
	require.Nil(t, next.Error, "%+v", next.Error)
	assert.Equal(t, `"hello"`, string(next.Result))
	require.Equal(t, []string{"r.txt"}, names(next.Files), "only what the call changed")
	assert.Equal(t, append(want, '!'), next.Files[0].Content)

	seen := call(t, s, "import os\nresult = sorted(os.listdir('/data/in'))", map[string][]byte{"a.txt": []byte("replaced")})
	assert.JSONEq(t, `["a.txt", "c.txt", "d"]`, string(seen.Result), "a call sees the files of the calls before")
	again := call(t, s, "result = open('/data/in/a.txt').read()", nil)
	assert.Equal(t, `"replaced"`, string(again.Result))

	// A file over the cap is listed without content.
	big := call(t, s, "open('/data/out/big', 'wb').write(b'x' * ((16 << 20) + 1))\nopen('/data/out/small', 'w').write('s')", nil)
	require.Nil(t, big.Error, "%+v\n%s", big.Error, big.Stderr)
	require.Equal(t, []string{"big", "small"}, names(big.Files))
	assert.True(t, big.Files[0].Omitted)
	assert.Nil(t, big.Files[0].Content)
	assert.Equal(t, int64(16<<20+1), big.Files[0].Size)
	assert.Equal(t, sha(slices.Repeat([]byte("x"), 16<<20+1)), big.Files[0].SHA256)
	assert.Equal(t, []byte("s"), big.Files[1].Content)

	require.NoError(t, s.Close(ctx, ""))
	require.NoError(t, s.Close(ctx, sbruntime.SessionEndedIdle), "Close is idempotent")
	assert.Equal(t, sbruntime.SessionEndedClosed, s.Ended())
	_, err = s.Call(ctx, sbruntime.Request{Code: []byte("pass")})
	require.ErrorIs(t, err, sbruntime.ErrSessionEnded)
	assert.ErrorIs(t, err, errdefs.ErrNotFound)
	assert.Contains(t, err.Error(), "session ended: closed")
}

func TestSessionCallsKeepState(t *testing.T) {
	testSessionBasics(t, sbruntime.Limits{})
}

func TestSessionGVisor(t *testing.T) {
	testSessionBasics(t, sbruntime.Limits{Runtime: sbruntime.RuntimeGVisor})
}

// TestSessionEnds: a call's timeout, an OOM kill, the interpreter's exit,
// the lifetime and the pool's shutdown each end the session, say why, and
// leave nothing.
func TestSessionEnds(t *testing.T) {
	ctx := context.Background()
	p := sessionPool(t)
	open := func(limits sbruntime.Limits, lifetime time.Duration) *sbruntime.Session {
		t.Helper()
		s, err := p.OpenSession(ctx, sbruntime.Request{Image: env.base, Limits: limits}, lifetime)
		require.NoError(t, err)
		return s
	}
	ended := func(t *testing.T, s *sbruntime.Session, reason string) {
		t.Helper()
		assert.Equal(t, reason, s.Ended())
		_, err := s.Call(ctx, sbruntime.Request{Code: []byte("pass")})
		require.ErrorIs(t, err, sbruntime.ErrSessionEnded)
		assert.Contains(t, err.Error(), "session ended: "+reason)
	}

	t.Run("timeout", func(t *testing.T) {
		s := open(sbruntime.Limits{}, 10*time.Minute)
		call(t, s, "x = 1", nil)
		res, err := s.Call(ctx, sbruntime.Request{Code: []byte("import time\nprint('sleeping', flush=True)\ntime.sleep(3600)"), Limits: sbruntime.Limits{Timeout: 2 * time.Second}})
		require.NoError(t, err)
		assert.True(t, res.TimedOut)
		require.NotNil(t, res.Error)
		assert.Equal(t, sbruntime.ErrorTimeout, res.Error.Type)
		assert.Equal(t, sbruntime.SessionEndedTimeout, res.SessionEnded)
		assert.Equal(t, "sleeping\n", res.Stdout)
		ended(t, s, sbruntime.SessionEndedTimeout)
	})
	t.Run("oom", func(t *testing.T) {
		s := open(sbruntime.Limits{MemoryBytes: 96 << 20}, 10*time.Minute)
		res := call(t, s, "b = []\nwhile True:\n    b.append(bytearray(8 << 20))", nil)
		assert.True(t, res.OOMKilled)
		assert.Equal(t, sbruntime.SessionEndedOOM, res.SessionEnded)
		ended(t, s, sbruntime.SessionEndedOOM)
	})
	t.Run("exited", func(t *testing.T) {
		s := open(sbruntime.Limits{}, 10*time.Minute)
		res := call(t, s, "import os\nprint('last', flush=True)\nos._exit(0)", nil)
		assert.Equal(t, sbruntime.SessionEndedExited, res.SessionEnded)
		require.NotNil(t, res.Error)
		assert.Equal(t, sbruntime.ErrorNoReport, res.Error.Type)
		assert.Equal(t, "last\n", res.Stdout)
		ended(t, s, sbruntime.SessionEndedExited)
	})
	t.Run("lifetime", func(t *testing.T) {
		s := open(sbruntime.Limits{}, 3*time.Second)
		call(t, s, "x = 1", nil)
		eventually(t, time.Minute, func() bool { return s.Ended() != "" }, func() string { return "the session did not end at its lifetime" })
		ended(t, s, sbruntime.SessionEndedLifetime)
	})
	t.Run("cancelled", func(t *testing.T) {
		s := open(sbruntime.Limits{}, 10*time.Minute)
		cctx, cancel := context.WithCancel(ctx)
		time.AfterFunc(time.Second, cancel)
		res, err := s.Call(cctx, sbruntime.Request{Code: []byte("import time\ntime.sleep(3600)")})
		require.ErrorIs(t, err, context.Canceled)
		assert.Equal(t, sbruntime.SessionEndedClosed, res.SessionEnded)
		ended(t, s, sbruntime.SessionEndedClosed)
	})
	t.Run("closed during a call", func(t *testing.T) {
		s := open(sbruntime.Limits{}, 10*time.Minute)
		started := make(chan struct{})
		closed := make(chan error, 1)
		go func() {
			<-started
			closed <- s.Close(ctx, sbruntime.SessionEndedIdle)
		}()
		res, err := s.Call(ctx, sbruntime.Request{Code: []byte("import time\nprint('up', flush=True)\ntime.sleep(3600)"), Stdout: &firstWriteSignal{c: started}})
		require.NoError(t, err)
		assert.Equal(t, sbruntime.SessionEndedIdle, res.SessionEnded, "the call ends with Close's reason")
		assert.Equal(t, "up\n", res.Stdout)
		require.NoError(t, <-closed)
		ended(t, s, sbruntime.SessionEndedIdle)
	})
	t.Run("bad files", func(t *testing.T) {
		s := open(sbruntime.Limits{}, 10*time.Minute)
		_, err := s.Call(ctx, sbruntime.Request{Code: []byte("pass"), Files: map[string][]byte{"../x": nil}})
		require.ErrorIs(t, err, errdefs.ErrInvalidArgument)
		assert.Contains(t, err.Error(), `"../x"`)
		assert.Empty(t, s.Ended(), "a refused call leaves the session as it was")
		res := call(t, s, "result = 1", map[string][]byte{"x": []byte("x")})
		assert.Equal(t, "1", string(res.Result))
		_, err = s.Call(ctx, sbruntime.Request{Code: []byte("pass"), Files: map[string][]byte{"x/y": nil}})
		require.ErrorIs(t, err, errdefs.ErrInvalidArgument, "an earlier call's file is no directory")
		res = call(t, s, "result = open('/data/in/x').read()", nil)
		assert.Equal(t, `"x"`, string(res.Result))
		require.NoError(t, s.Close(ctx, ""))
	})
	t.Run("shutdown", func(t *testing.T) {
		s := open(sbruntime.Limits{}, 10*time.Minute)
		call(t, s, "x = 1", nil)
		require.NoError(t, p.Close(ctx))
		ended(t, s, sbruntime.SessionEndedShutdown)
	})
}

// TestSessionCallLatency measures a session call of print(1) beside a
// warm Pool.Run of the same, in the same process (logged, for the
// benchmarks; only the outputs are asserted).
func TestSessionCallLatency(t *testing.T) {
	ctx := context.Background()
	p := sessionPool(t)
	const n = 50
	code := []byte("print(1)")
	s, err := p.OpenSession(ctx, sbruntime.Request{Image: env.base}, 10*time.Minute)
	require.NoError(t, err)
	var calls, runs []time.Duration
	for range n {
		start := time.Now()
		res, err := s.Call(ctx, sbruntime.Request{Code: code})
		calls = append(calls, time.Since(start))
		require.NoError(t, err)
		require.Equal(t, "1\n", res.Stdout)
	}
	require.NoError(t, s.Close(ctx, ""))
	for range n {
		eventually(t, time.Minute, func() bool { return p.Stats().Warm >= 1 }, func() string { return "no warm container" })
		start := time.Now()
		res, err := p.Run(ctx, sbruntime.Request{Image: env.base, Code: code})
		runs = append(runs, time.Since(start))
		require.NoError(t, err)
		require.Equal(t, "1\n", res.Stdout)
	}
	p50 := func(d []time.Duration) time.Duration { slices.Sort(d); return d[len(d)/2] }
	t.Logf("p50 of %d calls of print(1): session call %s, warm Pool.Run %s", n, p50(calls), p50(runs))
}

// firstWriteSignal closes c at its first write.
type firstWriteSignal struct {
	c    chan struct{}
	once sync.Once
}

func (w *firstWriteSignal) Write(p []byte) (int, error) {
	w.once.Do(func() { close(w.c) })
	return len(p), nil
}
