package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"strings"
	"sync"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
	bkclient "github.com/moby/buildkit/client"
	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/exporter/containerimage/exptypes"
	gateway "github.com/moby/buildkit/frontend/gateway/client"
	"github.com/moby/buildkit/session"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/skillbuild/skillbuild/config"
	"github.com/skillbuild/skillbuild/internal/indexproxy"
	"github.com/skillbuild/skillbuild/labels"
	"github.com/skillbuild/skillbuild/layers"
	sbllb "github.com/skillbuild/skillbuild/llb"
	"github.com/skillbuild/skillbuild/lock"
	"github.com/skillbuild/skillbuild/spec"
	"github.com/skillbuild/skillbuild/store"
	"github.com/tonistiigi/fsutil"
)

// Gate decides, from the resolved lock and before anything is fetched,
// whether the build may go on. It returns labels to record in the image
// (e.g. the scan verdict) or an error that stops the build.
type Gate func(ctx context.Context, locked lock.Lock) (labels map[string]string, err error)

// Request is one skill build.
type Request struct {
	Skill config.Skill
	// Gate runs between resolution and fetching; nil lets every lock through.
	Gate Gate
	// Labels are added to the image config (e.g. "scan disabled").
	Labels map[string]string
	// Status receives BuildKit's progress; Build closes it. May be nil.
	Status chan *bkclient.SolveStatus
	// Refresh re-runs resolution even when its inputs are unchanged.
	Refresh bool
	// Cache is the registry build cache to import from and export to.
	Cache Cache
	// Attestations are attached to the image next to the SBOM of its lock
	// (the scan verdict); called after the solve, before tagging.
	Attestations Attestations
	// Layers tunes the install layers (llb.InstallOpts: MaxLayers,
	// SingleLayer); the zero value is one layer per distribution up to
	// llb.DefaultMaxLayers.
	Layers sbllb.InstallOpts
	// Outputs are where the image goes besides containerd (OCIArchive,
	// OCILayout); a builder without containerd needs one, or Load.
	Outputs []Output
	// Load brings the result of an embedded-oci or remote build into the
	// engine's containerd (the embedded builder always stores it there).
	Load bool
	// Previous is the lock document of an earlier image of the skill,
	// resolved with the same index settings (reuse.Previous). When it was
	// resolved on the same base and the skill's requirements only add to
	// its own, the build resolves only what they add (resolveAdded);
	// Refresh, or anything else, resolves everything.
	Previous *lock.Document
	// Marks, if set, gives record labels computed from the digest the
	// image's name will point at (after the attestations are attached):
	// the service's mark of an image built here.
	Marks func(target digest.Digest) map[string]string
}

// Package is a name and version in a built image.
type Package struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// Result describes a finished build.
type Result struct {
	ImageTag  string `json:"image_tag"` // short form, e.g. atom-skill:weather-v3
	ImageName string `json:"image_name"`
	// Digest is what the tag points at: an index holding the image
	// manifest (ManifestDigest) and its attestations.
	Digest         digest.Digest     `json:"digest"`
	ManifestDigest digest.Digest     `json:"manifest_digest"`
	Lock           lock.Lock         `json:"lock"`
	Packages       []Package         `json:"packages"`
	Labels         map[string]string `json:"labels,omitempty"`
	// Cached counts the steps BuildKit answered from cache; Executed the
	// steps it ran, by name.
	Cached   int      `json:"cached_steps"`
	Executed []string `json:"executed_steps"`
	Logs     []string `json:"logs,omitempty"`
	// LimitsEnforced says how each build limit (memory, cpus, pids) was
	// held: "cgroup", "rlimit" (per process) or "none".
	LimitsEnforced map[string]string `json:"limits_enforced"`
	// Resolve says how the lock was resolved: ResolveFull, or
	// ResolveAdded (only what the requirements add to Request.Previous);
	// empty without requirements. ResolveFallback says why a previous
	// lock was not extended (empty when there was none, or it was).
	Resolve         string `json:"resolve,omitempty"`
	ResolveFallback string `json:"resolve_fallback,omitempty"`
	// Resolver says which resolver made the lock: ResolverBuiltin (in
	// process) or ResolverPip (pip in the base image); ResolverFallback
	// why pip resolved when the builtin resolver was asked for first
	// (auto). Both are empty without requirements.
	Resolver         string `json:"resolver,omitempty"`
	ResolverFallback string `json:"resolver_fallback,omitempty"`
}

