package cli

import (
	"context"
	"time"

	"github.com/skillbuild/skillbuild/skill"
	"github.com/skillbuild/skillbuild/skill/api"
	"github.com/skillbuild/skillbuild/skill/client"
	"github.com/urfave/cli/v2"
)

// newService is the service for the global flags (and the registry flags
// of commands that have them). Extra options come after them.
func newService(c *cli.Context, extra ...skill.Opt) (*skill.Service, error) {
	opts := []skill.Opt{
		skill.WithContainerd(c.String("address"), c.String("namespace")),
		skill.WithRoot(c.String("root")),
		skill.WithLog(c.App.ErrWriter),
		skill.WithDebug(c.Bool("debug")),
		skill.WithBuilder(builderOf(c)),
		skill.WithRegistry(skill.Registry{DockerConfig: c.String("docker-config"), CAFiles: c.StringSlice("registry-ca"), Insecure: c.StringSlice("insecure-registry")}),
		skill.WithTrustedKeys(c.StringSlice("trusted-key")...),
	}
	if m := modeOf(c); m.enabled {
		opts = append(opts, skill.WithRootless(skill.Rootless{UID: m.uid, User: m.user, Paths: m.paths, Limits: m.limits}))
	}
	return skill.New(append(opts, extra...)...)
}

// operations are what the commands that can go to a server ask of the
// service: here (*skill.Service) or on the server --host names
// (*client.Client), one call each either way.
type operations interface {
	Install(ctx context.Context, req api.InstallRequest, progress skill.Progress) (*api.InstallResult, error)
	Scan(ctx context.Context, req api.ScanRequest, progress skill.Progress) (*api.ScanResult, error)
	List(ctx context.Context, req api.ListRequest) ([]api.SkillImage, error)
	Remove(ctx context.Context, req api.RemoveRequest) (*api.RemoveResult, error)
	Run(ctx context.Context, req api.RunRequest) (*api.RunResult, error)
	Inspect(ctx context.Context, req api.InspectRequest) (*api.InspectResult, error)
	Close(ctx context.Context) error
}

var (
	_ operations = (*skill.Service)(nil)
	_ operations = (*client.Client)(nil)
)

// newOps is the service of the command: the server's with --host, else
// one here.
func newOps(c *cli.Context) (operations, error) {
	if remote(c) {
		return newClient(c)
	}
	return newService(c)
}

// withOps runs op with the command's operations and closes them after.
func withOps(c *cli.Context, op func(operations) error) error {
	ops, err := newOps(c)
	if err != nil {
		return err
	}
	defer closeService(ops)
	return op(ops)
}

// withService runs op with a service for the command and closes it after.
func withService(c *cli.Context, op func(*skill.Service) error, extra ...skill.Opt) error {
	svc, err := newService(c, extra...)
	if err != nil {
		return err
	}
	defer closeService(svc)
	return op(svc)
}

// closeService closes svc, waiting at most a minute for what it tears
// down (a sweep, a pool's warm containers), however the command ended.
func closeService(svc interface{ Close(context.Context) error }) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return svc.Close(ctx)
}

// trustFlags are the flags of commands that take images from elsewhere.
func trustFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringSliceFlag{Name: "trusted-key", EnvVars: []string{"SKILLBUILD_TRUSTED_KEYS"},
			Usage: "require of images from elsewhere a signature (cosign's format) by a public key in `FILE` or in DIR/*.pub"},
	}
}

// signFlags are the flags of commands that sign what they push.
func signFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "sign-key", Usage: "sign what is pushed with the private key `FILE` (cosign.key or PEM; password in $COSIGN_PASSWORD)"},
		&cli.StringFlag{Name: "sign-password", Hidden: true, EnvVars: []string{"COSIGN_PASSWORD"}},
	}
}
