package skill

import (
	"context"
	"fmt"

	ctd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	"github.com/skillbuild/skillbuild/attest"
	"github.com/skillbuild/skillbuild/scan"
)

// admit decides whether the image rec may run: an image that came from
// elsewhere (pulled, loaded) must carry a passing scan verdict in its
// config labels, unless allowUnscanned; then the returned reason goes into
// the result and a warning to the log. Images built or imported on this
// host are admitted as they are (their build reported its scan).
func (s *Service) admit(ctx context.Context, client *ctd.Client, rec images.Image, allowUnscanned bool) (string, error) {
	name := rec.Name
	origin := rec.Labels[LabelOrigin]
	if origin == "" {
		return "", nil
	}
	img, err := attest.Inspect(ctx, client.ContentStore(), rec.Target, platforms.Default())
	if err != nil {
		return "", fmt.Errorf("image %s: %w", name, err)
	}
	verdict := img.Labels[scan.LabelScan]
	if scan.Passing(verdict) {
		return "", nil
	}
	shown := verdict
	if shown == "" {
		shown = "missing"
	}
	reason := fmt.Sprintf("image %s came from %s and carries no passing scan verdict (%s: %s)", name, originPhrase(origin), scan.LabelScan, shown)
	if !allowUnscanned {
		return "", fmt.Errorf("%s; %s: %w", reason, s.advise("build it with the scan on, or pass --allow-unscanned to run it anyway", "build it with the scan on"), errdefs.ErrFailedPrecondition)
	}
	fmt.Fprintln(s.opts.log, "WARNING: "+reason+"; running it because of --allow-unscanned")
	return reason + "; run with --allow-unscanned", nil
}
