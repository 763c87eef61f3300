package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	ctd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	"github.com/skillbuild/skillbuild/attest"
	"github.com/skillbuild/skillbuild/config"
	"github.com/skillbuild/skillbuild/engine"
	"github.com/skillbuild/skillbuild/store"
	"github.com/urfave/cli/v2"
)

// output is a parsed --output TYPE=PATH.
type output struct{ kind, path string }

// parseOutput reads --output oci-archive=FILE | oci-layout=DIR.
func parseOutput(s string) (output, error) {
	kind, path, ok := strings.Cut(s, "=")
	switch {
	case !ok || path == "":
		return output{}, fmt.Errorf("--output %q: expected oci-archive=FILE or oci-layout=DIR: %w", s, errdefs.ErrInvalidArgument)
	case kind != "oci-archive" && kind != "oci-layout":
		return output{}, fmt.Errorf("--output %q: unknown destination %q; expected oci-archive=FILE or oci-layout=DIR: %w", s, kind, errdefs.ErrInvalidArgument)
	}
	return output{kind: kind, path: path}, nil
}

// writeOutput exports the image name from containerd as o says, by the
// rules every builder's outputs follow (engine.Export): an archive
// replaces FILE atomically, a layout gets the image added.
func writeOutput(ctx context.Context, client *ctd.Client, name string, o output) error {
	eo, err := o.engineOutput()
	if err != nil {
		return err
	}
	return engine.Export(ctx, client, name, eo)
}

// engineOutput is the engine's output for o; it checks the path.
func (o output) engineOutput() (engine.Output, error) {
	if o.kind == "oci-layout" {
		return engine.OCILayout(o.path)
	}
	return engine.OCIArchive(o.path)
}

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
			&cli.BoolFlag{Name: "json", Usage: "print one JSON document on stdout"},
		},
		Action: loadAction,
	}
}

// loaded is one image `load` stored.
type loaded struct {
	Names  []string `json:"names"`
	Digest string   `json:"digest"`
}

func loadAction(c *cli.Context) error {
	if c.NArg() != 1 {
		return fmt.Errorf("expected one FILE or DIR, got %q: %w", c.Args().Slice(), errdefs.ErrInvalidArgument)
	}
	path := c.Args().First()
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("load %s: %w: %w", path, err, errdefs.ErrInvalidArgument)
	}
	client, err := store.Dial(c.Context, c.String("address"), c.String("namespace"))
	if err != nil {
		return err
	}
	defer client.Close()
	var imgs []store.ImportedImage
	if st.IsDir() {
		imgs, err = store.ImportOCILayout(c.Context, client, path, "", snapshotter)
	} else {
		f, ferr := os.Open(path)
		if ferr != nil {
			return fmt.Errorf("load %s: %w: %w", path, ferr, errdefs.ErrInvalidArgument)
		}
		defer f.Close()
		imgs, err = store.ImportOCIArchive(c.Context, client, f, "", snapshotter)
	}
	if err != nil {
		return err
	}
	out := []loaded{}
	for _, img := range imgs {
		names, err := nameLoaded(c, client, img, "archive "+filepath.Base(path))
		if err != nil {
			return err
		}
		out = append(out, loaded{Names: names, Digest: img.Digest.String()})
	}
	if c.Bool("json") {
		return writeJSON(c.App.Writer, out)
	}
	for _, l := range out {
		for _, n := range l.Names {
			fmt.Fprintln(c.App.Writer, store.Familiar(n))
		}
	}
	return nil
}

// nameLoaded records where a loaded image came from and, for a skill
// image, tags it as its skill too.
func nameLoaded(c *cli.Context, client *ctd.Client, img store.ImportedImage, origin string) ([]string, error) {
	is := client.ImageService()
	rec, err := is.Get(c.Context, img.Name)
	if err != nil {
		return nil, err
	}
	desc, err := attest.Inspect(c.Context, client.ContentStore(), rec.Target, platforms.Default())
	if err != nil {
		return nil, fmt.Errorf("loaded image %s: %w", img.Name, err)
	}
	extra, recLabels, err := skillNames(desc.Labels, c.String(config.FlagRepo), origin)
	if err != nil {
		return nil, err
	}
	names := []string{img.Name}
	for _, n := range append([]string{img.Name}, extra...) {
		if err := store.SetTag(c.Context, client, images.Image{Name: n, Target: rec.Target, Labels: recLabels}); err != nil {
			return nil, err
		}
	}
	return append(names, extra...), nil
}
