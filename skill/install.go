package skill

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"sync"

	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
	bkclient "github.com/moby/buildkit/client"
	resolverconfig "github.com/moby/buildkit/util/resolver/config"
	"github.com/skillbuild/skillbuild/config"
	"github.com/skillbuild/skillbuild/engine"
	"github.com/skillbuild/skillbuild/internal/attest"
	sbllb "github.com/skillbuild/skillbuild/llb"
	"github.com/skillbuild/skillbuild/lock"
	"github.com/skillbuild/skillbuild/registry"
	"github.com/skillbuild/skillbuild/reuse"
	"github.com/skillbuild/skillbuild/scan"
	"github.com/skillbuild/skillbuild/signature"
	"github.com/skillbuild/skillbuild/skill/api"
	"github.com/skillbuild/skillbuild/spec"
	"github.com/skillbuild/skillbuild/store"
)

// Progress receives an operation's progress events (BuildKit's
// *client.SolveStatus, which encodes as JSON). Nil discards them.
type Progress = func(event any)

// Install builds (or reuses) the image of the skill req describes: load
// and validate it, resolve its lock, scan the lock (a refusal stops the
// build before anything is fetched or installed: exit 3), install one
// layer per distribution, attach the SBOM and the verdict, tag it last,
// then write its outputs and push it. The document is filled in whatever
// happened; err says what failed.
func (s *Service) Install(ctx context.Context, req api.InstallRequest, progress Progress) (*api.InstallResult, error) {
	in := req.Input()
	outs, err := parseOutputs(req.Local.Outputs)
	if err != nil {
		return failInstall(&api.InstallResult{SkillID: in.ID, Version: in.Version}, err), err
	}
	if s.opts.builder.embedded() {
		// The embedded builder's image is in containerd: afterBuild
		// exports it from there, with its attestations.
		outs = nil
	}
	var signer *signature.Signer
	if req.Local.SignKey != "" {
		// Read before anything is built: a wrong password fails now.
		if signer, err = loadSigner(req.Local.SignKey, req.Local.SignPassword); err != nil {
			return failInstall(&api.InstallResult{SkillID: in.ID, Version: in.Version}, err), err
		}
		if req.Local.Push == "" {
			err = fmt.Errorf("--sign-key signs what --push pushes: give --push too: %w", errdefs.ErrInvalidArgument)
			return failInstall(&api.InstallResult{SkillID: in.ID, Version: in.Version}, err), err
		}
	}
	status, forwarded := forward(progress)
	out, err := s.build(ctx, in, req, outs, status)
	<-forwarded
	if err == nil {
		err = s.afterBuild(ctx, in, req, out, signer)
	}
	if err == nil && s.pool() != nil {
		// Warm containers of the image's previous build go now.
		if name, nerr := store.ImageName(out.ImageTag); nerr == nil {
			s.pool().Drop(name)
		}
	}
	return out, err
}

// forward is a status channel whose events go to progress; forwarded is
// closed once the channel was closed and drained.
func forward(progress Progress) (chan *bkclient.SolveStatus, chan struct{}) {
	ch := make(chan *bkclient.SolveStatus)
	forwarded := make(chan struct{})
	go func() {
		defer close(forwarded)
		for st := range ch {
			if progress != nil {
				progress(st)
			}
		}
	}()
	return ch, forwarded
}

// afterBuild writes the outputs and pushes once the image is built; a
// failure is recorded in out.
func (s *Service) afterBuild(ctx context.Context, in config.Input, req api.InstallRequest, out *api.InstallResult, signer *signature.Signer) error {
	skill, err := s.load(in)
	if err != nil {
		return err
	}
	if s.opts.builder.embedded() {
		for _, o := range req.Local.Outputs {
			name, err := store.ImageName(skill.Tag())
			if err == nil {
				err = s.export(ctx, name, o)
			}
			if err != nil {
				failInstall(out, err)
				return err
			}
		}
	}
	if ref := req.Local.Push; ref != "" {
		p, err := s.pushSkill(ctx, skill, ref, signer)
		if err != nil {
			failInstall(out, err)
			return err
		}
		out.Push = &p.Pushed
		reportPush(s, p.Pushed)
	}
	return nil
}

