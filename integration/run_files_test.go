package integration

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	sbruntime "github.com/skillbuild/skillbuild/runtime"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// filesCode reads the in files, tries to write beside them, and leaves
// out files (one a link, which is not returned).
const filesCode = `
import os
data = open('/data/in/a.txt').read() + open('/data/in/d/b.txt').read()
try:
    open('/data/in/new', 'w')
    ro = 'writable'
except OSError as e:
    ro = type(e).__name__
open('/data/out/r.txt', 'w').write(data)
os.symlink('/etc/passwd', '/data/out/link')
os.mkfifo('/data/out/fifo')
result = [ro, [l.split()[5].split(',')[0] for l in open('/proc/self/mountinfo') if l.split()[4] == '/data/in']]
`

// TestRunFiles: a single run, cold (Runner.Run) or warm (Pool.Run), gets
// its files read-only under InDir and returns what it left under OutDir;
// bad file names are refused before anything starts.
func TestRunFiles(t *testing.T) {
	ctx := context.Background()
	r, err := sbruntime.New(ctx, ctdClient(t), sbruntime.WithStateDir(filepath.Join(env.root, "runs")))
	require.NoError(t, err)
	p, err := sbruntime.NewPool(ctx, r, sbruntime.WithWarmPerImage(1), sbruntime.WithMaxWarm(1))
	require.NoError(t, err)
	in := map[string][]byte{"a.txt": []byte("a"), "d/b.txt": []byte("b")}
	check := func(t *testing.T, res sbruntime.Result) {
		t.Helper()
		require.Nil(t, res.Error, "%+v\n%s", res.Error, res.Stderr)
		var ro []any
		require.NoError(t, json.Unmarshal(res.Result, &ro))
		require.Len(t, ro, 2)
		assert.NotEqual(t, "writable", ro[0], "the in files are read-only")
		assert.Equal(t, []any{"ro"}, ro[1], "the in directory is mounted read-only")
		require.Len(t, res.Files, 1, "regular files only: %+v", res.Files)
		assert.Equal(t, "r.txt", res.Files[0].Name)
		assert.Equal(t, []byte("ab"), res.Files[0].Content)
		assert.Equal(t, sha([]byte("ab")), res.Files[0].SHA256)
		assert.Zero(t, res.FilesOmitted)
	}
	for _, rt := range []string{sbruntime.RuntimeRunc, sbruntime.RuntimeGVisor} {
		t.Run("cold "+rt, func(t *testing.T) {
			res, err := r.Run(ctx, sbruntime.Request{Image: env.base, Code: []byte(filesCode), Files: in, Limits: sbruntime.Limits{Runtime: rt}})
			require.NoError(t, err)
			check(t, res)
		})
	}
	t.Run("warm", func(t *testing.T) {
		for range 2 { // the first waits for the container started; the second finds one ready
			res, err := p.Run(ctx, sbruntime.Request{Image: env.base, Code: []byte(filesCode), Files: in})
			require.NoError(t, err)
			check(t, res)
			eventually(t, time.Minute, func() bool { return p.Stats().Warm == 1 }, func() string { return "no warm container" })
		}
		assert.NotZero(t, p.Stats().Hits)
	})
	t.Run("more files than returned", func(t *testing.T) {
		res, err := r.Run(ctx, sbruntime.Request{Image: env.base, Code: []byte("for i in range(70):\n    open('/data/out/%02d' % i, 'w').write(str(i))")})
		require.NoError(t, err)
		require.Len(t, res.Files, sbruntime.MaxOutFiles)
		assert.Equal(t, "00", res.Files[0].Name)
		assert.Equal(t, []byte("63"), res.Files[63].Content)
		assert.Equal(t, 70-sbruntime.MaxOutFiles, res.FilesOmitted)
	})
	t.Run("bad names are refused", func(t *testing.T) {
		for _, name := range []string{"../x", "/etc/x", "a//b", "a\\b", ""} {
			_, err := r.Run(ctx, sbruntime.Request{Image: env.base, Code: []byte("pass"), Files: map[string][]byte{name: nil}})
			require.ErrorIs(t, err, errdefs.ErrInvalidArgument, name)
			_, err = p.Run(ctx, sbruntime.Request{Image: env.base, Code: []byte("pass"), Files: map[string][]byte{name: nil}})
			require.ErrorIs(t, err, errdefs.ErrInvalidArgument, name)
		}
	})
	require.NoError(t, p.Close(ctx))
	assertNoRunLeftovers(t)
}
