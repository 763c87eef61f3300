package cli

import (
	"fmt"

	"github.com/skillbuild/skillbuild/skill"
	"github.com/skillbuild/skillbuild/skill/api"
	"github.com/urfave/cli/v2"
)

func baseCommand() *cli.Command {
	return &cli.Command{
		Name:  "base",
		Usage: "manage base images",
		Subcommands: []*cli.Command{{
			Name:  "import",
			Usage: "import a base image offline: --oci-layout DIR | --oci-archive FILE | --rootfs DIR --name REF",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "oci-layout", Usage: "OCI image layout directory"},
				&cli.StringFlag{Name: "oci-archive", Usage: "OCI or docker-save tar archive"},
				&cli.StringFlag{Name: "rootfs", Usage: "root filesystem directory (must contain python3)"},
				&cli.StringFlag{Name: "name", Usage: "image reference to tag, e.g. docker.io/library/python:3.11-slim"},
				&cli.BoolFlag{Name: "json", Usage: "print the result as JSON"},
			},
			Action: baseImport,
		}},
	}
}

func baseImport(c *cli.Context) error {
	req := api.BaseImportRequest{OCILayout: c.String("oci-layout"), OCIArchive: c.String("oci-archive"), Rootfs: c.String("rootfs"), Name: c.String("name")}
	return withService(c, func(svc *skill.Service) error {
		imgs, err := svc.ImportBase(c.Context, req)
		if err != nil {
			return err
		}
		if c.Bool("json") {
			return writeJSON(c.App.Writer, imgs)
		}
		for _, img := range imgs {
			fmt.Fprintf(c.App.Writer, "%s %s\n", img.Name, img.Digest)
		}
		return nil
	})
}
