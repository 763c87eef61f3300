package cli

import (
	"fmt"
	"strings"

	ctd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
	"github.com/skillbuild/skillbuild/config"
	"github.com/skillbuild/skillbuild/labels"
	"github.com/skillbuild/skillbuild/registry"
	"github.com/skillbuild/skillbuild/store"
	"github.com/urfave/cli/v2"
)

// labelOrigin is the image record label of an image that came from
// elsewhere (a registry or an archive): `run` admits such an image only
// with a passing scan verdict in its config labels.
const labelOrigin = "org.skillbuild.origin"

func pullCommand() *cli.Command {
	return &cli.Command{
		Name:  "pull",
		Usage: "pull a skill image from a registry into containerd (unpacked, ready to run)",
		Description: `Pulls REF (HOST[:PORT]/PATH:TAG or @DIGEST), or the image of SKILL_ID when its
name names a registry (--repo HOST/PATH), with its attestations. A skill image
is also tagged atom-skill:<id>-v<version> (under --repo) from its labels, so
` + "`skillbuild run SKILL_ID`" + ` finds it. Names are set only after everything
was fetched and unpacked.`,
		ArgsUsage: "REF|SKILL_ID",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: config.FlagVersion, Value: "1", Usage: "skill `VERSION` (with SKILL_ID)"},
			&cli.StringFlag{Name: config.FlagRepo, Value: config.DefaultRepo, Usage: "image repository `NAME` of the local skill tag"},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON document on stdout"},
		}, registryFlags()...),
		Action: pullAction,
	}
}

func pullAction(c *cli.Context) error {
	if c.NArg() != 1 {
		return fmt.Errorf("expected one REF or SKILL_ID, got %q: %w", c.Args().Slice(), errdefs.ErrInvalidArgument)
	}
	arg := c.Args().First()
	ref := arg
	if !strings.ContainsAny(arg, "/:@") {
		in := skillInput(c)
		in.ID = arg
		skill, err := config.Load(in)
		if err != nil {
			return err
		}
		if !registry.NamesRegistry(skill.Tag()) {
			return fmt.Errorf("pull %s: %s names no registry; give a full REF (HOST[:PORT]/PATH:TAG) or --repo HOST/PATH: %w", arg, skill.Tag(), errdefs.ErrInvalidArgument)
		}
		ref = skill.Tag()
	}
	client, err := store.Dial(c.Context, c.String("address"), c.String("namespace"))
	if err != nil {
		return err
	}
	defer client.Close()
	res, err := pullImage(c, client, ref)
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return writeJSON(c.App.Writer, res)
	}
	fmt.Fprintf(c.App.ErrWriter, "pulled %s: %s fetched\n", res.Ref, config.FormatSize(res.BytesFetched))
	for _, n := range res.Names {
		fmt.Fprintln(c.App.Writer, store.Familiar(n))
	}
	return nil
}

// pullImage pulls ref, names a skill image also by its skill tag (under
// --repo) and records where it came from.
func pullImage(c *cli.Context, client *ctd.Client, ref string) (registry.PullResult, error) {
	rc, err := registryClient(c)
	if err != nil {
		return registry.PullResult{}, err
	}
	repo := c.String(config.FlagRepo)
	if repo == "" {
		repo = config.DefaultRepo
	}
	namer := func(cfgLabels map[string]string) ([]string, map[string]string, error) {
		return skillNames(cfgLabels, repo, "registry")
	}
	return rc.Pull(c.Context, client, ref, registry.WithSnapshotter(snapshotter), registry.WithNamer(namer))
}

// skillNames names an image that came from elsewhere: its skill tag under
// repo when its config labels say it is a skill image, and the record
// labels `ls` and `run` read.
func skillNames(cfgLabels map[string]string, repo, origin string) ([]string, map[string]string, error) {
	rec := map[string]string{labelOrigin: origin}
	id, version := cfgLabels[labels.SkillID], cfgLabels[labels.SkillVersion]
	if id == "" || version == "" {
		return nil, rec, nil
	}
	for _, k := range []string{labels.SkillID, labels.SkillVersion, labels.LockDigest, labels.Packages, labels.BaseDigest} {
		if v := cfgLabels[k]; v != "" {
			rec[k] = v
		}
	}
	skill, err := config.Load(config.Input{ID: id, Version: version, Repo: repo, Set: map[string]bool{config.FlagRepo: true, config.FlagVersion: true}})
	if err != nil {
		return nil, nil, fmt.Errorf("the image's skill labels (%s=%q, %s=%q): %w", labels.SkillID, id, labels.SkillVersion, version, err)
	}
	name, err := store.ImageName(skill.Tag())
	if err != nil {
		return nil, nil, err
	}
	return []string{name}, rec, nil
}
