package cli

import (
	"fmt"

	"github.com/containerd/errdefs"
	"github.com/skillbuild/skillbuild/config"
	"github.com/skillbuild/skillbuild/store"
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
	layout, archive, rootfs, name := c.String("oci-layout"), c.String("oci-archive"), c.String("rootfs"), c.String("name")
	n := 0
	for _, s := range []string{layout, archive, rootfs} {
		if s != "" {
			n++
		}
	}
	if n != 1 {
		return fmt.Errorf("give exactly one of --oci-layout, --oci-archive, --rootfs: %w", errdefs.ErrInvalidArgument)
	}
	if rootfs != "" && name == "" {
		return fmt.Errorf("--rootfs needs --name REF: %w", errdefs.ErrInvalidArgument)
	}
	client, err := dial(c)
	if err != nil {
		return err
	}
	defer client.Close()
	var imgs []store.ImportedImage
	switch {
	case rootfs != "":
		var img store.ImportedImage
		img, err = store.ImportRootfs(c.Context, client, rootfs, name, "overlayfs")
		imgs = append(imgs, img)
	case layout != "":
		imgs, err = store.ImportOCILayout(c.Context, client, layout, name, "overlayfs")
	default:
		f, ferr := config.OpenInput(archive, 0)
		if ferr != nil {
			return fmt.Errorf("--oci-archive: %w", ferr)
		}
		defer f.Close()
		imgs, err = store.ImportOCIArchive(c.Context, client, f, name, "overlayfs")
	}
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
}
