package cli

import (
	"github.com/skillbuild/skillbuild/skill"
	"github.com/urfave/cli/v2"
)

// builderFlags choose where builds run (global: install, scan and prune
// all start an engine).
func builderFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "builder", Value: skill.BuilderEmbedded, EnvVars: []string{"SKILLBUILD_BUILDER"},
			Usage: "where builds run: embedded (BuildKit in-process, containerd worker), embedded-oci (in-process, runc, no containerd), tcp://HOST:PORT or unix:///PATH (a buildkitd)"},
		&cli.StringFlag{Name: "builder-ca", Usage: "CA certificate `FILE` of a tcp:// builder"},
		&cli.StringFlag{Name: "builder-cert", Usage: "client certificate `FILE` for a tcp:// builder (mutual TLS)"},
		&cli.StringFlag{Name: "builder-key", Usage: "client key `FILE` for a tcp:// builder (mutual TLS)"},
		&cli.StringFlag{Name: "base-archive", Usage: "take the base image from an OCI archive `FILE` (builders without containerd)"},
		&cli.StringFlag{Name: "base-layout", Usage: "take the base image from an OCI layout `DIR` (builders without containerd)"},
	}
}

// outputFlags say where an image goes besides (or instead of) containerd.
func outputFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringSliceFlag{Name: "output", Aliases: []string{"o"}, Usage: "also write the image to `oci-archive=FILE` or oci-layout=DIR (the only destinations of an embedded-oci or remote build without --load)"},
		&cli.BoolFlag{Name: "load", Usage: "put the image of an embedded-oci or remote build into containerd (--address)"},
	}
}

// builderOf is the builder the global flags choose.
func builderOf(c *cli.Context) skill.Builder {
	return skill.Builder{Name: c.String("builder"), CA: c.String("builder-ca"), Cert: c.String("builder-cert"), Key: c.String("builder-key"),
		BaseArchive: c.String("base-archive"), BaseLayout: c.String("base-layout")}
}
