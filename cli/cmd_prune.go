package cli

import (
	"fmt"

	"github.com/containerd/errdefs"
	"github.com/skillbuild/skillbuild/config"
	"github.com/skillbuild/skillbuild/skill/api"
	"github.com/urfave/cli/v2"
)

func pruneCommand() *cli.Command {
	return &cli.Command{
		Name: "prune",
		Usage: "free build cache, leftover staging images of interrupted builds, and layers no skill image uses " +
			"(base and skill images are never removed)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "keep-storage", Usage: "keep up to `SIZE` of build cache (e.g. 2g), least recently used goes first"},
			&cli.BoolFlag{Name: "all", Usage: "remove all build cache, also what images still use (next builds run every step again), and the build history; images are kept"},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON document on stdout"},
		},
		Action: prune,
	}
}

func prune(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("prune takes no arguments: %w", errdefs.ErrInvalidArgument)
	}
	req := api.PruneRequest{All: c.Bool("all")}
	if s := c.String("keep-storage"); s != "" && s != "0" {
		n, err := config.ParseSize(s)
		if err != nil {
			return fmt.Errorf("--keep-storage: %w", err)
		}
		req.KeepStorage = n
	}
	svc, err := newService(c)
	if err != nil {
		return err
	}
	defer closeService(svc)
	rep, err := svc.Prune(c.Context, req)
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return writeJSON(c.App.Writer, rep)
	}
	for _, s := range rep.Staging {
		fmt.Fprintf(c.App.Writer, "removed leftover staging image %s\n", s)
	}
	fmt.Fprintf(c.App.Writer, "removed %d build cache records (%s)\n", rep.CacheRecords, config.FormatSize(rep.CacheBytes))
	if c.Bool("all") {
		fmt.Fprintf(c.App.Writer, "removed %d build history records\n", rep.HistoryRecords)
	}
	fmt.Fprintf(c.App.Writer, "freed %d blobs (%s) and %d snapshots (%s)\n", rep.Freed.Blobs, config.FormatSize(rep.Freed.ContentBytes),
		rep.Freed.Snapshots, config.FormatSize(rep.Freed.SnapshotBytes))
	fmt.Fprintf(c.App.Writer, "containerd now holds %d blobs (%s) and %d snapshots (%s)\n", rep.After.Blobs, config.FormatSize(rep.After.ContentBytes),
		rep.After.Snapshots, config.FormatSize(rep.After.SnapshotBytes))
	if len(rep.KeptImages) > 0 {
		fmt.Fprintf(c.App.Writer, "kept %d image(s) that are not skill images (bases): ", len(rep.KeptImages))
		for i, n := range rep.KeptImages {
			if i > 0 {
				fmt.Fprint(c.App.Writer, ", ")
			}
			fmt.Fprint(c.App.Writer, api.Familiar(n))
		}
		fmt.Fprintln(c.App.Writer)
	}
	return nil
}
