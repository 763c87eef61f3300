package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/skillbuild/skillbuild/attest"
	"github.com/skillbuild/skillbuild/lock"
	"github.com/skillbuild/skillbuild/registry"

	bkclient "github.com/moby/buildkit/client"
	"github.com/moby/buildkit/util/progress/progressui"
	"github.com/skillbuild/skillbuild/config"
	"github.com/skillbuild/skillbuild/engine"
	sbllb "github.com/skillbuild/skillbuild/llb"
	"github.com/skillbuild/skillbuild/reuse"
	"github.com/skillbuild/skillbuild/scan"
	"github.com/skillbuild/skillbuild/spec"
	"github.com/skillbuild/skillbuild/store"
	"github.com/urfave/cli/v2"
)

// buildFlags are the flags that describe a skill build (install, scan).
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
		), outputFlags()...),
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

// installResult is the --json document of `skillbuild install`.
type installResult struct {
	Success         bool                  `json:"success"`
	SkillID         string                `json:"skill_id"`
	Version         string                `json:"version"`
	ImageTag        string                `json:"image_tag"`
	Digest          string                `json:"digest"`
	ManifestDigest  string                `json:"manifest_digest,omitempty"`
	Packages        []engine.Package      `json:"packages"`
	Vulnerabilities []scan.Finding        `json:"vulnerabilities"`
	Allowed         []scan.AllowedFinding `json:"allowed_vulnerabilities,omitempty"`
	Scan            string                `json:"scan"` // passed | disabled | refused
	Warnings        []string              `json:"warnings,omitempty"`
	Cached          bool                  `json:"cached"`
	// Unchanged: the tagged image was built from the same spec and base
	// and the database still passes its lock; no engine was started.
	Unchanged bool     `json:"unchanged"`
	Steps     []string `json:"executed_steps"`
	Error     string   `json:"error,omitempty"`
	Hint      string   `json:"hint,omitempty"`
	BuildLogs []string `json:"build_logs"`
	// LimitsEnforced says how each build limit was held: cgroup, rlimit
	// (rootless without cgroup delegation; per process) or none.
	LimitsEnforced map[string]string `json:"limits_enforced,omitempty"`
	// Push is what --push did (absent without it).
	Push *registry.PushResult `json:"push,omitempty"`
	// Resolve is how the lock was resolved: "full" (every requirement) or
	// "added" (only what the requirements add to an earlier image's lock);
	// ResolveFallback why an earlier image's lock was not extended.
	Resolve         string `json:"resolve,omitempty"`
	ResolveFallback string `json:"resolve_fallback,omitempty"`
}

func install(c *cli.Context) error {
	in := skillInput(c)
	if c.NArg() > 0 {
		in.ID = c.Args().First()
		in.Requirements = c.Args().Tail()
	}
	outs, load, err := outputs(c)
	if err != nil {
		return emitInstall(c, (&installResult{SkillID: in.ID, Version: in.Version}).fail(err), err)
	}
	if envOf(c).builder.embedded() {
		// The embedded builder's image is in containerd: afterBuild
		// exports it from there, with its attestations.
		outs = nil
	}
	ch, done := progress(c)
	out, err := buildSkill(c.Context, envOf(c), in, buildOptions{
		refresh: c.Bool("refresh"),
		layers:  sbllb.InstallOpts{MaxLayers: c.Int("max-layers"), SingleLayer: c.Bool("single-layer")},
		outputs: outs,
		load:    load,
		cache:   cacheFlagsOf(c),
	}, ch)
	done()
	if err == nil {
		err = afterBuild(c, in, out)
	}
	return emitInstall(c, out, err)
}

// afterBuild writes --output and pushes --push once the image is built;
// a failure is recorded in out.
func afterBuild(c *cli.Context, in config.Input, out *installResult) error {
	skill, err := config.Load(in)
	if err != nil {
		return err
	}
	if envOf(c).builder.embedded() {
		for _, spec := range c.StringSlice("output") {
			name, err := store.ImageName(skill.Tag())
			if err == nil {
				err = exportSkill(c, name, spec)
			}
			if err != nil {
				out.fail(err)
				return err
			}
		}
	}
	if ref := c.String("push"); ref != "" {
		p, err := pushSkill(c, skill, ref)
		if err != nil {
			out.fail(err)
			return err
		}
		out.Push = &p.PushResult
		reportPush(c.App.ErrWriter, p.PushResult)
	}
	return nil
}

