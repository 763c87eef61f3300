package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/containerd/errdefs"
	bkclient "github.com/moby/buildkit/client"
	"github.com/skillbuild/skillbuild/config"
	"github.com/skillbuild/skillbuild/engine"
	"github.com/skillbuild/skillbuild/scan"
	"github.com/urfave/cli/v2"
)

// resolveRequirements turns the arguments and -r files into the exact set
// `install` would install, with the same resolve step in the same base
// image. The requirements are parsed once, by config.Load, as for install;
// the policy is scanPolicy's (scan takes the ID shorthand of --allow,
// which install does not), so the allow entries are not the skill's here.
func resolveRequirements(c *cli.Context) ([]scan.Package, error) {
	in := skillInput(c)
	in.Requirements = c.Args().Slice()
	in.Allow = nil
	ch, done := progress(c)
	pkgs, err := resolvePackages(c.Context, envOf(c), in, ch)
	done()
	return pkgs, err
}

// resolvePackages resolves the requirements of in (its index, base and
// sdist settings) like install does. status receives the progress and is
// closed when it returns.
func resolvePackages(ctx context.Context, e env, in config.Input, status chan *bkclient.SolveStatus) ([]scan.Package, error) {
	in.ID, in.Version = "scan", "1"
	skill, err := config.Load(in)
	if err == nil {
		var eng *engine.Engine
		if eng, err = newEngine(ctx, e); err == nil {
			defer eng.Close()
			locked, err := eng.Resolve(ctx, skill, status)
			if err != nil {
				return nil, err
			}
			return scan.Packages(locked), nil
		}
	}
	if status != nil {
		close(status)
	}
	return nil, err
}

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
	policy, err := scanPolicy(c)
	if err != nil {
		return err
	}
	pkgs, err := scanPackages(c)
	if err != nil {
		return err
	}
	db, err := openScanDB(c)
	if err != nil {
		return err
	}
	verdict, err := scan.Check(db, pkgs, policy, time.Now())
	if err != nil && !isVulnerable(err) {
		return err
	}
	for _, w := range verdict.Warnings {
		fmt.Fprintln(c.App.ErrWriter, "skillbuild: warning:", w)
	}
	if c.Bool("json") {
		if perr := writeJSON(c.App.Writer, verdict); perr != nil {
			return perr
		}
	} else {
		printVerdict(c.App.Writer, verdict)
	}
	return err
}

func scanPolicy(c *cli.Context) (config.Policy, error) {
	return parseScanPolicy(c.String("min-severity"), c.Bool("allow-stale-db"), c.StringSlice("allow"))
}

// parseScanPolicy is scan's policy from its --min-severity,
// --allow-stale-db and --allow values.
func parseScanPolicy(minSeverity string, allowStale bool, allow []string) (config.Policy, error) {
	p := config.Policy{MinSeverity: strings.ToLower(minSeverity), AllowStaleDB: allowStale}
	if err := config.ValidateSeverity(p.MinSeverity); err != nil {
		return p, err
	}
	for _, s := range allow {
		if strings.Contains(s, ":") {
			a, err := config.ParseAllow(s)
			if err != nil {
				return p, err
			}
			p.Allow = append(p.Allow, a)
			continue
		}
		id, pkg, _ := strings.Cut(s, "@")
		if id == "" {
			return p, fmt.Errorf("--allow %q: empty id: %w", s, errdefs.ErrInvalidArgument)
		}
		p.Allow = append(p.Allow, config.AllowEntry{ID: id, Package: pkg, Reason: "--allow on the command line"})
	}
	return p, nil
}

// scanPackages reads the requirements from args and -r files and returns the
// set to scan: the pins themselves with --no-resolve, else the resolution.
func scanPackages(c *cli.Context) ([]scan.Package, error) {
	files := c.StringSlice("requirement")
	if c.NArg() == 0 && len(files) == 0 {
		return nil, fmt.Errorf("nothing to scan: give requirements as arguments or with -r FILE: %w", errdefs.ErrInvalidArgument)
	}
	if !c.Bool("no-resolve") {
		return resolveRequirements(c)
	}
	var pins []config.Pin
	if c.NArg() > 0 {
		p, err := config.ParsePins("args", strings.NewReader(strings.Join(c.Args().Slice(), "\n")))
		if err != nil {
			return nil, err
		}
		pins = append(pins, p...)
	}
	for _, f := range files {
		p, err := readRequirements(f, config.ParsePins)
		if err != nil {
			return nil, err
		}
		pins = append(pins, p...)
	}
	return pinnedPackages(pins)
}

// pinnedPackages is the set of pins to scan as it is; a name pinned twice
// is an error.
func pinnedPackages(pins []config.Pin) ([]scan.Package, error) {
	seen := map[string]config.Pin{}
	pkgs := make([]scan.Package, 0, len(pins))
	for _, p := range pins {
		if first, dup := seen[p.Name]; dup {
			return nil, fmt.Errorf("%s is pinned twice (%s:%d and %s:%d): %w", p.Name, first.Source, first.Line, p.Source, p.Line, errdefs.ErrInvalidArgument)
		}
		seen[p.Name] = p
		pkgs = append(pkgs, scan.Package{Name: p.Name, Version: p.Version})
	}
	return pkgs, nil
}

func readRequirements[T any](file string, parse func(string, io.Reader) ([]T, error)) ([]T, error) {
	data, err := config.ReadInput(file, config.MaxRequirementsSize)
	if err != nil {
		return nil, fmt.Errorf("requirements file: %w", err)
	}
	return parse(file, bytes.NewReader(data))
}

func openScanDB(c *cli.Context) (*scan.DB, error) {
	path := c.String("db")
	if path == "" {
		return scan.Open(c.String("root"))
	}
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return scan.Open(path)
	}
	return scan.OpenFile(path)
}

func printVerdict(w io.Writer, v scan.Verdict) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if len(v.Findings)+len(v.Allowed)+len(v.Below) > 0 {
		fmt.Fprintln(tw, "PACKAGE\tVERSION\tID\tSEVERITY\tFIXED IN\tSTATUS\tSUMMARY")
		row := func(f scan.Finding, status string) {
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

// isVulnerable reports whether err is a vulnerability refusal.
func isVulnerable(err error) bool {
	var ve *scan.VulnerableError
	return errors.As(err, &ve)
}
