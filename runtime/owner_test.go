package runtime

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestOwnerLock(t *testing.T) {
	t.Parallel()
	state := t.TempDir()
	dir := filepath.Join(state, "sbrun-x")
	require.NoError(t, os.Mkdir(dir, 0o700))
	assert.False(t, ownerGone(state, "sbrun-x"), "no owner file: not known to be gone")
	assert.False(t, ownerGone(state, "sbrun-missing"))

	f, err := holdOwner(dir)
	require.NoError(t, err)
	assert.False(t, ownerGone(state, "sbrun-x"), "held")
	assert.False(t, ownerGone(state, "sbrun-x"), "a check does not take it over")
	names, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, names, 1, "only the owner file, renamed into place")
	assert.Equal(t, ownerName, names[0].Name())

	require.NoError(t, f.Close()) // what the death of the process does
	assert.True(t, ownerGone(state, "sbrun-x"))
}

func TestImageInfoCacheOnDisk(t *testing.T) {
	t.Parallel()
	state := t.TempDir()
	c := newImageInfoCache(state)
	dg := digest.FromString("manifest")
	file := filepath.Join(c.dir, "sha256-"+dg.Encoded()+".json")
	info := imageInfo{Config: ocispec.ImageConfig{User: "65532", Env: []string{"PATH=/venv/bin"}, WorkingDir: "/app"}, ChainID: digest.FromString("layers")}
	c.store(file, info)
	got, ok := newImageInfoCache(state).load(file)
	require.True(t, ok)
	assert.Equal(t, info, got)

	// Anything unreadable counts as missing: read again from containerd.
	require.NoError(t, os.WriteFile(file, []byte(`{"config":{},"chain_id":"nonsense"}`), 0o600))
	_, ok = c.load(file)
	assert.False(t, ok)
	require.NoError(t, os.WriteFile(file, []byte(`{`), 0o600))
	_, ok = c.load(file)
	assert.False(t, ok)
	ents, err := os.ReadDir(c.dir)
	require.NoError(t, err)
	assert.Len(t, ents, 1, "no temporary file left")
}