// How a build resolved its lock (Result.Resolve).
const (
	// ResolveFull resolved every requirement.
	ResolveFull = "full"
	// ResolveAdded resolved only what the requirements add to the
	// previous image's lock, on a view of it installed.
	ResolveAdded = "added"
)

// LimitsEnforced says how the engine holds each build limit of l:
// "cgroup", "rlimit" (per process: RLIMIT_DATA, RLIMIT_CPU at cpus × timeout)
// or "none" (the process limit without cgroups; CPU without a timeout).
func (e *Engine) LimitsEnforced(l config.BuildLimits) map[string]string {
	if !e.opts.noCgroups {
		return map[string]string{"memory": "cgroup", "cpus": "cgroup", "pids": "cgroup"}
	}
	cpus := "rlimit"
	if l.Timeout <= 0 {
		cpus = "none"
	}
	return map[string]string{"memory": "rlimit", "cpus": cpus, "pids": "none"}
}

// session is what one solve needs besides the graph: the index proxy, the
// local find-links directories and the progress collector.
type solveSession struct {
	skill       config.Skill // with index URLs as the step sees them
	origIndex   []string     // the configured index URLs (may carry credentials)
	trusted     []string
	sources     lock.Sources // where the lock's files may come from
	attachables []session.Attachable
	cacheExp    []bkclient.CacheOptionsEntry
	cacheImp    []bkclient.CacheOptionsEntry
	locals      map[string]fsutil.FS
	col         *collector
	closers     []func() error
	base        baseImage                // where the base image is resolved
	ociStores   map[string]content.Store // session content stores (a base archive or layout)
	proxy       *indexproxy.Proxy        // the index proxy (nil without an index)
}

func (e *Engine) newSession(s config.Skill) (*solveSession, error) {
	ss := &solveSession{skill: s, locals: map[string]fsutil.FS{}, col: newCollector()}
	ss.skill.Build.InRlimits = e.opts.noCgroups
	if sbllb.UsesIndex(s.Index) {
		ia, err := newIndexAccess(s.Index)
		if err != nil {
			return nil, err
		}
		ss.closers = append(ss.closers, ia.proxy.Close)
		ss.proxy, ss.origIndex, ss.trusted = ia.proxy, ia.urls, ia.proxy.TrustedHosts()
		if e.fetch != nil {
			// A remote builder fetches with its own HTTP source (remote.go).
			remove := e.fetch.add(ia.proxy)
			ss.closers = append(ss.closers, func() error { remove(); return nil })
		}
		ss.skill.Index.URL, ss.skill.Index.ExtraURLs = ia.step[0], ia.step[1:]
		ss.sources.Origins = ia.origins
		ss.attachables = append(ss.attachables, ia.proxy.Attachable(sbllb.IndexSocketID))
	}
	for i, dir := range s.Index.FindLinks {
		fs, err := fsutil.NewFS(dir)
		if err != nil {
			ss.close()
			return nil, fmt.Errorf("find-links directory %s: %w", dir, errdefs.ErrInvalidArgument)
		}
		ss.locals[sbllb.FindLinksName(i)] = fs
		ss.sources.FindLinks = append(ss.sources.FindLinks, sbllb.FindLinksPath(i))
	}
	if err := e.useBase(ss); err != nil {
		ss.close()
		return nil, err
	}
	return ss, nil
}

// indexAccess is a build's way to its index: the proxy every request
// goes through, the index URLs as configured and as a step sees them, and
// the origins the lock's files may come from.
type indexAccess struct {
	proxy      *indexproxy.Proxy
	urls, step []string
	origins    []string
}

func newIndexAccess(ix config.Index) (*indexAccess, error) {
	urls := indexURLs(ix)
	proxy, err := indexproxy.New(urls, proxyOpts(urls)...)
	if err != nil {
		return nil, err
	}
	ia := &indexAccess{proxy: proxy, urls: urls, step: proxy.StepURLs()}
	if ia.origins, err = origins(append(append([]string{}, ia.step...), urls...), proxyOpts(urls) != nil); err != nil {
		proxy.Close()
		return nil, err
	}
	return ia, nil
}