// build loads the skill from in, scans and builds it, and returns the
// document with the error (if any) recorded in it. status receives
// BuildKit's progress and is closed when build returns.
func (s *Service) build(ctx context.Context, in config.Input, req api.InstallRequest, outs []engine.Output, status chan *bkclient.SolveStatus) (*api.InstallResult, error) {
	building := false
	defer func() {
		if !building && status != nil {
			close(status)
		}
	}()
	skill, err := s.load(in)
	if err != nil {
		out := &api.InstallResult{SkillID: in.ID, Version: in.Version}
		return failInstall(out, err), err
	}
	out := &api.InstallResult{SkillID: skill.ID, Version: skill.Version, ImageTag: store.Familiar(skill.Tag()), Packages: []api.Package{}, Vulnerabilities: []scan.Finding{}, BuildLogs: []string{}}

	if err := s.checkDestinations(skill, req.Local); err != nil {
		return failInstall(out, err), err
	}

	var dbOpener func() (*scan.DB, error)
	layers := sbllb.InstallOpts{MaxLayers: req.Local.MaxLayers, SingleLayer: req.Local.SingleLayer}
	ereq := engine.Request{Skill: skill, Refresh: req.Refresh, Layers: layers, Outputs: outs, Load: req.Local.Load, Marks: s.buildMarks}
	if skill.Policy.NoScan {
		out.Scan = api.ScanDisabled
		out.Warnings = append(out.Warnings, "vulnerability scan disabled with --no-scan; the image is labelled "+scan.LabelScan+"=disabled")
		fmt.Fprintln(s.opts.log, "WARNING: vulnerability scan disabled (--no-scan); this is recorded in the image labels")
		ereq.Labels = map[string]string{scan.LabelScan: "disabled"}
		ereq.Attestations = func(locked lock.Lock) ([]attest.Predicate, error) {
			return verdictAttestation(scan.DisabledPredicate(skill.Policy, len(locked)))
		}
	} else {
		// Fail closed at once when there is no database; open it when the
		// scan needs it (it reads only the packages it checks).
		if _, err := scan.Status(s.opts.root); err != nil {
			return failInstall(out, err), err
		}
		var verdict scan.Verdict
		openDB := sync.OnceValues(func() (*scan.DB, error) { return scan.Open(s.opts.root) })
		ereq.Gate = s.scanGate(openDB, skill.Policy, out, &verdict)
		ereq.Attestations = func(lock.Lock) ([]attest.Predicate, error) {
			return verdictAttestation(scan.Predicate(verdict, skill.Policy))
		}
		dbOpener = openDB
	}

	// Only the embedded builder's own store can answer for it: other
	// builders have none here, and outputs must be written anyway.
	if !ereq.Refresh && len(ereq.Outputs) == 0 && s.opts.builder.embedded() {
		if done, err := s.installUnchanged(ctx, skill, ereq, out, dbOpener); done || err != nil {
			if err != nil {
				return failInstall(out, err), err
			}
			return out, nil
		}
	}

	if s.opts.builder.embedded() {
		if err := s.checkBase(ctx, skill.Base); err != nil {
			return failInstall(out, err), err
		}
	}
	noPrevious := ""
	if !ereq.Refresh && s.opts.builder.embedded() {
		// Only an optimization: without an earlier lock (or failing to read
		// one) the build resolves everything.
		ereq.Previous, noPrevious = s.previousLock(ctx, skill)
	}

	cache, engOpts, err := s.buildCache(req.Local.CacheFrom, req.Local.CacheTo, skill)
	if err != nil {
		return failInstall(out, err), err
	}
	ereq.Cache = cache
	if dbOpener != nil {
		go dbOpener() //nolint:errcheck // warms the database while the engine starts; the gate reads the error
	}
	eng, err := s.newEngine(ctx, engOpts...)
	if err != nil {
		return failInstall(out, err), err
	}
	defer eng.Close()

	out.LimitsEnforced = eng.LimitsEnforced(skill.Build)
	if w := limitsWarning(out.LimitsEnforced); w != "" {
		out.Warnings = append(out.Warnings, w)
		fmt.Fprintln(s.opts.log, "WARNING:", w)
	}
	ereq.Status = status
	building = true // Build closes status
	res, err := eng.Build(ctx, ereq)
	if err != nil {
		if res != nil {
			out.Steps = res.Executed
			out.BuildLogs = append(out.BuildLogs, res.Logs...)
		}
		return failInstall(out, err), err
	}
	out.Success = true
	out.Digest = res.Digest.String()
	out.ManifestDigest = res.ManifestDigest.String()
	out.Packages = packagesOf(res.Packages)
	out.BuildLogs = append(out.BuildLogs, res.Logs...)
	out.Cached = len(res.Executed) == 0
	out.Steps = res.Executed
	out.Resolve, out.ResolveFallback = res.Resolve, res.ResolveFallback
	out.Resolver, out.ResolverFallback = res.Resolver, res.ResolverFallback
	if out.Resolve == engine.ResolveFull && out.ResolveFallback == "" {
		out.ResolveFallback = noPrevious
	}
	return out, nil
}

