package cli

import (
	"fmt"
	"io"
	"runtime/debug"
	"strings"
	"text/tabwriter"

	"github.com/skillbuild/skillbuild/config"
	"github.com/skillbuild/skillbuild/skill/api"
	"github.com/urfave/cli/v2"
)

func scanCommand() *cli.Command {
	return &cli.Command{
		Name:      "scan",
		Usage:     "check Python requirements against the offline vulnerability database",
		ArgsUsage: "[REQ...]",
		Description: "Exit status: 0 safe, 3 vulnerable, 2 bad input, 4 no database.\n" +
			"With --no-resolve the name==version pins given are the complete set to scan.",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "requirement", Aliases: []string{"r"}, Usage: "read requirements from `FILE`"},
			&cli.BoolFlag{Name: "no-resolve", Usage: "scan the given name==version pins as the complete set"},
			&cli.StringFlag{Name: config.FlagIndexURL, Usage: "package index `URL` used to resolve (as for install)"},
			&cli.StringSliceFlag{Name: config.FlagExtraIndexURL, Usage: "extra package index `URL`"},
			&cli.StringSliceFlag{Name: config.FlagFindLinks, Usage: "local `DIR` of wheels"},
			&cli.BoolFlag{Name: config.FlagAllowSdist, Usage: "allow source distributions while resolving"},
			&cli.StringFlag{Name: config.FlagBase, Value: config.DefaultBase, Usage: "base image `REF` to resolve in"},
			&cli.StringFlag{Name: "progress", Value: "auto", Usage: "resolve progress on stderr: auto|tty|plain|rawjson|quiet"},
			&cli.StringFlag{Name: "db", Usage: "database `PATH`: an OSV PyPI export zip, or a state root holding osv/ (default: --root)"},
			&cli.StringSliceFlag{Name: "allow", Usage: "accept a vulnerability: `ID`, or ID[@PACKAGE]:YYYY-MM-DD:REASON"},
			&cli.StringFlag{Name: "min-severity", Usage: "block only findings at or above `S` (low, medium, high, critical); unknown severity always blocks"},
			&cli.BoolFlag{Name: "allow-stale-db", Usage: "scan even with a database older than the maximum age"},
			&cli.BoolFlag{Name: "json", Usage: `print {"safe","packages","vulnerabilities","db",...} on stdout`},
		},
		Action: runScan,
	}
}

func runScan(c *cli.Context) error {
	if c.Bool("no-resolve") {
		// A scan of given pins is short, and what it allocates dies with
		// the process: collecting it costs more than it frees. Through the
		// per-package index it allocates a few MB, and the default pacing
		// ran two collections that doubled the whole command's time on a
		// loaded host; loading a whole export without an index keeps about
		// the same peak (its records are live) and runs several times
		// faster.
		debug.SetGCPercent(400)
	}
	in := skillInput(c)
	in.Requirements = c.Args().Slice()
	req := api.ScanRequest{NoResolve: c.Bool("no-resolve"), Allow: c.StringSlice("allow"), MinSeverity: c.String("min-severity"),
		AllowStaleDB: c.Bool("allow-stale-db"), Local: api.ScanLocal{Input: &in, DB: c.String("db")}}
	if remote(c) {
		var err error
		if req, err = wireScan(c, req); err != nil {
			return err
		}
	}
	return withOps(c, func(ops operations) error {
		var progress func(any)
		done := func() {}
		if !req.NoResolve {
			progress, done = renderProgress(c)
		}
		verdict, err := ops.Scan(c.Context, req, progress)
		done()
		if verdict == nil {
			return err
		}
		if c.Bool("json") {
			if perr := writeJSON(c.App.Writer, verdict); perr != nil {
				return perr
			}
		} else {
			printVerdict(c.App.Writer, *verdict)
		}
		return err
	})
}

func printVerdict(w io.Writer, v api.ScanResult) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if len(v.Findings)+len(v.Allowed)+len(v.Below) > 0 {
		fmt.Fprintln(tw, "PACKAGE\tVERSION\tID\tSEVERITY\tFIXED IN\tSTATUS\tSUMMARY")
		row := func(f api.Finding, status string) {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", f.Package, f.Version, f.ID, f.Severity,
				orDash(strings.Join(f.Fixed, ", ")), status, orDash(truncate(f.Summary, 60)))
		}
		for _, f := range v.Findings {
			row(f, "BLOCKED")
		}
		for _, f := range v.Allowed {
			row(f.Finding, "allowed: "+f.Reason)
		}
		for _, f := range v.Below {
			row(f, "below threshold")
		}
		tw.Flush()
		fmt.Fprintln(w)
	}
	verdict := "safe"
	if !v.Safe {
		verdict = "VULNERABLE"
	}
	fmt.Fprintf(w, "%s: %d packages, %d blocking, %d allowed, %d below threshold (db %d records, sha256 %.12s, %.1f days old)\n",
		verdict, len(v.Packages), len(v.Findings), len(v.Allowed), len(v.Below), v.DB.Records, v.DB.SHA256, v.DB.Age.Hours()/24)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func truncate(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
