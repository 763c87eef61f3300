package api

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/skillbuild/skillbuild/scan"
	"github.com/stretchr/testify/assert"
)

func TestExitCodes(t *testing.T) {
	t.Parallel()
	cases := []struct {
		err  error
		want int
	}{
		{nil, ExitOK},
		{errors.New("boom"), ExitFailed},
		{fmt.Errorf("bad id: %w", errdefs.ErrInvalidArgument), ExitBadInput},
		{fmt.Errorf("no image: %w", errdefs.ErrNotFound), ExitNotFound},
		{fmt.Errorf("containerd down: %w", errdefs.ErrUnavailable), ExitTempFail},
		{fmt.Errorf("lock busy: %w", errdefs.ErrAborted), ExitTempFail},
		{fmt.Errorf("gate: %w", &scan.VulnerableError{}), ExitVulnerable},
		{fmt.Errorf("interrupted: %w", context.Canceled), ExitInterrupted},
		{fmt.Errorf("stdout: %w", syscall.EPIPE), ExitBrokenPipe},
	}
	for _, tc := range cases {
		assert.Equal(t, tc.want, ExitCode(tc.err), "%v", tc.err)
	}
}
