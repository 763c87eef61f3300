package cli

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/skillbuild/skillbuild/config"
	"github.com/skillbuild/skillbuild/skill/api"
	"github.com/skillbuild/skillbuild/skill/client"
	"github.com/urfave/cli/v2"
)

// remoteCommands go to the server --host names; hostFree commands ask
// nothing of a service and ignore it. Every other command refuses it.
var (
	remoteCommands = []string{"install", "run", "scan", "ls", "rm", "inspect"}
	hostFree       = []string{"version", "completion", "help", "h"}
)

// metaArgs is the app metadata key of the command line as parsed (after
// interspersed), which says which flags were given on it.
const metaArgs = "args"

// hostFlags are the global flags of a client of a server.
func hostFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "host", EnvVars: []string{"SKILLBUILD_HOST"},
			Usage: "send install, run, scan, ls, rm and inspect to the skillbuild serve at `ADDRESS` (unix:///PATH or tcp://HOST:PORT) instead of running them here"},
		&cli.StringFlag{Name: "token-file", EnvVars: []string{"SKILLBUILD_TOKEN_FILE"},
			Usage: "`FILE` holding the bearer token of a --host on TCP (or give the token in $SKILLBUILD_TOKEN)"},
		&cli.StringFlag{Name: "token", Hidden: true, EnvVars: []string{"SKILLBUILD_TOKEN"}},
	}
}

// remote reports whether the command goes to a server.
func remote(c *cli.Context) bool { return c.String("host") != "" }

// checkHost refuses --host (or SKILLBUILD_HOST) for a command that does
// not go over the API. serve is the server: only --host on its command
// line is refused, not a SKILLBUILD_HOST in the environment.
func checkHost(c *cli.Context) error {
	cmd := c.Args().First()
	if !remote(c) || cmd == "" || slices.Contains(remoteCommands, cmd) || slices.Contains(hostFree, cmd) {
		return nil
	}
	if cmd == "serve" {
		if givenFlags(c)["host"] {
			return fmt.Errorf("serve is the server: --host is for its clients: %w", errdefs.ErrInvalidArgument)
		}
		return nil
	}
	return fmt.Errorf("skillbuild %s does not go over the API (--host %s): only %s do; run it on the server's host: %w",
		cmd, c.String("host"), strings.Join(remoteCommands, ", "), errdefs.ErrInvalidArgument)
}

// toServer reports whether the command line args goes to a server: a
// command of remoteCommands with --host, or with envHost (the value of
// $SKILLBUILD_HOST).
func toServer(args []string, envHost string) bool {
	app := newApp(appDefaults{})
	args = interspersed(app, args)
	if len(args) < 2 {
		return false
	}
	var globals []string
	i := takeFlags(app.Flags, args, 1, &globals)
	host := envHost
	for j := 0; j < len(globals); j++ {
		name, value, hasValue := cutFlag(globals[j])
		if name != "host" {
			continue
		}
		if !hasValue && j+1 < len(globals) {
			j++
			value = globals[j]
		}
		host = value
	}
	return host != "" && i < len(args) && slices.Contains(remoteCommands, args[i])
}

// newClient is the client of the server --host names, with the token of
// --token-file or $SKILLBUILD_TOKEN.
func newClient(c *cli.Context) (*client.Client, error) {
	host, token := c.String("host"), c.String("token")
	if f := c.String("token-file"); f != "" {
		b, err := config.ReadInput(f, 4096)
		if err != nil {
			return nil, fmt.Errorf("--token-file: %w", err)
		}
		token = string(bytes.TrimSpace(b))
	}
	if strings.HasPrefix(host, "tcp://") && strings.TrimSpace(token) == "" {
		return nil, fmt.Errorf("--host %s is TCP: give the server's bearer token (its serve --token-file) with --token-file FILE or $SKILLBUILD_TOKEN: %w",
			host, errdefs.ErrInvalidArgument)
	}
	cl, err := client.New(host, client.WithToken(token))
	if err != nil {
		return nil, fmt.Errorf("--host: %w", err)
	}
	return cl, nil
}

// givenFlags are the flags given on the command line (not through the
// environment), by the name they were given with.
func givenFlags(c *cli.Context) map[string]bool {
	args, _ := c.App.Metadata[metaArgs].([]string)
	given := map[string]bool{}
	for _, a := range args {
		if a == "--" {
			break
		}
		if len(a) > 1 && a[0] == '-' {
			name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
			given[name] = true
		}
	}
	return given
}

// stayFlag is a flag of this host that cannot go to a server.
type stayFlag struct {
	names []string // the flag and its aliases
	why   string
}

// Flags no command can send to a server.
var (
	registryStay = []stayFlag{
		{[]string{"docker-config"}, "the server reaches registries with its own credentials"},
		{[]string{"registry-ca"}, "the server reaches registries with its own CAs"},
		{[]string{"insecure-registry"}, "the server reaches registries with its own settings"},
	}
	builderStay = []stayFlag{
		{[]string{"builder"}, "the server builds with its own builder"},
		{[]string{"builder-ca"}, "the server builds with its own builder"},
		{[]string{"builder-cert"}, "the server builds with its own builder"},
		{[]string{"builder-key"}, "the server builds with its own builder"},
		{[]string{"base-archive"}, "it names a file on this host"},
		{[]string{"base-layout"}, "it names a directory on this host"},
	}
	findLinksStay = stayFlag{[]string{config.FlagFindLinks}, "it names directories on this host"}
)