func (ss *solveSession) close() {
	for _, c := range ss.closers {
		c() //nolint:errcheck
	}
}

// run solves buildFn with progress going to the collector and to status
// (closed when done). Errors of our own (set through fail) come back with
// their type; a failed step is explained from its log.
func (e *Engine) run(ctx context.Context, ss *solveSession, exports []bkclient.ExportEntry, status chan *bkclient.SolveStatus,
	buildFn func(ctx context.Context, c gateway.Client, fail func(error) error) (*gateway.Result, error)) (*bkclient.SolveResponse, error) {
	if status != nil {
		defer close(status)
	}
	s := ss.skill
	if s.Build.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, s.Build.Timeout, errBuildTimeout)
		defer cancel()
	}
	if err := e.cg.setPids(s.Build.Pids); err != nil {
		return nil, err
	}
	// Errors returned from buildFn cross BuildKit's gateway as strings; keep
	// our own typed errors aside and return them as they are.
	var funcErr error
	fail := func(err error) error {
		funcErr = err
		return err
	}
	statusCh := make(chan *bkclient.SolveStatus)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for st := range statusCh {
			st = noteCacheMiss(st)
			ss.col.add(st)
			if status != nil {
				status <- st
			}
		}
	}()
	resp, err := e.client.Build(ctx, bkclient.SolveOpt{
		Exports:      exports,
		CacheExports: ss.cacheExp,
		CacheImports: ss.cacheImp,
		// Not nil: BuildKit's client copies the cache imports' attributes
		// into it.
		FrontendAttrs: map[string]string{},
		LocalMounts:   ss.locals,
		OCIStores:     ss.ociStores,
		Session:       ss.attachables,
	}, "skillbuild", func(ctx context.Context, c gateway.Client) (*gateway.Result, error) {
		return buildFn(ctx, withCacheImports(c, ss.cacheImp), fail)
	}, statusCh)
	wg.Wait()
	if err != nil {
		// The build timeout wins over what a step made of being cancelled
		// by it: the build function sees BuildKit's context, not ours.
		if funcErr != nil && !errors.Is(context.Cause(ctx), errBuildTimeout) {
			return nil, funcErr
		}
		if gone := e.builderGone(ctx, err); gone != nil {
			return nil, gone
		}
		return nil, explain(ctx, err, ss.skill, ss.origIndex, ss.col)
	}
	return resp, nil
}

// resolved is the outcome of the resolve phase inside a build function.
type resolved struct {
	venv     llb.State
	baseCfg  []byte
	baseRef  string // pinned by digest
	baseDgst digest.Digest
	lock     lock.Lock
	report   llb.State // the resolve step's output (ReportFile)
	// env is the base's python environment step, when the builtin
	// resolver resolved: kept in a registry cache like the report.
	env llb.State
	// how is ResolveFull or ResolveAdded; fallback why a previous lock
	// was not extended.
	how, fallback string
	// resolver is ResolverBuiltin or ResolverPip; resolverFallback why
	// pip resolved in auto mode.
	resolver, resolverFallback string
}

// resolve runs the resolve step (in the base image: it needs no venv) and
// reads the lock back. With prepareVenv the venv step is solved meanwhile,
// so it is ready (cached) when the install steps need it.
func (e *Engine) resolve(ctx context.Context, c gateway.Client, ss *solveSession, refresh, prepareVenv bool, prev *lock.Document, fail func(error) error) (*resolved, error) {
	s := ss.skill
	_, dgst, cfgBytes, err := c.ResolveImageConfig(ctx, s.Base, ss.base.resolveOpt())
	if err != nil {
		return nil, fail(ss.base.missing(s.Base, err))
	}
	r := &resolved{baseCfg: cfgBytes, baseRef: pinRef(s.Base, dgst), baseDgst: dgst}
	base := ss.base.state(r.baseRef)
	r.venv = sbllb.Venv(base, s)
	if len(s.Requirements) == 0 {
		return r, nil
	}
	if prepareVenv {
		if vdef, err := r.venv.Marshal(ctx); err == nil {
			// A failure here resurfaces, explained, in the install solve.
			go c.Solve(ctx, gateway.SolveRequest{Definition: vdef.ToPB(), Evaluate: true}) //nolint:errcheck
		}
	}
	if done, err := e.resolveBuiltin(ctx, c, ss, r, base, prev, refresh); err != nil {
		return nil, fail(err)
	} else if done {
		return r, nil
	}
	r.resolver = ResolverPip
	if prev != nil && !refresh {
		ok, err := resolveAdded(ctx, c, ss, r, base, prev)
		if err != nil {
			return nil, fail(err)
		}
		if ok {
			return r, nil
		}
	}
	r.how = ResolveFull
	out := sbllb.Resolve(base, s, sbllb.ResolveOpts{Trusted: ss.trusted, Refresh: refresh})
	locked, err := solveResolve(ctx, c, ss, out, fail)
	if err != nil {
		return nil, err
	}
	r.report, r.lock = out, locked
	return r, nil
}

