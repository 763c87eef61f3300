package cli

import (
	"fmt"

	"github.com/containerd/errdefs"
	"github.com/skillbuild/skillbuild/config"
	"github.com/skillbuild/skillbuild/skill"
	"github.com/skillbuild/skillbuild/skill/api"
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
		}, append(registryFlags(), signFlags()...)...),
		Action: pushAction,
	}
}

func pushAction(c *cli.Context) error {
	if c.NArg() < 1 || c.NArg() > 2 {
		return fmt.Errorf("expected SKILL_ID [REF], got %q: %w", c.Args().Slice(), errdefs.ErrInvalidArgument)
	}
	in := skillInput(c)
	in.ID = c.Args().First()
	req := api.PushRequest{SkillID: in.ID, Ref: c.Args().Get(1), Local: api.PushLocal{Input: &in, SignKey: c.String("sign-key"), SignPassword: []byte(c.String("sign-password"))}}
	return withService(c, func(svc *skill.Service) error {
		out, err := svc.Push(c.Context, req)
		if err != nil {
			return err
		}
		if c.Bool("json") {
			return writeJSON(c.App.Writer, out)
		}
		fmt.Fprintf(c.App.ErrWriter, "pushed %s: %s uploaded in %d blobs, %d already there\n", out.Ref, config.FormatSize(out.BytesPushed), out.Uploaded, out.Skipped)
		if out.Signed != nil {
			fmt.Fprintf(c.App.ErrWriter, "signed %s@%s: %s (key %.12s, %d signatures)\n", out.Ref, out.Digest, out.Signed.Artifact, out.Signed.KeyID, out.Signed.Signatures)
		}
		fmt.Fprintf(c.App.Writer, "%s@%s\n", out.Ref, out.Digest)
		return nil
	})
}
