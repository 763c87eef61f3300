package cli

import (
	"fmt"
	"io"

	"github.com/skillbuild/skillbuild/config"
	"github.com/skillbuild/skillbuild/skill"
	"github.com/skillbuild/skillbuild/skill/api"
	"github.com/urfave/cli/v2"
)

// skillFlags are the flags that describe a skill build (install, scan).
func skillFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: config.FlagFile, Aliases: []string{"f"}, Usage: "skill.yaml `FILE`"},
		&cli.StringSliceFlag{Name: config.FlagRequirement, Aliases: []string{"r"}, Usage: "requirements `FILE` (PEP 508 lines and comments only)"},
		&cli.StringFlag{Name: config.FlagIndexURL, Usage: "package index `URL` (PEP 503 simple API)"},
		&cli.StringSliceFlag{Name: config.FlagExtraIndexURL, Usage: "extra package index `URL`"},
		&cli.StringSliceFlag{Name: config.FlagFindLinks, Usage: "local `DIR` of wheels"},
		&cli.BoolFlag{Name: config.FlagAllowSdist, Usage: "allow source distributions (their build code runs, without network)"},
		&cli.StringFlag{Name: config.FlagBase, Value: config.DefaultBase, Usage: "base image `REF` with python3"},
		&cli.StringSliceFlag{Name: config.FlagAllow, Usage: "accept a vulnerability: `ID[@PACKAGE]:YYYY-MM-DD:REASON`"},
		&cli.StringFlag{Name: config.FlagMinSeverity, Usage: "only findings at or above `SEVERITY` (low|medium|high|critical) block"},
		&cli.BoolFlag{Name: config.FlagAllowStaleDB, Usage: "scan with a vulnerability database older than --db-max-age"},
		&cli.StringFlag{Name: config.FlagDBWarnAge, Value: config.DefaultDBWarnAge, Usage: "warn when the database is older than `AGE`"},
		&cli.StringFlag{Name: config.FlagDBMaxAge, Value: config.DefaultDBMaxAge, Usage: "refuse when the database is older than `AGE`"},
		&cli.BoolFlag{Name: "json", Usage: "print one JSON document on stdout"},
	}
}

func installCommand() *cli.Command {
	return &cli.Command{
		Name:      "install",
		Usage:     "build (or reuse) the image of a skill: resolve, scan, install, tag atom-skill:<id>-v<version>",
		ArgsUsage: "SKILL_ID [REQ...]",
		Flags: append(append(append(skillFlags(), registryFlags()...),
			&cli.StringFlag{Name: config.FlagVersion, Value: "1", Usage: "skill `VERSION` (positive integer or dotted numbers)"},
			&cli.StringFlag{Name: config.FlagRepo, Value: config.DefaultRepo, Usage: "image repository `NAME`"},
			&cli.StringFlag{Name: config.FlagBuildMemory, Value: config.DefaultBuildMemory, Usage: "memory limit of each build step"},
			&cli.StringFlag{Name: config.FlagBuildCPUs, Value: config.DefaultBuildCPUs, Usage: "CPU limit of each build step"},
			&cli.StringFlag{Name: config.FlagBuildPids, Value: config.DefaultBuildPids, Usage: "process limit of the build steps"},
			&cli.StringFlag{Name: config.FlagBuildTimeout, Value: config.DefaultBuildTimeout, Usage: "wall-clock limit of the whole build"},
			&cli.BoolFlag{Name: config.FlagNoScan, Usage: "skip the vulnerability scan (loud, and recorded in the image labels)"},
			&cli.BoolFlag{Name: "refresh", Usage: "resolve every requirement again, even if the requirements did not change or only add to an earlier image's"},
			&cli.IntFlag{Name: "max-layers", Hidden: true, Usage: "distribution layers at most before bucketing (experiments)"},
			&cli.BoolFlag{Name: "single-layer", Hidden: true, Usage: "install the whole lock in one pip step and layer (benchmarks)"},
			&cli.StringFlag{Name: "progress", Value: "auto", Usage: "progress output on stderr: auto|tty|plain|rawjson|quiet"},
			&cli.StringSliceFlag{Name: "cache-from", Usage: "import build cache from registry `REF` ({id} and {version} are filled in)"},
			&cli.StringFlag{Name: "cache-to", Usage: "export the build cache (mode=max: every step, every distribution's layer) to registry `REF`"},
			&cli.StringFlag{Name: "push", Usage: "after the build, push the image to `REF` (HOST[:PORT]/PATH:TAG; {id} and {version} are filled in)"},
		), append(outputFlags(), signFlags()...)...),
		Action: install,
	}
}