// solveResolve solves a resolve step and reads its report back as a
// lock. The report was written by a step that may have run package code:
// nothing in it is fetched unless it comes from where that step was
// allowed to look.
func solveResolve(ctx context.Context, c gateway.Client, ss *solveSession, out llb.State, fail func(error) error) (lock.Lock, error) {
	def, err := out.Marshal(ctx)
	if err != nil {
		return nil, fail(err)
	}
	rr, err := c.Solve(ctx, gateway.SolveRequest{Definition: def.ToPB()})
	if err != nil {
		return nil, err
	}
	ref, err := rr.SingleRef()
	if err != nil {
		return nil, fail(err)
	}
	b, err := ref.ReadFile(ctx, gateway.ReadRequest{Filename: sbllb.ReportFile})
	if err != nil {
		return nil, err // the resolve step failed: explained from its log
	}
	locked, err := lock.ParseReport(b)
	if err != nil {
		return nil, fail(err)
	}
	if err := locked.Check(ss.sources); err != nil {
		return nil, fail(err)
	}
	if err := checkSdists(locked, ss.skill.Index.AllowSdist); err != nil {
		return nil, fail(err)
	}
	return locked, nil
}

// resolveAdded resolves only what the skill's requirements add to prev's
// (llb.ResolveAdded) when prev may be extended: resolved on the same base
// (r.baseDgst), its requirements all still there, at least one added, no
// source distributions allowed (their build code would run next to the
// view). ok is false, with r.fallback saying why, when the full resolve
// must run instead: prev does not qualify, the step failed, or its
// report replaces a locked distribution. The lock it makes is prev's plus
// the report's, checked like a full resolve's; the scan gate sees all of
// it. An error is one a full resolve would not cure.
func resolveAdded(ctx context.Context, c gateway.Client, ss *solveSession, r *resolved, base llb.State, prev *lock.Document) (ok bool, err error) {
	s := ss.skill
	reqs := make([]string, len(s.Requirements))
	names := make([]string, len(s.Requirements))
	for i, q := range s.Requirements {
		reqs[i], names[i] = q.Raw, q.Name
	}
	if why := addedApplies(prev, reqs, r.baseDgst, s.Index.AllowSdist); why != "" {
		r.fallback = why
		return false, nil
	}
	prevLock := prev.Lock()
	out, err := sbllb.ResolveAdded(base, s, prevLock, sbllb.ResolveOpts{Trusted: ss.trusted})
	if err != nil {
		r.fallback = err.Error()
		return false, nil
	}
	// A report the checks refuse (a file from elsewhere) stops the build
	// as a full resolve's would; a step that failed is left to the full
	// resolve, which explains its own failure.
	var refused error
	added, err := solveResolve(ctx, c, ss, out, func(err error) error { refused = err; return err })
	if refused != nil {
		return false, refused
	}
	if err != nil {
		r.fallback = "resolving what was added failed: " + firstLine(err.Error())
		return false, nil
	}
	locked, err := lock.Extend(prevLock, added, names)
	if err != nil {
		r.fallback = err.Error()
		return false, nil
	}
	// Everything the previous lock holds came from where this resolve may
	// look (the same index settings); checked again all the same.
	if err := locked.Check(ss.sources); err != nil {
		return false, err
	}
	r.report, r.lock, r.how = out, locked, ResolveAdded
	return true, nil
}

