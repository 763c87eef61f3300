package cli

import (
	"fmt"

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

// builderFlagValues are the builder flags' values, kept in env so every
// command that starts an engine (install, scan, prune, serve) uses them.
type builderFlagValues struct {
	builder, ca, cert, key, baseArchive, baseLayout string
}

func builderFlagsOf(c *cli.Context) builderFlagValues {
	return builderFlagValues{builder: c.String("builder"), ca: c.String("builder-ca"), cert: c.String("builder-cert"), key: c.String("builder-key"),
		baseArchive: c.String("base-archive"), baseLayout: c.String("base-layout")}
}

// embedded reports whether builds run on the default builder, whose image
// store is the local containerd.
func (b builderFlagValues) embedded() bool {
	return b.builder == "" || b.builder == engine.BuilderEmbedded
}

// opts converts the builder flags into engine options.
func (b builderFlagValues) opts() ([]engine.Opt, error) {
	opts := []engine.Opt{engine.WithBuilder(b.builder), engine.WithBuilderTLS(b.ca, b.cert, b.key)}
	switch {
	case b.baseArchive != "" && b.baseLayout != "":
		return nil, fmt.Errorf("--base-archive and --base-layout both name a base; give one: %w", errdefs.ErrInvalidArgument)
	case b.baseArchive != "":
		opts = append(opts, engine.WithBaseArchive(b.baseArchive))
	case b.baseLayout != "":
		opts = append(opts, engine.WithBaseLayout(b.baseLayout))
	}
	return opts, nil
}

// outputs parses --output and --load.
func outputs(c *cli.Context) ([]engine.Output, bool, error) {
	var outs []engine.Output
	for _, spec := range c.StringSlice("output") {
		o, err := parseOutput(spec)
		if err != nil {
			return nil, false, err
		}
		eo, err := o.engineOutput()
		if err != nil {
			return nil, false, err
		}
		outs = append(outs, eo)
	}
	return outs, c.Bool("load"), nil
}
