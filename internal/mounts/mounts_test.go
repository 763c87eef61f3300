package mounts

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestUnder(t *testing.T) {
	t.Parallel()
	info := `22 1 0:21 / / rw - overlay overlay rw
30 22 0:30 / /tmp/it/root rw - tmpfs tmpfs rw
31 30 0:31 / /tmp/it/root/snap/1 rw - overlay overlay rw
32 22 0:32 / /tmp/it-2/root rw - tmpfs tmpfs rw
33 22 0:33 / /tmp/it rw - tmpfs tmpfs rw
`
	mps, err := under(strings.NewReader(info), "/tmp/it")
	require.NoError(t, err)
	assert.Equal(t, []string{"/tmp/it/root/snap/1", "/tmp/it/root", "/tmp/it"}, mps,
		"deepest first, and never the sibling /tmp/it-2")
	mps, err = under(strings.NewReader(info), "/nowhere")
	require.NoError(t, err)
	assert.Empty(t, mps)
}