// addedApplies says why prev cannot be extended to the requirement lines
// reqs on the base whose digest is base (empty: it can).
func addedApplies(prev *lock.Document, reqs []string, base digest.Digest, allowSdist bool) string {
	if allowSdist {
		return "source distributions are allowed"
	}
	if prev.BaseDigest != base.String() {
		return "the previous lock was resolved on another base"
	}
	if ok, why := prev.Incremental(reqs); !ok {
		return why
	}
	return ""
}

// Resolve resolves the skill's requirements exactly as Build does and
// returns the lock, without fetching or installing anything. status (may
// be nil) receives BuildKit's progress; Resolve closes it.
func (e *Engine) Resolve(ctx context.Context, s config.Skill, status chan *bkclient.SolveStatus) (lock.Lock, error) {
	ss, err := e.newSession(s)
	if err != nil {
		if status != nil {
			close(status)
		}
		return nil, err
	}
	defer ss.close()
	var locked lock.Lock
	_, err = e.run(ctx, ss, nil, status, func(ctx context.Context, c gateway.Client, fail func(error) error) (*gateway.Result, error) {
		r, err := e.resolve(ctx, c, ss, false, false, nil, fail)
		if err != nil {
			return nil, err
		}
		locked = r.lock
		return gateway.NewResult(), nil
	})
	return locked, err
}

// Build resolves, gates, installs and exports the skill, and tags the
// image only after everything succeeded. On failure it still returns a
// Result with the steps that ran and their logs (no image).
func (e *Engine) Build(ctx context.Context, req Request) (*Result, error) {
	b, err := e.prepare(ctx, req)
	if err != nil {
		if req.Status != nil {
			close(req.Status)
		}
		return nil, err
	}
	defer b.close(ctx)
	resp, err := e.run(ctx, b.ss, b.exports, req.Status, b.solve)
	if err != nil {
		// What ran before the failure is part of the answer (a refusal
		// must show that nothing was installed).
		return b.failed(e, e.cacheError(err, req.Cache))
	}
	res, err := e.tag(ctx, b, resp)
	if err != nil {
		return b.failed(e, err)
	}
	return res, nil
}

// failed is the answer of a build that did not tag: the steps that ran and
// their logs, no image.
func (b *build) failed(e *Engine, err error) (*Result, error) {
	cached, executed := b.ss.col.counts()
	return &Result{Cached: cached, Executed: executed, Logs: b.ss.col.logLines(), LimitsEnforced: e.LimitsEnforced(b.req.Skill.Build)}, err
}

// build is one Build in progress: what prepare fixed, and what the solve
// learnt (the resolution and the verdict's labels).
type build struct {
	e          *Engine
	req        Request
	finalName  string
	specDigest digest.Digest
	// indexDigest is recorded so that a later build with the same index
	// settings may extend this build's lock (labels.IndexDigest).
	indexDigest digest.Digest
	outs        []Output
	exports     []bkclient.ExportEntry
	ss          *solveSession
	r           *resolved
	installed   sbllb.Installed
	gateLabel   map[string]string
	// checkExported says the engine checks the distribution layers from
	// the exported image (layerfiles.go) rather than in a step.
	checkExported bool
}

// prepare names the image, digests the spec and opens the solve session.
func (e *Engine) prepare(ctx context.Context, req Request) (*build, error) {
	s := req.Skill
	finalName, err := store.ImageName(s.Tag())
	if err != nil {
		return nil, err
	}
	sd, err := spec.Digest(s, spec.Layering{MaxLayers: req.Layers.MaxLayers, SingleLayer: req.Layers.SingleLayer})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", err, errdefs.ErrInvalidArgument)
	}
	ixd, err := spec.IndexDigest(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", err, errdefs.ErrInvalidArgument)
	}
	outs, exports, err := e.outputs(ctx, req, s.ID, finalName)
	if err != nil {
		return nil, err
	}
	ss, err := e.newSession(s)
	if err == nil {
		var attach []session.Attachable
		ss.cacheExp, ss.cacheImp, attach, err = e.cacheOptions(req.Cache)
		ss.attachables = append(ss.attachables, attach...)
		if err != nil {
			ss.close()
		}
	}
	if err != nil {
		return nil, err
	}
	return &build{e: e, req: req, finalName: finalName, specDigest: sd, indexDigest: ixd, outs: outs, exports: exports, ss: ss,
		checkExported: e.opts.builder == BuilderEmbedded && e.ctd != nil}, nil
}