// env is what the commands take from the global flags.
type env struct {
	address, namespace, root string
	// mode is rootless mode, if on: where limits live, where the engine
	// keeps its sockets.
	mode rootlessMode
	// stderr receives warnings and waits (a build's progress goes to its
	// status channel).
	stderr io.Writer
	debug  bool
	// builder is where builds run (the --builder flags).
	builder builderFlagValues
}

func envOf(c *cli.Context) env {
	return env{address: c.String("address"), namespace: c.String("namespace"), root: c.String("root"), stderr: c.App.ErrWriter,
		debug: c.Bool("debug"), builder: builderFlagsOf(c), mode: modeOf(c)}
}

// buildOptions are the build's switches besides the skill.
type buildOptions struct {
	refresh bool
	layers  sbllb.InstallOpts
	// outputs and load are where the image goes besides (or, without
	// containerd, instead of) containerd.
	outputs []engine.Output
	load    bool
	cache   cacheFlags
}

// buildSkill is `skillbuild install`: it loads the skill from in, scans
// and builds it, and returns the --json document, with the error (if any)
// recorded in it. status receives BuildKit's progress and is closed when
// buildSkill returns.
func buildSkill(ctx context.Context, e env, in config.Input, opts buildOptions, status chan *bkclient.SolveStatus) (*installResult, error) {
	building := false
	defer func() {
		if !building && status != nil {
			close(status)
		}
	}()
	skill, err := config.Load(in)
	if err != nil {
		out := &installResult{SkillID: in.ID, Version: in.Version}
		return out.fail(err), err
	}
	out := &installResult{SkillID: skill.ID, Version: skill.Version, ImageTag: store.Familiar(skill.Tag()), Packages: []engine.Package{}, Vulnerabilities: []scan.Finding{}, BuildLogs: []string{}}

	var dbOpener func() (*scan.DB, error)
	req := engine.Request{Skill: skill, Refresh: opts.refresh, Layers: opts.layers, Outputs: opts.outputs, Load: opts.load}
	if skill.Policy.NoScan {
		out.Scan = "disabled"
		out.Warnings = append(out.Warnings, "vulnerability scan disabled with --no-scan; the image is labelled "+scan.LabelScan+"=disabled")
		fmt.Fprintln(e.stderr, "WARNING: vulnerability scan disabled (--no-scan); this is recorded in the image labels")
		req.Labels = map[string]string{scan.LabelScan: "disabled"}
		req.Attestations = func(locked lock.Lock) ([]attest.Predicate, error) {
			return verdictAttestation(scan.DisabledPredicate(skill.Policy, len(locked)))
		}
	} else {
		// Fail closed at once when there is no database; open it when the
		// scan needs it (it reads only the packages it checks).
		if _, err := scan.Status(e.root); err != nil {
			return out.fail(err), err
		}
		var verdict scan.Verdict
		openDB := sync.OnceValues(func() (*scan.DB, error) { return scan.Open(e.root) })
		req.Gate = scanGate(openDB, skill.Policy, out, &verdict, e.stderr)
		req.Attestations = func(lock.Lock) ([]attest.Predicate, error) {
			return verdictAttestation(scan.Predicate(verdict, skill.Policy))
		}
		dbOpener = openDB
	}

	// Only the embedded builder's own store can answer for it: other
	// builders have none here, and outputs must be written anyway.
	if !req.Refresh && len(req.Outputs) == 0 && e.builder.embedded() {
		if done, err := installUnchanged(ctx, e, skill, req, out, dbOpener); done || err != nil {
			if err != nil {
				return out.fail(err), err
			}
			return out, nil
		}
	}

	noPrevious := ""
	if !req.Refresh && e.builder.embedded() {
		// Only an optimization: without an earlier lock (or failing to read
		// one) the build resolves everything.
		req.Previous, noPrevious = previousLock(ctx, e, skill)
	}

	cache, engOpts, err := buildCache(opts.cache, skill)
	if err != nil {
		return out.fail(err), err
	}
	req.Cache = cache
	if dbOpener != nil {
		go dbOpener() //nolint:errcheck // warms the database while the engine starts; the gate reads the error
	}
	eng, err := newEngine(ctx, e, engOpts...)
	if err != nil {
		return out.fail(err), err
	}
	defer eng.Close()

	out.LimitsEnforced = eng.LimitsEnforced(skill.Build)
	if w := limitsWarning(out.LimitsEnforced); w != "" {
		out.Warnings = append(out.Warnings, w)
		fmt.Fprintln(e.stderr, "WARNING:", w)
	}
	req.Status = status
	building = true // Build closes status
	res, err := eng.Build(ctx, req)
	if err != nil {
		if res != nil {
			out.Steps = res.Executed
			out.BuildLogs = append(out.BuildLogs, res.Logs...)
		}
		return out.fail(err), err
	}
	out.Success = true
	out.Digest = res.Digest.String()
	out.ManifestDigest = res.ManifestDigest.String()
	out.Packages = res.Packages
	out.BuildLogs = append(out.BuildLogs, res.Logs...)
	out.Cached = len(res.Executed) == 0
	out.Steps = res.Executed
	out.Resolve, out.ResolveFallback = res.Resolve, res.ResolveFallback
	if out.Resolve == engine.ResolveFull && out.ResolveFallback == "" {
		out.ResolveFallback = noPrevious
	}
	return out, nil
}

