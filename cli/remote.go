package cli

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/skillbuild/skillbuild/config"
	"github.com/skillbuild/skillbuild/skill/client"
	"github.com/urfave/cli/v2"
)

// remoteCommands go to the server --host names; hostFree commands ask
// nothing of a service and ignore it. Every other command refuses it.
var (
	remoteCommands = []string{"install", "run", "scan", "ls", "rm", "inspect", "session"}
	hostFree       = []string{"version", "completion", "help", "h"}
)

// metaArgs is the app metadata key of the command line as parsed (after
// interspersed), which says which flags were given on it.
const metaArgs = "args"

// hostFlags are the global flags of a client of a server.
func hostFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "host", EnvVars: []string{"SKILLBUILD_HOST"},
			Usage: "send install, run, scan, ls, rm, inspect and session to the skillbuild serve at `ADDRESS` (unix:///PATH or tcp://HOST:PORT) instead of running them here"},
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
