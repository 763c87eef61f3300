package runtime

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSiblingInit: the separate init program stands in for the running
// program only when it is static, safe to trust and speaks the protocol.
func TestSiblingInit(t *testing.T) {
	if testing.Short() {
		t.Skip("builds cmd/skillbuild-init")
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "good-init")
	build := exec.Command("go", "build", "-o", good, "./pid1/cmd/skillbuild-init")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)

	b, ok := siblingInit(good)
	require.True(t, ok)
	assert.Equal(t, initBinary{exe: good}, b, "static: nothing else to mount")

	_, ok = siblingInit(filepath.Join(dir, "missing"))
	assert.False(t, ok)

	require.NoError(t, os.Chmod(good, 0o777))
	_, ok = siblingInit(good)
	assert.False(t, ok, "writable by others: not trusted")
	require.NoError(t, os.Chmod(good, 0o755))

	script := filepath.Join(dir, "script-init")
	require.NoError(t, os.WriteFile(script, []byte("#!/bin/sh\necho skillbuild-init/1\n"), 0o755))
	_, ok = siblingInit(script)
	assert.False(t, ok, "not an ELF program")

	// Another program (this test binary, dynamically linked or not) does
	// not speak the protocol.
	self, err := os.Executable()
	require.NoError(t, err)
	_, ok = siblingInit(self)
	assert.False(t, ok)

	// Checked once, the same file is taken from the record; any change
	// to it (here: the same bytes written anew) checks it again.
	state := t.TempDir()
	b, ok = siblingInitChecked(good, state)
	require.True(t, ok)
	assert.Equal(t, initBinary{exe: good}, b)
	record, err := os.ReadFile(filepath.Join(state, "images", initCheckName))
	require.NoError(t, err)
	b, ok = siblingInitChecked(good, state)
	require.True(t, ok, "recorded")
	assert.Equal(t, initBinary{exe: good}, b)
	data, err := os.ReadFile(script)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(good, data, 0o755), "the checked program replaced by one that does not speak the protocol")
	_, ok = siblingInitChecked(good, state)
	assert.False(t, ok, "a changed file is checked anew, not taken from the record")
	require.NoError(t, os.Chmod(good, 0o777))
	_, ok = siblingInitChecked(good, state)
	assert.False(t, ok, "writable by others: not trusted, whatever the record says")
	after, err := os.ReadFile(filepath.Join(state, "images", initCheckName))
	require.NoError(t, err)
	assert.Equal(t, string(record), string(after), "a failed check records nothing")
}