func packagesOf(ps []engine.Package) []api.Package {
	out := make([]api.Package, len(ps))
	for i, p := range ps {
		out[i] = api.Package{Name: p.Name, Version: p.Version}
	}
	return out
}

// previousLock is the lock document of an earlier image of the skill
// that the build may extend (reuse.Previous), or nil and why not.
func (s *Service) previousLock(ctx context.Context, skill config.Skill) (*lock.Document, string) {
	client, err := s.containerd(ctx, sweepNone)
	if err == nil {
		var doc *lock.Document
		var image, why string
		doc, image, why, err = reuse.Previous(ctx, client, skill)
		if doc != nil {
			if s.opts.debug {
				fmt.Fprintf(s.opts.log, "resolving what the requirements add to the lock of %s\n", store.Familiar(image))
			}
			return doc, ""
		}
		if err == nil {
			err = errors.New(why)
		}
	}
	if s.opts.debug {
		fmt.Fprintf(s.opts.log, "resolving every requirement: %v\n", err)
	}
	return nil, err.Error()
}

// failInstall records err in the document and returns it.
func failInstall(out *api.InstallResult, err error) *api.InstallResult {
	out.Success = false
	out.Error = err.Error()
	var ve *scan.VulnerableError
	if errors.As(err, &ve) {
		out.Error = "vulnerabilities detected"
		out.Vulnerabilities = ve.Findings
		out.Scan = api.ScanRefused
	}
	var se *engine.StepError
	if errors.As(err, &se) {
		out.Hint = se.Hint
		for _, l := range se.Log {
			out.BuildLogs = append(out.BuildLogs, se.Step+": "+l)
		}
	}
	if out.Packages == nil {
		out.Packages = []api.Package{}
	}
	if out.Vulnerabilities == nil {
		out.Vulnerabilities = []scan.Finding{}
	}
	if out.BuildLogs == nil {
		out.BuildLogs = []string{}
	}
	return out
}