// previousLock is the lock document of an earlier image of the skill
// that the build may extend (reuse.Previous), or nil and why not.
func previousLock(ctx context.Context, e env, skill config.Skill) (*lock.Document, string) {
	ctd, err := store.Dial(ctx, e.address, e.namespace)
	if err == nil {
		defer ctd.Close()
		var doc *lock.Document
		var image, why string
		doc, image, why, err = reuse.Previous(ctx, ctd, skill)
		if doc != nil {
			if e.debug {
				fmt.Fprintf(e.stderr, "resolving what the requirements add to the lock of %s\n", store.Familiar(image))
			}
			return doc, ""
		}
		if err == nil {
			err = errors.New(why)
		}
	}
	if e.debug {
		fmt.Fprintf(e.stderr, "resolving every requirement: %v\n", err)
	}
	return nil, err.Error()
}

// fail records err in the document and returns it.
func (out *installResult) fail(err error) *installResult {
	out.Success = false
	out.Error = err.Error()
	var ve *scan.VulnerableError
	if errors.As(err, &ve) {
		out.Error = "vulnerabilities detected"
		out.Vulnerabilities = ve.Findings
		out.Scan = "refused"
	}
	var se *engine.StepError
	if errors.As(err, &se) {
		out.Hint = se.Hint
		for _, l := range se.Log {
			out.BuildLogs = append(out.BuildLogs, se.Step+": "+l)
		}
	}
	if out.Packages == nil {
		out.Packages = []engine.Package{}
	}
	if out.Vulnerabilities == nil {
		out.Vulnerabilities = []scan.Finding{}
	}
	if out.BuildLogs == nil {
		out.BuildLogs = []string{}
	}
	return out
}

// newEngine starts the embedded BuildKit engine for the global settings
// and sweeps away what dead runs left behind (see dial).
func newEngine(ctx context.Context, e env, extra ...engine.Opt) (*engine.Engine, error) {
	bopts, err := e.builder.opts()
	if err != nil {
		return nil, err
	}
	opts := []engine.Opt{engine.WithAddress(e.address), engine.WithNamespace(e.namespace),
		engine.WithRoot(e.root), engine.WithLockWait(10*time.Minute, func() {
			fmt.Fprintf(e.stderr, "waiting for another skillbuild process using %s (up to 10m)...\n", e.root)
		})}
	opts = append(append(opts, bopts...), extra...)
	eng, err := engine.New(ctx, append(opts, engineRootlessOpts(e)...)...)
	if err != nil {
		return nil, err
	}
	if client := eng.Containerd(); client != nil {
		sweepRuns(ctx, e, client)
	}
	return eng, nil
}