// skillInput collects the flags of a skill command into config.Input.
func skillInput(c *cli.Context) config.Input {
	in := config.Input{
		Version:          c.String(config.FlagVersion),
		Repo:             c.String(config.FlagRepo),
		Base:             c.String(config.FlagBase),
		File:             c.String(config.FlagFile),
		RequirementFiles: c.StringSlice(config.FlagRequirement),
		IndexURL:         c.String(config.FlagIndexURL),
		ExtraIndexURL:    c.StringSlice(config.FlagExtraIndexURL),
		FindLinks:        c.StringSlice(config.FlagFindLinks),
		AllowSdist:       c.Bool(config.FlagAllowSdist),
		BuildMemory:      c.String(config.FlagBuildMemory),
		BuildCPUs:        c.String(config.FlagBuildCPUs),
		BuildPids:        c.String(config.FlagBuildPids),
		BuildTimeout:     c.String(config.FlagBuildTimeout),
		Memory:           c.String(config.FlagMemory),
		CPUs:             c.String(config.FlagCPUs),
		Pids:             c.String(config.FlagPids),
		Timeout:          c.String(config.FlagTimeout),
		TmpfsSize:        c.String(config.FlagTmpfsSize),
		OutputLimit:      c.String(config.FlagOutputLimit),
		Runtime:          c.String(config.FlagRuntime),
		Allow:            c.StringSlice(config.FlagAllow),
		MinSeverity:      c.String(config.FlagMinSeverity),
		NoScan:           c.Bool(config.FlagNoScan),
		AllowStaleDB:     c.Bool(config.FlagAllowStaleDB),
		DBWarnAge:        c.String(config.FlagDBWarnAge),
		DBMaxAge:         c.String(config.FlagDBMaxAge),
		Set:              map[string]bool{},
	}
	for _, name := range c.FlagNames() {
		if c.IsSet(name) {
			in.Set[name] = true
		}
	}
	return in
}

func install(c *cli.Context) error {
	in := skillInput(c)
	if c.NArg() > 0 {
		in.ID = c.Args().First()
		in.Requirements = c.Args().Tail()
	}
	req := api.InstallRequest{Refresh: c.Bool("refresh"), Local: api.InstallLocal{
		Input: &in, Outputs: c.StringSlice("output"), Load: c.Bool("load"),
		CacheFrom: c.StringSlice("cache-from"), CacheTo: c.String("cache-to"), Push: c.String("push"),
		MaxLayers: c.Int("max-layers"), SingleLayer: c.Bool("single-layer"),
		SignKey: c.String("sign-key"), SignPassword: []byte(c.String("sign-password")),
	}}
	if remote(c) {
		wired, err := wireInstall(c, req)
		if err != nil {
			return emitInstall(c, skill.FailedInstall(req, err), err)
		}
		req = wired
	}
	ops, err := newOps(c)
	if err != nil {
		return emitInstall(c, skill.FailedInstall(req, err), err)
	}
	defer closeService(ops)
	progress, done := renderProgress(c)
	out, err := ops.Install(c.Context, req, progress)
	done()
	if out == nil {
		// A server that could not be reached, or refused the request
		// before it had a document.
		out = skill.FailedInstall(req, err)
	}
	return emitInstall(c, out, err)
}

// emitInstall prints the result (JSON or the tag) and returns err for the
// exit code. With --json the error is in the document, not repeated.
func emitInstall(c *cli.Context, out *api.InstallResult, err error) error {
	if c.Bool("json") {
		return jsonResult(c.App.Writer, out, err, exitCode)
	}
	if err != nil {
		if fs, ok := api.Findings(err); ok {
			printInstallFindings(c.App.ErrWriter, fs)
		}
		return err
	}
	fmt.Fprintln(c.App.Writer, out.ImageTag)
	return nil
}

func printInstallFindings(w io.Writer, fs []api.Finding) {
	fmt.Fprintln(w, "refused: known vulnerabilities in the resolved packages (nothing was installed):")
	for _, f := range fs {
		fixed := "no fix"
		if len(f.Fixed) > 0 {
			fixed = "fixed in " + f.Fixed[0]
		}
		fmt.Fprintf(w, "  %s==%s  %s  %s  %s  %s\n", f.Package, f.Version, f.ID, f.Severity, fixed, f.Summary)
	}
	fmt.Fprintln(w, "upgrade the packages, or accept a finding with --allow ID[@PACKAGE]:YYYY-MM-DD:REASON")
}
