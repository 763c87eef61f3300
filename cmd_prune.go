package main

import (
	"fmt"
	"os"

	"github.com/containerd/errdefs"
	"github.com/skillbuild/skillbuild/build"
	"github.com/skillbuild/skillbuild/config"
	"github.com/urfave/cli/v2"
)

func pruneCommand() *cli.Command {
	return &cli.Command{
		Name: "prune",
		Usage: "free build cache, leftover staging images of interrupted builds, and layers no skill image uses " +
			"(base and skill images are never removed)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "keep-storage", Usage: "keep up to `SIZE` of build cache (e.g. 2g), least recently used goes first"},
			&cli.BoolFlag{Name: "all", Usage: "remove all build cache, also what images still use (next builds run every step again); images are kept"},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON document on stdout"},
		},
		Action: prune,
	}
}

func prune(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("prune takes no arguments: %w", errdefs.ErrInvalidArgument)
	}
	var opts []build.PruneOpt
	if c.Bool("all") {
		opts = append(opts, build.WithPruneAll())
	}
	if s := c.String("keep-storage"); s != "" && s != "0" {
		n, err := config.ParseSize(s)
		if err != nil {
			return fmt.Errorf("--keep-storage: %w", err)
		}
		opts = append(opts, build.WithKeepStorage(n))
	}
	eng, err := newEngine(c)
	if err != nil {
		return err
	}
	defer eng.Close()
	rep, err := eng.Prune(c.Context, opts...)
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return writeJSON(os.Stdout, rep)
	}
	for _, s := range rep.Staging {
		fmt.Printf("removed leftover staging image %s\n", s)
	}
	fmt.Printf("removed %d build cache records (%s)\n", rep.CacheRecords, build.FormatSize(rep.CacheBytes))
	fmt.Printf("freed %d blobs (%s) and %d snapshots (%s)\n", rep.Freed.Blobs, build.FormatSize(rep.Freed.ContentBytes),
		rep.Freed.Snapshots, build.FormatSize(rep.Freed.SnapshotBytes))
	fmt.Printf("containerd now holds %d blobs (%s) and %d snapshots (%s)\n", rep.After.Blobs, build.FormatSize(rep.After.ContentBytes),
		rep.After.Snapshots, build.FormatSize(rep.After.SnapshotBytes))
	if len(rep.KeptImages) > 0 {
		fmt.Printf("kept %d image(s) that are not skill images (bases): ", len(rep.KeptImages))
		for i, n := range rep.KeptImages {
			if i > 0 {
				fmt.Print(", ")
			}
			fmt.Print(build.Familiar(n))
		}
		fmt.Println()
	}
	return nil
}
