package engine

import (
	"testing"

	"github.com/containerd/errdefs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPruneOptions(t *testing.T) {
	t.Parallel()
	var o pruneOptions
	require.NoError(t, WithKeepStorage(2<<30)(&o))
	require.NoError(t, WithPruneAll()(&o))
	assert.Equal(t, pruneOptions{all: true, keep: 2 << 30}, o)
	assert.ErrorIs(t, WithKeepStorage(-1)(&o), errdefs.ErrInvalidArgument)
}
