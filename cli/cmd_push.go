package cli

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/containerd/errdefs"
	"github.com/skillbuild/skillbuild/config"
	"github.com/skillbuild/skillbuild/registry"
	"github.com/skillbuild/skillbuild/store"
	"github.com/urfave/cli/v2"
)

// registryFlags are the flags of every command that talks to a registry.
func registryFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "docker-config", EnvVars: []string{"DOCKER_CONFIG"}, Usage: "`DIR` of the Docker config.json with registry credentials (auths, credential helpers; default ~/.docker)"},
		&cli.StringSliceFlag{Name: "registry-ca", EnvVars: []string{"SKILLBUILD_REGISTRY_CA"}, Usage: "trust the PEM CA certificates in `FILE` for registries, besides the system's"},
		&cli.StringSliceFlag{Name: "insecure-registry", EnvVars: []string{"SKILLBUILD_INSECURE_REGISTRY"}, Usage: "reach registry `HOST[:PORT]` over plain HTTP (never any other)"},
	}
}

// registryClient builds the registry client from registryFlags.
func registryClient(c *cli.Context) (*registry.Client, error) {
	opts := []registry.Opt{registry.WithDockerConfigDir(c.String("docker-config")), registry.WithInsecureHosts(c.StringSlice("insecure-registry")...)}
	for _, f := range c.StringSlice("registry-ca") {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("--registry-ca: %w: %w", err, errdefs.ErrInvalidArgument)
		}
		opts = append(opts, registry.WithRootCAs(b))
	}
	return registry.New(opts...)
}

func pushCommand() *cli.Command {
	return &cli.Command{
		Name:  "push",
		Usage: "push a skill's image to a registry (only the layers it lacks; the tag moves last)",
		Description: `Pushes atom-skill:<id>-v<version> (its manifest, or its index with the SBOM and
scan-verdict attestations) to REF, a full reference HOST[:PORT]/PATH:TAG. REF
may be a template with {id} and {version}. Without REF the image's own name
is used, which must then name a registry (--repo HOST/PATH).
Credentials come from the Docker config file (docker login HOST).`,
		ArgsUsage: "SKILL_ID [REF]",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: config.FlagVersion, Value: "1", Usage: "skill `VERSION`"},
			&cli.StringFlag{Name: config.FlagRepo, Value: config.DefaultRepo, Usage: "image repository `NAME`"},
			&cli.StringFlag{Name: config.FlagFile, Aliases: []string{"f"}, Usage: "skill.yaml `FILE`"},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON document on stdout"},
		}, registryFlags()...),
		Action: pushAction,
	}
}

// pushOutput is the --json document of `skillbuild push`.
type pushOutput struct {
	SkillID  string `json:"skill_id"`
	Version  string `json:"version"`
	ImageTag string `json:"image_tag"`
	registry.PushResult
}

func pushAction(c *cli.Context) error {
	if c.NArg() < 1 || c.NArg() > 2 {
		return fmt.Errorf("expected SKILL_ID [REF], got %q: %w", c.Args().Slice(), errdefs.ErrInvalidArgument)
	}
	in := skillInput(c)
	in.ID = c.Args().First()
	skill, err := config.Load(in)
	if err != nil {
		return err
	}
	out, err := pushSkill(c, skill, c.Args().Get(1))
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return writeJSON(c.App.Writer, out)
	}
	reportPush(c.App.ErrWriter, out.PushResult)
	fmt.Fprintf(c.App.Writer, "%s@%s\n", out.Ref, out.Digest)
	return nil
}

// pushSkill pushes the skill's local image to ref (a template; empty: the
// image's own name).
func pushSkill(c *cli.Context, skill config.Skill, ref string) (pushOutput, error) {
	name, err := store.ImageName(skill.Tag())
	if err != nil {
		return pushOutput{}, err
	}
	out := pushOutput{SkillID: skill.ID, Version: skill.Version, ImageTag: store.Familiar(name)}
	if ref == "" {
		if !registry.NamesRegistry(skill.Tag()) {
			return out, fmt.Errorf("push %s: give REF (HOST[:PORT]/PATH:TAG, or a template with {id} and {version}); the image's name names no registry: %w",
				out.ImageTag, errdefs.ErrInvalidArgument)
		}
		ref = name
	}
	target, err := registry.ExpandRef(ref, skill.ID, skill.Version)
	if err != nil {
		return out, err
	}
	rc, err := registryClient(c)
	if err != nil {
		return out, err
	}
	client, err := store.Dial(c.Context, c.String("address"), c.String("namespace"))
	if err != nil {
		return out, err
	}
	defer client.Close()
	img, err := client.ImageService().Get(c.Context, name)
	if errdefs.IsNotFound(err) {
		return out, &notFoundError{msg: fmt.Sprintf("image %s not found, run `skillbuild install %s` first", out.ImageTag, skill.ID)}
	}
	if err != nil {
		return out, err
	}
	ctx, done, err := client.WithLease(c.Context)
	if err != nil {
		return out, err
	}
	defer done(context.WithoutCancel(ctx)) //nolint:errcheck
	out.PushResult, err = rc.Push(ctx, client.ContentStore(), img.Target, target.String())
	return out, err
}

// reportPush says on stderr what a push moved.
func reportPush(w io.Writer, r registry.PushResult) {
	fmt.Fprintf(w, "pushed %s: %s uploaded in %d blobs, %d already there\n", r.Ref, config.FormatSize(r.BytesPushed), r.Uploaded, r.Skipped)
}
