package cli

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/skillbuild/skillbuild/config"
	"github.com/skillbuild/skillbuild/skill/api"
	"github.com/urfave/cli/v2"
)

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
