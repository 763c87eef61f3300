package store

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	ctd "github.com/containerd/containerd/v2/client"

	"github.com/containerd/errdefs"
)

// Dial connects to containerd at address with namespace as the default,
// classifying an unreachable daemon as errdefs.ErrUnavailable.
func Dial(ctx context.Context, address, namespace string) (*ctd.Client, error) {
	if _, err := os.Stat(address); err != nil {
		return nil, fmt.Errorf("containerd socket %s: %w (is containerd running? set --address or CONTAINERD_ADDRESS): %w", address, err, errdefs.ErrUnavailable)
	}
	c, err := ctd.New(address, ctd.WithDefaultNamespace(namespace), ctd.WithTimeout(10*time.Second))
	if err != nil {
		return nil, fmt.Errorf("connect to containerd at %s: %w: %w", address, err, errdefs.ErrUnavailable)
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, err := c.Version(sctx)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("containerd at %s does not answer: %w: %w", address, err, errdefs.ErrUnavailable)
	}
	if err := SupportedDaemon(v.Version); err != nil {
		c.Close()
		return nil, fmt.Errorf("containerd at %s: %w", address, err)
	}
	return c, nil
}

// MinDaemonVersion is the oldest containerd skillbuild runs against
// (docs/platforms.md lists what is tested).
const MinDaemonVersion = "1.6"

// SupportedDaemon refuses a containerd older than MinDaemonVersion, by the
// version it reports ("1.6.20~ds1", "v1.7.27", "2.4.2+unknown"). A version
// it cannot read is let through: development builds name themselves
// freely.
func SupportedDaemon(version string) error {
	v := strings.TrimPrefix(version, "v")
	var major, minor int
	if n, _ := fmt.Sscanf(v, "%d.%d", &major, &minor); n < 2 {
		return nil
	}
	if major > 1 || (major == 1 && minor >= 6) {
		return nil
	}
	return fmt.Errorf("containerd %s is older than %s, the oldest skillbuild supports (its client speaks containerd 2's API, which 1.6 and later serve): upgrade containerd: %w",
		version, MinDaemonVersion, errdefs.ErrFailedPrecondition)
}
