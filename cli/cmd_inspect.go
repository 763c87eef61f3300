package cli

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/skillbuild/skillbuild/attest"
	"github.com/skillbuild/skillbuild/config"
	"github.com/skillbuild/skillbuild/labels"
	"github.com/skillbuild/skillbuild/scan"
	"github.com/skillbuild/skillbuild/store"
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

// inspectOutput is the --json document of `skillbuild inspect`.
type inspectOutput struct {
	Name           string            `json:"name"`
	Source         string            `json:"source"` // containerd | registry
	Digest         string            `json:"digest"`
	ManifestDigest string            `json:"manifest_digest"`
	Labels         map[string]string `json:"labels"`
	// Lock is the hash-pinned lock from the image's label (when it fit).
	Lock string `json:"lock,omitempty"`
	// SBOM and Verdict are the attested predicates (null when the image
	// carries none).
	SBOM    json.RawMessage `json:"sbom"`
	Verdict json.RawMessage `json:"verdict"`
	// Attestations lists the predicate types of every statement.
	Attestations []string `json:"attestations"`
}

func inspectAction(c *cli.Context) error {
	if c.NArg() != 1 {
		return fmt.Errorf("expected one SKILL_ID or REF, got %q: %w", c.Args().Slice(), errdefs.ErrInvalidArgument)
	}
	name := c.Args().First()
	if !strings.ContainsAny(name, "/:@") {
		in := skillInput(c)
		in.ID = name
		skill, err := config.Load(in)
		if err != nil {
			return err
		}
		name = skill.Tag()
	}
	full, err := store.ImageName(name)
	if err != nil {
		return err
	}
	out := inspectOutput{Name: full, Source: "containerd"}
	client, err := store.Dial(c.Context, c.String("address"), c.String("namespace"))
	if err != nil {
		return err
	}
	defer client.Close()
	var (
		target   ocispec.Descriptor
		provider content.Provider = client.ContentStore()
	)
	img, err := client.ImageService().Get(c.Context, full)
	switch {
	case err == nil:
		target = img.Target
	case errdefs.IsNotFound(err) && strings.ContainsAny(c.Args().First(), "/:@"):
		rc, rerr := registryClient(c)
		if rerr != nil {
			return rerr
		}
		out.Source = "registry"
		if target, provider, err = rc.Open(c.Context, full); err != nil {
			return err
		}
	case errdefs.IsNotFound(err):
		return &notFoundError{msg: fmt.Sprintf("image %s not found in containerd; run `skillbuild install` or `skillbuild pull` first, or give a registry REF", store.Familiar(full))}
	default:
		return err
	}
	desc, err := attest.Inspect(c.Context, provider, target, platforms.Default())
	if err != nil {
		return err
	}
	out.Digest, out.ManifestDigest, out.Labels = desc.Digest.String(), desc.Manifest.String(), desc.Labels
	out.Lock = desc.Labels[labels.Lock]
	out.Attestations = []string{}
	for _, st := range desc.Statements {
		out.Attestations = append(out.Attestations, st.PredicateType)
	}
	if st := attest.Find(desc.Statements, attest.PredicateSPDX); st != nil {
		out.SBOM = st.Predicate
	}
	if st := attest.Find(desc.Statements, attest.PredicateVerdict); st != nil {
		out.Verdict = st.Predicate
	}
	if c.Bool("json") {
		return writeJSON(c.App.Writer, out)
	}
	return printInspect(c, out)
}

// printInspect renders the inspection for people.
func printInspect(c *cli.Context, out inspectOutput) error {
	w := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "name\t%s (%s)\n", store.Familiar(out.Name), out.Source)
	fmt.Fprintf(w, "digest\t%s\n", out.Digest)
	fmt.Fprintf(w, "manifest\t%s\n", out.ManifestDigest)
	for _, k := range []string{labels.SkillID, labels.SkillVersion, labels.LockDigest, labels.Packages, labels.Base, labels.BaseDigest, scan.LabelScan, scan.LabelScanDB, scan.LabelScanAllowed} {
		if v := out.Labels[k]; v != "" {
			fmt.Fprintf(w, "%s\t%s\n", k, v)
		}
	}
	var v scan.VerdictPredicate
	if out.Verdict != nil && json.Unmarshal(out.Verdict, &v) == nil {
		fmt.Fprintf(w, "verdict\t%s: %d packages, %d allowed, %d below threshold\n", v.Result, v.Packages, len(v.Allowed), len(v.BelowThreshold))
		if v.DB != nil {
			fmt.Fprintf(w, "database\tsha256:%s, checked %s\n", v.DB.SHA256, v.DB.CheckedAt.Format("2006-01-02 15:04 MST"))
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
