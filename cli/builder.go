package cli

import (
	"fmt"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/skillbuild/skillbuild/engine"
	"github.com/urfave/cli/v2"
)

// builderFlags choose where builds run (global: install, scan and prune
// all start an engine).
func builderFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "builder", Value: engine.BuilderEmbedded, EnvVars: []string{"SKILLBUILD_BUILDER"},
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

// builderOpts converts the builder flags into engine options.
func builderOpts(c *cli.Context) ([]engine.Opt, error) {
	opts := []engine.Opt{engine.WithBuilder(c.String("builder")),
		engine.WithBuilderTLS(c.String("builder-ca"), c.String("builder-cert"), c.String("builder-key"))}
	archive, layout := c.String("base-archive"), c.String("base-layout")
	switch {
	case archive != "" && layout != "":
		return nil, fmt.Errorf("--base-archive and --base-layout both name a base; give one: %w", errdefs.ErrInvalidArgument)
	case archive != "":
		opts = append(opts, engine.WithBaseArchive(archive))
	case layout != "":
		opts = append(opts, engine.WithBaseLayout(layout))
	}
	return opts, nil
}

// embeddedBuilder reports whether builds run on the default builder,
// whose image store is the local containerd.
func embeddedBuilder(c *cli.Context) bool {
	b := c.String("builder")
	return b == "" || b == engine.BuilderEmbedded
}

// outputs parses --output and --load.
func outputs(c *cli.Context) ([]engine.Output, bool, error) {
	var outs []engine.Output
	for _, spec := range c.StringSlice("output") {
		kind, dest, ok := strings.Cut(spec, "=")
		var (
			o   engine.Output
			err error
		)
		switch {
		case !ok:
			err = fmt.Errorf("--output %q: expected oci-archive=FILE or oci-layout=DIR: %w", spec, errdefs.ErrInvalidArgument)
		case kind == "oci-archive":
			o, err = engine.OCIArchive(dest)
		case kind == "oci-layout":
			o, err = engine.OCILayout(dest)
		default:
			err = fmt.Errorf("--output %q: unknown destination %q; expected oci-archive=FILE or oci-layout=DIR: %w", spec, kind, errdefs.ErrInvalidArgument)
		}
		if err != nil {
			return nil, false, err
		}
		outs = append(outs, o)
	}
	return outs, c.Bool("load"), nil
}
