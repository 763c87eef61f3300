package cli

import (
	"fmt"

	"github.com/containerd/errdefs"
	"github.com/skillbuild/skillbuild/config"
	"github.com/skillbuild/skillbuild/skill"
	"github.com/skillbuild/skillbuild/skill/api"
	"github.com/urfave/cli/v2"
)

func loadCommand() *cli.Command {
	return &cli.Command{
		Name:  "load",
		Usage: "load skill images from an OCI archive or layout (install --output) into containerd",
		Description: `Imports every named image of FILE (an OCI or docker-save tar archive) or DIR (an
OCI image layout), unpacked for the runtime. A skill image is also tagged
atom-skill:<id>-v<version> (under --repo) from its labels; like a pulled image,
it runs only with a passing scan verdict (or --allow-unscanned).`,
		ArgsUsage: "FILE|DIR",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: config.FlagRepo, Value: config.DefaultRepo, Usage: "image repository `NAME` of the local skill tags"},
			&cli.BoolFlag{Name: "replace", Usage: "move a name that points at another image (never done otherwise)"},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON document on stdout"},
		},
		Action: loadAction,
	}
}

func loadAction(c *cli.Context) error {
	if c.NArg() != 1 {
		return fmt.Errorf("expected one FILE or DIR, got %q: %w", c.Args().Slice(), errdefs.ErrInvalidArgument)
	}
	return withService(c, func(svc *skill.Service) error {
		out, err := svc.Load(c.Context, api.LoadRequest{Path: c.Args().First(), Repo: c.String(config.FlagRepo), Replace: c.Bool("replace")})
		if err != nil {
			return err
		}
		if c.Bool("json") {
			return writeJSON(c.App.Writer, out)
		}
		for _, l := range out {
			for _, n := range l.Names {
				fmt.Fprintln(c.App.Writer, api.Familiar(n))
			}
		}
		return nil
	})
}