// refuseStaying refuses the first of flags given on the command line.
func refuseStaying(c *cli.Context, flags ...stayFlag) error {
	given := givenFlags(c)
	for _, f := range flags {
		for _, n := range f.names {
			if given[n] {
				return fmt.Errorf("--%s cannot go to a server (--host): %s: %w", f.names[0], f.why, errdefs.ErrInvalidArgument)
			}
		}
	}
	return nil
}

// refuseFindLinks refuses a skill whose find-links (from skill.yaml) are
// directories of this host.
func refuseFindLinks(s config.Skill) error {
	if len(s.Index.FindLinks) > 0 {
		return fmt.Errorf("index.find_links (%s) cannot go to a server (--host): it names directories on this host: %w",
			strings.Join(s.Index.FindLinks, ", "), errdefs.ErrInvalidArgument)
	}
	return nil
}

// wireInstall is the install request of the flags as it goes to a
// server: skill.yaml and -r files loaded here, their values in its fields.
func wireInstall(c *cli.Context, req api.InstallRequest) (api.InstallRequest, error) {
	stay := append(append([]stayFlag{
		{[]string{"output", "o"}, "it writes the image to a file or directory on this host"},
		{[]string{"load"}, "it puts the image into this host's containerd"},
		{[]string{"cache-from"}, "the API has no field for registry build cache"},
		{[]string{"cache-to"}, "the API has no field for registry build cache"},
		{[]string{"push"}, "the API has no field for a push; push from the server's host"},
		{[]string{"sign-key"}, "it names a private key on this host"},
		{[]string{"max-layers"}, "it is an experiment of a local build"},
		{[]string{"single-layer"}, "it is an experiment of a local build"},
		findLinksStay,
		{[]string{config.FlagDBWarnAge}, "the server's database ages apply"},
		{[]string{config.FlagDBMaxAge}, "the server's database ages apply"},
	}, registryStay...), builderStay...)
	if err := refuseStaying(c, stay...); err != nil {
		return req, err
	}
	s, err := config.Load(*req.Local.Input)
	if err != nil {
		return req, err
	}
	if err := refuseFindLinks(s); err != nil {
		return req, err
	}
	// The server scans with its defaults of the database's ages.
	def, err := config.LoadPolicy(config.Input{Set: map[string]bool{}})
	if err != nil {
		return req, err
	}
	if s.Policy.WarnAge != def.WarnAge || s.Policy.MaxAge != def.MaxAge {
		return req, fmt.Errorf("policy.db_warn_age and policy.db_max_age of %s cannot go to a server (--host): the server's database ages apply: %w",
			req.Local.Input.File, errdefs.ErrInvalidArgument)
	}
	return req.Wire(s), nil
}

// wireRun is the run request of the flags as it goes to a server. The
// server admits images from elsewhere under its operator's policy, so the
// admission flags stay here (and skill.yaml's policy does not travel).
func wireRun(c *cli.Context, req api.RunRequest) (api.RunRequest, error) {
	stay := append([]stayFlag{
		{[]string{"pull"}, "the server pulls nothing for a run; pull on the server's host"},
		{[]string{"allow-unscanned"}, "a server runs only images it verified"},
		{[]string{config.FlagAllow}, "the server admits images under its operator's policy"},
		{[]string{config.FlagMinSeverity}, "the server admits images under its operator's policy"},
		{[]string{config.FlagAllowStaleDB}, "the server admits images under its operator's policy"},
		{[]string{"trusted-key"}, "the server trusts its operator's keys"},
	}, registryStay...)
	if err := refuseStaying(c, stay...); err != nil {
		return req, err
	}
	if !c.Bool("require-limits") {
		return req, fmt.Errorf("--require-limits=false cannot go to a server (--host): the server holds limits as its operator set it up: %w", errdefs.ErrInvalidArgument)
	}
	s, err := config.Load(*req.Local.Input)
	if err != nil {
		return req, err
	}
	w := req.Wire(s)
	w.Local = api.RunLocal{Stdout: req.Local.Stdout, Stderr: req.Local.Stderr}
	return w, nil
}

// wireScan is the scan request of the flags as it goes to a server: the
// requirements (or pins) of the arguments and -r files read here.
func wireScan(c *cli.Context, req api.ScanRequest) (api.ScanRequest, error) {
	stay := append([]stayFlag{{[]string{"db"}, "it names a database on this host; the server scans with its own"}, findLinksStay}, builderStay...)
	if err := refuseStaying(c, stay...); err != nil {
		return req, err
	}
	in := *req.Local.Input
	if req.NoResolve {
		var pins []config.Pin
		if len(in.Requirements) > 0 {
			p, err := config.ParsePins("requirements", strings.NewReader(strings.Join(in.Requirements, "\n")))
			if err != nil {
				return req, err
			}
			pins = append(pins, p...)
		}
		for _, f := range in.RequirementFiles {
			b, err := config.ReadInput(f, config.MaxRequirementsSize)
			if err != nil {
				return req, fmt.Errorf("requirements file: %w", err)
			}
			p, err := config.ParsePins(f, bytes.NewReader(b))
			if err != nil {
				return req, err
			}
			pins = append(pins, p...)
		}
		w := req.Wire(config.Skill{})
		w.Requirements = api.PinLines(pins)
		return w, nil
	}
	// Loaded as the service loads what it resolves: the allow entries are
	// the scan's own.
	in.ID, in.Version, in.Allow = "scan", "1", nil
	s, err := config.Load(in)
	if err != nil {
		return req, err
	}
	if err := refuseFindLinks(s); err != nil {
		return req, err
	}
	return req.Wire(s), nil
}