// close ends the session; what the outputs wrote is published (commit) or
// gone: a staging name never outlives the build.
func (b *build) close(ctx context.Context) {
	for _, o := range b.outs {
		o.discard(context.WithoutCancel(ctx))
	}
	b.ss.close()
}

// solve is the build function: resolve, gate, install, image config.
func (b *build) solve(ctx context.Context, c gateway.Client, fail func(error) error) (*gateway.Result, error) {
	var err error
	b.r, err = b.e.resolve(ctx, c, b.ss, b.req.Refresh, true, b.req.Previous, fail)
	if err != nil {
		return nil, err
	}
	if b.req.Gate != nil {
		if b.gateLabel, err = b.req.Gate(ctx, b.r.lock); err != nil {
			return nil, fail(err)
		}
	}
	res, err := b.install(ctx, c, fail)
	if err != nil {
		return nil, err
	}
	extra := map[string]string{}
	maps.Copy(extra, b.req.Labels)
	maps.Copy(extra, b.gateLabel)
	cfg, err := sbllb.ImageConfig(b.r.baseCfg, b.req.Skill, b.r.lock, b.r.baseRef, b.r.baseDgst, extra)
	if err == nil {
		cfg, err = withHistory(cfg, b.r.baseCfg, b.installed)
	}
	if err != nil {
		return nil, fail(err)
	}
	res.AddMeta(exptypes.ExporterImageConfigKey, cfg)
	// The base's layers are kept as they are when timestamps are
	// rewritten (exportSpec): only the skill's own layers are.
	res.AddMeta(exptypes.ExporterImageBaseConfigKey, b.r.baseCfg)
	return res, nil
}

// install solves the per-distribution layers over the venv, checked for
// files two distributions write.
func (b *build) install(ctx context.Context, c gateway.Client, fail func(error) error) (*gateway.Result, error) {
	lo := b.req.Layers
	lo.Trusted = b.ss.trusted
	installed, err := sbllb.Install(b.r.venv, b.ss.skill, b.r.lock, lo)
	if err != nil {
		return nil, fail(err)
	}
	b.installed = installed
	if !b.checkExported {
		if err := checkLayers(ctx, c, b.r.venv, installed, b.ss.skill, fail); err != nil {
			return nil, err
		}
	}
	root := installed.Root
	if b.req.Cache.To != "" {
		anchors := []llb.State{b.r.report, b.r.env}
		if len(installed.Layers) > 0 && !b.checkExported {
			anchors = append(anchors, sbllb.ListLayers(b.r.venv, installed, b.ss.skill))
		}
		root = withCacheAnchors(root, anchors...)
	}
	def, err := root.Marshal(ctx)
	if err != nil {
		return nil, fail(err)
	}
	return c.Solve(ctx, gateway.SolveRequest{Definition: def.ToPB()})
}

