package cli

import (
	"fmt"

	"github.com/containerd/errdefs"
	"github.com/skillbuild/skillbuild/config"
	"github.com/skillbuild/skillbuild/skill"
	"github.com/skillbuild/skillbuild/skill/api"
	"github.com/urfave/cli/v2"
)

func pullCommand() *cli.Command {
	return &cli.Command{
		Name:  "pull",
		Usage: "pull a skill image from a registry into containerd (unpacked, ready to run)",
		Description: `Pulls REF (HOST[:PORT]/PATH:TAG or @DIGEST), or the image of SKILL_ID when its
name names a registry (--repo HOST/PATH), with its attestations. A skill image
is also tagged atom-skill:<id>-v<version> (under --repo) from its labels, so
` + "`skillbuild run SKILL_ID`" + ` finds it. Names are set only after everything
was fetched and unpacked, and a name that points at another image is never
moved (unless --replace, or it was set by pulling the same REF before).`,
		ArgsUsage: "REF|SKILL_ID",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: config.FlagVersion, Value: "1", Usage: "skill `VERSION` (with SKILL_ID)"},
			&cli.StringFlag{Name: config.FlagRepo, Value: config.DefaultRepo, Usage: "image repository `NAME` of the local skill tag"},
			&cli.BoolFlag{Name: "base", Usage: "pull a base image to build skills on (install builds only on an image imported or pulled as a base)"},
			&cli.BoolFlag{Name: "replace", Usage: "move a name that points at another image (never done otherwise)"},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON document on stdout"},
		}, append(registryFlags(), trustFlags()...)...),
		Action: pullAction,
	}
}

func pullAction(c *cli.Context) error {
	if c.NArg() != 1 {
		return fmt.Errorf("expected one REF or SKILL_ID, got %q: %w", c.Args().Slice(), errdefs.ErrInvalidArgument)
	}
	req := api.PullRequest{Version: c.String(config.FlagVersion), Repo: c.String(config.FlagRepo), Base: c.Bool("base"), Replace: c.Bool("replace")}
	if arg := c.Args().First(); api.IsRef(arg) {
		req.Ref = arg
	} else {
		req.SkillID = arg
	}
	return withService(c, func(svc *skill.Service) error {
		res, err := svc.Pull(c.Context, req)
		if err != nil {
			return err
		}
		if c.Bool("json") {
			return writeJSON(c.App.Writer, res)
		}
		fmt.Fprintf(c.App.ErrWriter, "pulled %s: %s fetched\n", res.Ref, config.FormatSize(res.BytesFetched))
		for _, n := range res.Names {
			fmt.Fprintln(c.App.Writer, api.Familiar(n))
		}
		return nil
	})
}
