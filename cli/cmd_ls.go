package cli

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/containerd/errdefs"
	"github.com/skillbuild/skillbuild/config"
	"github.com/skillbuild/skillbuild/skill/api"
	"github.com/urfave/cli/v2"
)

func lsCommand() *cli.Command {
	return &cli.Command{
		Name:  "ls",
		Usage: "list skill images (base images and build leftovers are not listed)",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "unpacked", Usage: "also measure the unpacked (snapshot) size; walks the image's files"},
			&cli.BoolFlag{Name: "json", Usage: "print a JSON array on stdout"},
		},
		Action: ls,
	}
}

func ls(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("ls takes no arguments: %w", errdefs.ErrInvalidArgument)
	}
	return withOps(c, func(ops operations) error {
		imgs, err := ops.List(c.Context, api.ListRequest{Unpacked: c.Bool("unpacked")})
		if err != nil {
			return err
		}
		if c.Bool("json") {
			return writeJSON(c.App.Writer, imgs)
		}
		printImages(c.App.Writer, imgs, c.Bool("unpacked"))
		return nil
	})
}

func printImages(out io.Writer, imgs []api.SkillImage, unpacked bool) {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	head := "SKILL\tVERSION\tTAG\tDIGEST\tSIZE\tPACKAGES\tCREATED"
	if unpacked {
		head = "SKILL\tVERSION\tTAG\tDIGEST\tSIZE\tUNPACKED\tPACKAGES\tCREATED"
	}
	fmt.Fprintln(w, head)
	for _, s := range imgs {
		dg := s.Digest.String()
		if len(dg) > 19 {
			dg = dg[:19] // sha256: and 12 hex digits
		}
		size := config.FormatSize(s.Size)
		if unpacked {
			size += "\t" + config.FormatSize(s.Unpacked)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", s.SkillID, s.Version, s.Tag, dg, size, s.Packages, s.Created.Local().Format(time.DateTime))
	}
	w.Flush()
}