// tag points the skill's name at the exported image (tag last: only now
// does the name change) and describes the result.
func (e *Engine) tag(ctx context.Context, b *build, resp *bkclient.SolveResponse) (*Result, error) {
	s, r := b.req.Skill, b.r
	pkgs := make([]Package, len(r.lock))
	for i, d := range r.lock {
		pkgs[i] = Package{Name: d.Name, Version: d.Version}
	}
	recordLabels := map[string]string{
		labels.SkillID:      s.ID,
		labels.SkillVersion: s.Version,
		labels.LockDigest:   r.lock.Digest().String(),
		labels.Packages:     fmt.Sprint(len(r.lock)),
		labels.BaseDigest:   r.baseDgst.String(),
		labels.SpecDigest:   b.specDigest.String(),
		labels.IndexDigest:  b.indexDigest.String(),
	}
	img, err := exportedImage(b.finalName, resp.ExporterResponse, recordLabels)
	if err != nil {
		return nil, err
	}
	img.marks = b.req.Marks
	if b.checkExported {
		// Before any output commits: a layer that fails leaves no tag.
		baseLayers, err := layers.DiffIDCount(r.baseCfg)
		if err == nil {
			err = layerStepError(layers.CheckImage(ctx, e.ctd.ContentStore(), img.desc, baseLayers, b.installed.Locks, filepath.Join(e.opts.root, layers.ListDir)))
		}
		if err != nil {
			return nil, err
		}
	}
	// Containerd outputs tag an index holding the image and its SBOM and
	// verdict attestations (see attach), not the bare manifest.
	img.attach = func(ctx context.Context, cs content.Store, target ocispec.Descriptor) (ocispec.Descriptor, error) {
		index, err := attach(ctx, cs, s, r, target, b.finalName, b.req.Attestations)
		if err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("attach the SBOM and verdict to %s: %w", store.Familiar(b.finalName), err)
		}
		return index, nil
	}
	tagged := img.desc
	img.tagged = &tagged
	for _, o := range b.outs {
		if err := o.commit(ctx, img); err != nil {
			return nil, err
		}
	}
	cached, executed := b.ss.col.counts()
	return &Result{
		ImageTag:       store.Familiar(b.finalName),
		ImageName:      b.finalName,
		Digest:         tagged.Digest,
		ManifestDigest: img.desc.Digest,
		Lock:           r.lock,
		Packages:       pkgs,
		Labels:         b.gateLabel,
		Cached:         cached,
		Executed:       executed,
		Logs:           b.ss.col.logLines(),

		LimitsEnforced:   e.LimitsEnforced(b.req.Skill.Build),
		Resolve:          r.how,
		ResolveFallback:  r.fallback,
		Resolver:         r.resolver,
		ResolverFallback: r.resolverFallback,
	}, nil
}

var errBuildTimeout = errors.New("build timeout")

func indexURLs(ix config.Index) []string {
	u := ix.URL
	if u == "" {
		u = "https://pypi.org/simple"
	}
	return append([]string{u}, ix.ExtraURLs...)
}

// origins are the allowed origins of the lock's files, the same hosts the
// index proxy lets the resolve step reach: the index URLs as configured and
// as the step saw them (a virtual host stands in for an https index with
// credentials), and with PyPI its file host.
func origins(indexURLs []string, pypi bool) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, u := range indexURLs {
		o, err := lock.Origin(u)
		if err != nil {
			return nil, fmt.Errorf("index URL: %w: %w", err, errdefs.ErrInvalidArgument)
		}
		if !seen[o] {
			seen[o] = true
			out = append(out, o)
		}
	}
	if pypi {
		out = append(out, "https://"+indexproxy.PyPIFilesHost)
	}
	return out, nil
}

// proxyOpts allows the file host that pypi.org's pages link to.
func proxyOpts(urls []string) []indexproxy.Opt {
	for _, u := range urls {
		if strings.Contains(u, "://pypi.org/") {
			return []indexproxy.Opt{indexproxy.WithAllowedHosts(indexproxy.PyPIFilesHost)}
		}
	}
	return nil
}

// stagingName is a fresh staging name for skill id built with state root
// root; with an empty id it is the prefix of all of the root's staging
// names (the root's hash keeps roots sharing a namespace apart).
func stagingName(root, id string) string {
	prefix := store.StagingPrefix + digest.FromString(root).Encoded()[:12] + "-"
	if id == "" {
		return prefix
	}
	var b [8]byte
	rand.Read(b[:]) //nolint:errcheck
	return prefix + id + ":" + hex.EncodeToString(b[:])
}

func pinRef(ref string, dgst digest.Digest) string {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil || dgst == "" {
		return ref
	}
	c, err := reference.WithDigest(reference.TrimNamed(named), dgst)
	if err != nil {
		return ref
	}
	return c.String()
}

func baseMissing(base string, err error) error {
	return fmt.Errorf("base image %s is not in containerd and could not be pulled (%v); import one with `skillbuild base import --rootfs DIR --name %s` (or --oci-archive/--oci-layout), or pass --base: %w",
		base, firstLine(err.Error()), base, errdefs.ErrNotFound)
}

func checkSdists(locked lock.Lock, allow bool) error {
	if allow {
		return nil
	}
	for _, d := range locked {
		if d.Sdist {
			return fmt.Errorf("%s %s resolved to a source distribution (%s); source builds run arbitrary code at build time and are refused; pass --allow-sdist to allow them: %w",
				d.Name, d.Version, d.Filename, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}
