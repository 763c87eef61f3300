package cli

import (
	"context"
	"fmt"
	"io"

	ctd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	"github.com/skillbuild/skillbuild/attest"
	"github.com/skillbuild/skillbuild/registry"
	"github.com/skillbuild/skillbuild/scan"
	"github.com/urfave/cli/v2"
)

// pullForRun pulls the image of a run as --pull says: always, when
// missing, or never. By default an image whose name names a registry is
// pulled when missing.
func pullForRun(c *cli.Context, client *ctd.Client, name string) error {
	mode := c.String("pull")
	if mode == "" {
		mode = "never"
		if registry.NamesRegistry(name) {
			mode = "missing"
		}
	}
	switch mode {
	case "never":
		return nil
	case "missing":
		_, err := client.ImageService().Get(c.Context, name)
		if err == nil || !errdefs.IsNotFound(err) {
			return err
		}
	case "always":
	default:
		return fmt.Errorf("--pull %q: expected missing, always or never: %w", mode, errdefs.ErrInvalidArgument)
	}
	if !registry.NamesRegistry(name) {
		return fmt.Errorf("--pull %s: %s names no registry to pull from: %w", mode, name, errdefs.ErrInvalidArgument)
	}
	res, err := pullImage(c, client, name)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.ErrWriter, "pulled %s: %d bytes fetched\n", res.Ref, res.BytesFetched)
	return nil
}

// admit decides whether the image rec may run: an image that came from
// elsewhere (pulled, loaded) must carry a passing scan verdict in its
// config labels, unless allowUnscanned; then the returned reason goes into
// the result and a warning to stderr. Images built or imported on this
// host are admitted as they are (their build reported its scan).
func admit(ctx context.Context, client *ctd.Client, rec images.Image, allowUnscanned bool, stderr io.Writer) (string, error) {
	name := rec.Name
	origin := rec.Labels[labelOrigin]
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
	reason := fmt.Sprintf("image %s came from a %s and carries no passing scan verdict (%s: %s)", name, origin, scan.LabelScan, shown)
	if !allowUnscanned {
		return "", fmt.Errorf("%s; build it with the scan on, or pass --allow-unscanned to run it anyway: %w", reason, errdefs.ErrFailedPrecondition)
	}
	fmt.Fprintln(stderr, "WARNING: "+reason+"; running it because of --allow-unscanned")
	return reason + "; run with --allow-unscanned", nil
}
