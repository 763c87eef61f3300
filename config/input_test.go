package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReadInput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	require.NoError(t, syscall.Mkfifo(fifo, 0o600)) // nobody ever writes: a blocking open would hang
	small := filepath.Join(dir, "small")
	require.NoError(t, os.WriteFile(small, []byte("12345"), 0o600))

	b, err := ReadInput(small, 5)
	require.NoError(t, err)
	assert.Equal(t, "12345", string(b))

	for _, tc := range []struct {
		path, says string
		notExist   bool
	}{
		{path: fifo, says: "is a FIFO, not a regular file"},
		{path: "/dev/zero", says: "is a character device, not a regular file"},
		{path: dir, says: "is a directory, not a regular file"},
		{path: small + "x", says: "no such file", notExist: true},
	} {
		_, err := ReadInput(tc.path, 1<<20)
		require.Error(t, err, tc.path)
		assert.ErrorIs(t, err, errdefs.ErrInvalidArgument, tc.path)
		assert.Contains(t, err.Error(), tc.says)
		assert.NotContains(t, err.Error(), "invalid argument", "the message is only what happened")
		assert.Equal(t, tc.notExist, errorsIsNotExist(err), tc.path)
	}
	_, err = ReadInput(small, 4)
	assert.ErrorIs(t, err, errdefs.ErrInvalidArgument)
	assert.Contains(t, err.Error(), "is 5 bytes, more than the 4 allowed")

	_, err = ReadLimited("stdin", strings.NewReader("123456"), 5)
	assert.ErrorIs(t, err, errdefs.ErrInvalidArgument)
	assert.Contains(t, err.Error(), "stdin is more than the 5 bytes allowed")
	z, err := os.Open("/dev/zero")
	require.NoError(t, err)
	defer z.Close()
	_, err = ReadLimited("stdin", z, 1<<20)
	assert.ErrorIs(t, err, errdefs.ErrInvalidArgument, "an endless stream stops at the cap")
}

func errorsIsNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
