package cli

import (
	"fmt"
	"io"
	"time"

	"github.com/containerd/errdefs"
	"github.com/skillbuild/skillbuild/skill"
	"github.com/skillbuild/skillbuild/skill/api"
	"github.com/urfave/cli/v2"
)

func dbCommand() *cli.Command {
	jsonFlag := &cli.BoolFlag{Name: "json", Usage: "print the manifest as JSON on stdout"}
	return &cli.Command{
		Name:  "db",
		Usage: "manage the offline vulnerability database (OSV PyPI export) under --root",
		Subcommands: []*cli.Command{
			{
				Name:      "update",
				Usage:     "download the OSV PyPI export (conditional GET) and install it",
				ArgsUsage: " ",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "url", Value: skill.DefaultDBURL, Usage: "export URL"},
					jsonFlag,
				},
				Action: func(c *cli.Context) error {
					if c.NArg() > 0 {
						return fmt.Errorf("db update takes no arguments: %w", errdefs.ErrInvalidArgument)
					}
					return withService(c, func(svc *skill.Service) error {
						m, changed, err := svc.DBUpdate(c.Context, c.String("url"))
						if err != nil {
							return err
						}
						return printManifest(c.App.Writer, c.Bool("json"), m, map[bool]string{true: "updated", false: "unchanged (not modified)"}[changed], &changed)
					})
				},
			},
			{
				Name:      "import",
				Usage:     "verify an OSV PyPI export zip and install it",
				ArgsUsage: "FILE",
				Flags:     []cli.Flag{jsonFlag},
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return fmt.Errorf("db import takes one FILE (an OSV PyPI all.zip): %w", errdefs.ErrInvalidArgument)
					}
					return withService(c, func(svc *skill.Service) error {
						m, err := svc.DBImport(c.Args().First())
						if err != nil {
							return err
						}
						return printManifest(c.App.Writer, c.Bool("json"), m, "imported", nil)
					})
				},
			},
			{
				Name:      "status",
				Usage:     "show the installed database's manifest",
				ArgsUsage: " ",
				Flags:     []cli.Flag{jsonFlag},
				Action: func(c *cli.Context) error {
					return withService(c, func(svc *skill.Service) error {
						m, err := svc.DBStatus()
						if err != nil {
							return err
						}
						return printManifest(c.App.Writer, c.Bool("json"), m, "installed", nil)
					})
				},
			},
		},
	}
}

// printManifest prints m as JSON (with "changed" for update) or as text.
func printManifest(w io.Writer, asJSON bool, m api.DBManifest, what string, changed *bool) error {
	if asJSON {
		doc := struct {
			api.DBManifest
			Changed *bool `json:"changed,omitempty"`
		}{m, changed}
		return writeJSON(w, doc)
	}
	age := time.Since(m.CheckedAt).Round(time.Minute)
	fmt.Fprintf(w, "vulnerability database %s\n", what)
	fmt.Fprintf(w, "  source:          %s\n", m.Source)
	fmt.Fprintf(w, "  records:         %d (%d withdrawn)\n", m.Records, m.Withdrawn)
	fmt.Fprintf(w, "  newest modified: %s\n", m.NewestModified.Format(time.RFC3339))
	fmt.Fprintf(w, "  fetched:         %s\n", m.FetchedAt.Format(time.RFC3339))
	fmt.Fprintf(w, "  last checked:    %s (%s ago)\n", m.CheckedAt.Format(time.RFC3339), age)
	fmt.Fprintf(w, "  sha256:          %s (%d bytes)\n", m.SHA256, m.Size)
	return nil
}