// installUnchanged answers install from containerd's image store when the
// tagged image was built from the same spec and base and the database
// still passes its recorded lock (reuse.Find), without starting BuildKit.
// done reports that out holds the answer; a lock the database now refuses
// is an error (exit 3) even though the image exists.
func (s *Service) installUnchanged(ctx context.Context, skill config.Skill, req engine.Request, out *api.InstallResult, openDB func() (*scan.DB, error)) (done bool, err error) {
	client, err := s.containerd(ctx, sweepNone)
	if err != nil {
		return false, err
	}
	opts := []reuse.Opt{reuse.WithLayering(spec.Layering{MaxLayers: req.Layers.MaxLayers, SingleLayer: req.Layers.SingleLayer})}
	if openDB != nil {
		opts = append(opts, reuse.WithDB(openDB))
	}
	img, why, err := reuse.Find(ctx, client, skill, opts...)
	if img != nil && !skill.Policy.NoScan {
		s.recordVerdict(out)(img.Verdict, err)
	}
	if err != nil || img == nil {
		if why != "" && s.opts.debug {
			fmt.Fprintf(s.opts.log, "building %s: %s\n", out.ImageTag, why)
		}
		return false, err
	}
	out.Success = true
	out.Digest = img.Digest.String()
	out.Packages = make([]api.Package, len(img.Lock))
	for i, d := range img.Lock {
		out.Packages[i] = api.Package{Name: d.Name, Version: d.Version}
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

// scanGate is scan.Gate recording the verdict in out and in verdict, and
// logging its warnings.
func (s *Service) scanGate(openDB func() (*scan.DB, error), policy config.Policy, out *api.InstallResult, verdict *scan.Verdict) engine.Gate {
	record := s.recordVerdict(out)
	return scan.Gate(openDB, policy, func(v scan.Verdict, err error) {
		*verdict = v
		record(v, err)
	})
}

// recordVerdict records a verdict (or a refusal) in out and logs its
// warnings.
func (s *Service) recordVerdict(out *api.InstallResult) func(scan.Verdict, error) {
	return func(v scan.Verdict, err error) {
		out.Allowed = v.Allowed
		out.Warnings = append(out.Warnings, v.Warnings...)
		for _, w := range v.Warnings {
			fmt.Fprintln(s.opts.log, "WARNING:", w)
		}
		var ve *scan.VulnerableError
		switch {
		case errors.As(err, &ve):
			out.Scan = api.ScanRefused
		case err == nil:
			out.Scan = api.ScanPassed
		}
	}
}

// buildCache turns the cache references (templates with {id} and
// {version}) into the build's registry cache, and the registry settings
// into the engine's registry configuration for the cache's hosts.
func (s *Service) buildCache(from []string, to string, skill config.Skill) (engine.Cache, []engine.Opt, error) {
	var cache engine.Cache
	var hosts []string
	add := func(tmpl string) (string, error) {
		named, err := registry.ExpandRef(tmpl, skill.ID, skill.Version)
		if err != nil {
			return "", err
		}
		hosts = append(hosts, reference.Domain(named))
		return named.String(), nil
	}
	for _, t := range from {
		ref, err := add(t)
		if err != nil {
			return cache, nil, err
		}
		cache.From = append(cache.From, ref)
	}
	if to != "" {
		ref, err := add(to)
		if err != nil {
			return cache, nil, err
		}
		cache.To = ref
	}
	if len(hosts) == 0 {
		return cache, nil, nil
	}
	r := s.opts.registry
	insecure := map[string]bool{}
	for _, h := range r.Insecure {
		insecure[h] = true
	}
	m := map[string]resolverconfig.RegistryConfig{}
	for _, h := range hosts {
		// Explicit: BuildKit would otherwise use plain HTTP for every
		// loopback host.
		plain := insecure[h]
		m[h] = resolverconfig.RegistryConfig{RootCAs: r.CAFiles, PlainHTTP: &plain}
	}
	return cache, []engine.Opt{engine.WithRegistries(m), engine.WithDockerConfigDir(r.DockerConfig)}, nil
}

// output is a parsed --output TYPE=PATH.
type output struct{ kind, path string }

// parseOutput reads oci-archive=FILE | oci-layout=DIR.
func parseOutput(s string) (output, error) {
	kind, path, ok := strings.Cut(s, "=")
	switch {
	case !ok || path == "":
		return output{}, fmt.Errorf("--output %q: expected oci-archive=FILE or oci-layout=DIR: %w", s, errdefs.ErrInvalidArgument)
	case kind != "oci-archive" && kind != "oci-layout":
		return output{}, fmt.Errorf("--output %q: unknown destination %q; expected oci-archive=FILE or oci-layout=DIR: %w", s, kind, errdefs.ErrInvalidArgument)
	}
	return output{kind: kind, path: path}, nil
}

// engineOutput is the engine's output for o; it checks the path.
func (o output) engineOutput() (engine.Output, error) {
	if o.kind == "oci-layout" {
		return engine.OCILayout(o.path)
	}
	return engine.OCIArchive(o.path)
}

// parseOutputs checks the --output values and turns them into the
// engine's outputs.
func parseOutputs(specs []string) ([]engine.Output, error) {
	var outs []engine.Output
	for _, spec := range specs {
		o, err := parseOutput(spec)
		if err != nil {
			return nil, err
		}
		eo, err := o.engineOutput()
		if err != nil {
			return nil, err
		}
		outs = append(outs, eo)
	}
	return outs, nil
}

// export writes the built image name from containerd as the output spec
// says, by the rules every builder's outputs follow (engine.Export): an
// archive replaces FILE atomically, a layout gets the image added.
func (s *Service) export(ctx context.Context, name, spec string) error {
	o, err := parseOutput(spec)
	if err != nil {
		return err
	}
	eo, err := o.engineOutput()
	if err != nil {
		return err
	}
	client, err := s.containerd(ctx, sweepNone)
	if err != nil {
		return err
	}
	return engine.Export(ctx, client, name, eo)
}

// FailedInstall is the document of an install that failed before the
// service could start it (bad settings of the service itself).
func FailedInstall(req api.InstallRequest, err error) *api.InstallResult {
	in := req.Input()
	return failInstall(&api.InstallResult{SkillID: in.ID, Version: in.Version}, err)
}

// checkDestinations refuses, before anything is built, a push or a load
// that cannot work: a push reference that does not expand, a push from a
// builder that leaves the image outside containerd (without --load), no
// containerd to load into or push from, registry settings that do not
// read.
func (s *Service) checkDestinations(skill config.Skill, local api.InstallLocal) error {
	if local.Push != "" {
		if _, err := registry.ExpandRef(local.Push, skill.ID, skill.Version); err != nil {
			return fmt.Errorf("--push: %w", err)
		}
		if !s.opts.builder.embedded() && !local.Load {
			return fmt.Errorf("--push sends the image from containerd, and the %s builder leaves it only in its --output destinations: "+
				"add --load to put it into the containerd at %s first, or push the --output archive with skopeo: %w",
				s.opts.builder.Name, s.opts.address, errdefs.ErrInvalidArgument)
		}
		if _, err := s.registryClient(); err != nil {
			return err
		}
	}
	if (local.Push != "" || local.Load) && !s.opts.builder.embedded() {
		if _, err := os.Stat(s.opts.address); errors.Is(err, fs.ErrNotExist) {
			what := "--load"
			if local.Push != "" {
				what = "--push (with --load)"
			}
			return fmt.Errorf("%s needs a containerd, and there is no socket at %s (set --address): %w", what, s.opts.address, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

// checkBase refuses to build on an image that was not imported or pulled
// as a base: a loaded archive or a pulled skill image that names itself
// like the base must not become the ground of every later build. A base
// that is not there is the engine's to explain.
func (s *Service) checkBase(ctx context.Context, base string) error {
	client, err := s.containerd(ctx, sweepNone)
	if err != nil {
		return err
	}
	rec, err := client.ImageService().Get(ctx, base)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	switch origin := rec.Labels[LabelOrigin]; origin {
	case OriginBase:
		return nil
	case "":
		return fmt.Errorf("base %s has no origin: it was not imported or pulled as a base (one imported by an earlier skillbuild must be imported again): %s: %w",
			store.Familiar(base), s.advise("run `skillbuild base import` or `skillbuild pull --base` for it", "import or pull it as a base on the server"), errdefs.ErrInvalidArgument)
	default:
		return fmt.Errorf("base %s came from %s, not from a base import or pull: %s: %w",
			store.Familiar(base), originPhrase(origin), s.advise("run `skillbuild base import` or `skillbuild pull --base` for it", "import or pull it as a base on the server"), errdefs.ErrInvalidArgument)
	}
}
