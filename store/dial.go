package store

import (
	"context"
	"fmt"
	"os"
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
	if _, err := c.Version(sctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("containerd at %s does not answer: %w: %w", address, err, errdefs.ErrUnavailable)
	}
	return c, nil
}