// progress starts rendering build progress on stderr; done waits for the
// renderer after the library closed the channel.
func progress(c *cli.Context) (chan *bkclient.SolveStatus, func()) {
	ch := make(chan *bkclient.SolveStatus)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		renderProgress(c.Context, c.App.ErrWriter, c.String("progress"), ch)
	}()
	return ch, wg.Wait
}

// renderProgress draws BuildKit's progress on stderr, draining ch always.
func renderProgress(ctx context.Context, w io.Writer, mode string, ch chan *bkclient.SolveStatus) {
	d, err := progressui.NewDisplay(w, progressui.DisplayMode(mode))
	if err != nil {
		d, _ = progressui.NewDisplay(w, progressui.PlainMode)
	}
	if _, err := d.UpdateFrom(context.WithoutCancel(ctx), ch); err != nil {
		for range ch {
		}
	}
}

// emitInstall prints the result (JSON or the tag) and returns err for the
// exit code. With --json the error is in the document, not repeated.
func emitInstall(c *cli.Context, out *installResult, err error) error {
	if c.Bool("json") {
		return jsonResult(c.App.Writer, out, err, exitCode)
	}
	if err != nil {
		var ve *scan.VulnerableError
		if errors.As(err, &ve) {
			printInstallFindings(c.App.ErrWriter, ve.Findings)
		}
		return err
	}
	fmt.Fprintln(c.App.Writer, out.ImageTag)
	return nil
}

func printInstallFindings(w io.Writer, fs []scan.Finding) {
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

// installUnchanged answers install from containerd's image store when the
// tagged image was built from the same spec and base and the database
// still passes its recorded lock (reuse.Find), without starting BuildKit.
// done reports that out holds the answer; a lock the database now refuses
// is an error (exit 3) even though the image exists.
func installUnchanged(ctx context.Context, e env, skill config.Skill, req engine.Request, out *installResult, openDB func() (*scan.DB, error)) (done bool, err error) {
	ctd, err := store.Dial(ctx, e.address, e.namespace)
	if err != nil {
		return false, err
	}
	defer ctd.Close()
	opts := []reuse.Opt{reuse.WithLayering(spec.Layering{MaxLayers: req.Layers.MaxLayers, SingleLayer: req.Layers.SingleLayer})}
	if openDB != nil {
		opts = append(opts, reuse.WithDB(openDB))
	}
	img, why, err := reuse.Find(ctx, ctd, skill, opts...)
	if img != nil && !skill.Policy.NoScan {
		recordVerdict(out, e.stderr)(img.Verdict, err)
	}
	if err != nil || img == nil {
		if why != "" && e.debug {
			fmt.Fprintf(e.stderr, "building %s: %s\n", out.ImageTag, why)
		}
		return false, err
	}
	out.Success = true
	out.Digest = img.Digest.String()
	out.Packages = make([]engine.Package, len(img.Lock))
	for i, d := range img.Lock {
		out.Packages[i] = engine.Package{Name: d.Name, Version: d.Version}
	}
	out.Cached, out.Unchanged = true, true
	out.Steps = []string{}
	return true, nil
}

// verdictAttestation is the scan verdict as the image's attestation.
func verdictAttestation(p scan.VerdictPredicate) ([]attest.Predicate, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	return []attest.Predicate{{Type: attest.PredicateVerdict, Body: b}}, nil
}

// exportSkill writes the built image as --output says.
func exportSkill(c *cli.Context, name, spec string) error {
	o, err := parseOutput(spec)
	if err != nil {
		return err
	}
	client, err := store.Dial(c.Context, c.String("address"), c.String("namespace"))
	if err != nil {
		return err
	}
	defer client.Close()
	return writeOutput(c.Context, client, name, o)
}
