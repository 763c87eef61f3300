package cli

import (
	"fmt"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/skillbuild/skillbuild/skill/api"
	"github.com/urfave/cli/v2"
)

func rmCommand() *cli.Command {
	return &cli.Command{
		Name:  "rm",
		Usage: "remove a skill's image tags: one version with --version, otherwise every version of the id (exit 4 if there was none)",
		Description: "rm deletes tags only; `skillbuild prune` then frees the layers no remaining image uses.\n" +
			"A running container keeps working: containerd lets an image be removed while it is in use.",
		ArgsUsage: "SKILL_ID",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "version", Usage: "remove only this skill `VERSION`"},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON document on stdout"},
		},
		Action: rm,
	}
}

func rm(c *cli.Context) error {
	if c.NArg() != 1 {
		for _, a := range c.Args().Slice() {
			if strings.HasPrefix(a, "-") {
				return fmt.Errorf("rm: put flags before SKILL_ID (skillbuild rm --version N SKILL_ID): %w", errdefs.ErrInvalidArgument)
			}
		}
		return fmt.Errorf("rm takes exactly one SKILL_ID: %w", errdefs.ErrInvalidArgument)
	}
	return withOps(c, func(ops operations) error {
		out, err := ops.Remove(c.Context, api.RemoveRequest{SkillID: c.Args().First(), Version: c.String("version")})
		if out == nil {
			return err
		}
		if c.Bool("json") {
			return jsonResult(c.App.Writer, out, err, exitCode)
		}
		for _, s := range out.Removed {
			fmt.Fprintf(c.App.Writer, "removed %s (%s)\n", s.Tag, s.Digest)
		}
		return err
	})
}
