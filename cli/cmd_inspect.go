package cli

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/containerd/errdefs"
	"github.com/skillbuild/skillbuild/config"
	"github.com/skillbuild/skillbuild/skill/api"
	"github.com/urfave/cli/v2"
)

func inspectCommand() *cli.Command {
	return &cli.Command{
		Name:  "inspect",
		Usage: "show a skill image's lock, labels, SBOM and scan verdict (local, or in a registry)",
		Description: `Reads atom-skill:<id>-v<version> (SKILL_ID) or REF from containerd, or REF
from its registry when containerd does not have it, without pulling it.`,
		ArgsUsage: "SKILL_ID|REF",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: config.FlagVersion, Value: "1", Usage: "skill `VERSION` (with SKILL_ID)"},
			&cli.StringFlag{Name: config.FlagRepo, Value: config.DefaultRepo, Usage: "image repository `NAME` (with SKILL_ID)"},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON document on stdout"},
		}, registryFlags()...),
		Action: inspectAction,
	}
}

func inspectAction(c *cli.Context) error {
	if c.NArg() != 1 {
		return fmt.Errorf("expected one SKILL_ID or REF, got %q: %w", c.Args().Slice(), errdefs.ErrInvalidArgument)
	}
	req := api.InspectRequest{Version: c.String(config.FlagVersion), Repo: c.String(config.FlagRepo)}
	if arg := c.Args().First(); api.IsRef(arg) {
		req.Ref = arg
	} else {
		req.SkillID = arg
	}
	if remote(c) {
		if err := refuseStaying(c, registryStay...); err != nil {
			return err
		}
	}
	return withOps(c, func(ops operations) error {
		out, err := ops.Inspect(c.Context, req)
		if err != nil {
			return err
		}
		if c.Bool("json") {
			return writeJSON(c.App.Writer, out)
		}
		return printInspect(c, *out)
	})
}

// printInspect renders the inspection for people.
func printInspect(c *cli.Context, out api.InspectResult) error {
	w := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "name\t%s (%s)\n", api.Familiar(out.Name), out.Source)
	fmt.Fprintf(w, "digest\t%s\n", out.Digest)
	fmt.Fprintf(w, "manifest\t%s\n", out.ManifestDigest)
	for _, k := range api.InspectLabels {
		if v := out.Labels[k]; v != "" {
			fmt.Fprintf(w, "%s\t%s\n", k, v)
		}
	}
	var v api.VerdictPredicate
	if out.Verdict != nil && json.Unmarshal(out.Verdict, &v) == nil {
		fmt.Fprintf(w, "verdict\t%s: %d packages, %d allowed, %d below threshold\n", v.Result, v.Packages, len(v.Allowed), len(v.BelowThreshold))
		if v.DB != nil {
			fmt.Fprintf(w, "database\tsha256:%s, newest record %s\n", v.DB.SHA256, v.DB.NewestModified.Format("2006-01-02 15:04 MST"))
		}
		for _, a := range v.Allowed {
			fmt.Fprintf(w, "allowed\t%s %s==%s: %s (until %s)\n", a.ID, a.Package, a.Version, a.Reason, a.Expires.Format("2006-01-02"))
		}
	} else {
		fmt.Fprintf(w, "verdict\tnone attached\n")
	}
	if out.SBOM == nil {
		fmt.Fprintf(w, "sbom\tnone attached\n")
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if out.Lock != "" {
		fmt.Fprintf(c.App.Writer, "\nlock:\n%s", out.Lock)
	}
	return nil
}
