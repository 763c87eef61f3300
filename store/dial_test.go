package store

import (
	"testing"

	"github.com/containerd/errdefs"
	"github.com/stretchr/testify/assert"
)

func TestSupportedDaemon(t *testing.T) {
	t.Parallel()
	for _, v := range []string{"1.6.20~ds1", "v1.7.27", "2.4.2+unknown", "v2.0.0-rc.1", "10.0", "devel"} {
		assert.NoError(t, SupportedDaemon(v), v)
	}
	for _, v := range []string{"1.5.18", "v1.4.0", "0.9"} {
		err := SupportedDaemon(v)
		assert.ErrorIs(t, err, errdefs.ErrFailedPrecondition, v)
		assert.ErrorContains(t, err, "older than 1.6", v)
		assert.ErrorContains(t, err, "upgrade containerd", v)
	}
}
