package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/moby/buildkit/client/llb"
	gateway "github.com/moby/buildkit/frontend/gateway/client"
	digest "github.com/opencontainers/go-digest"
	"github.com/skillbuild/skillbuild/config"
	"github.com/skillbuild/skillbuild/internal/indexproxy"
	sbllb "github.com/skillbuild/skillbuild/llb"
	"github.com/skillbuild/skillbuild/lock"
	"github.com/skillbuild/skillbuild/resolver"
	"golang.org/x/sys/unix"
)

// Which resolver made a build's lock (Result.Resolver).
const (
	// ResolverBuiltin is the in-process resolver (package resolver).
	ResolverBuiltin = config.ResolverBuiltin
	// ResolverPip is pip in the base image (the resolve step).
	ResolverPip = config.ResolverPip
)

// resolverDir is where, under the state root, the engine keeps what the
// builtin resolver needs between builds (the base images' python
// environments) and, per build, the wheels it downloaded.
const resolverDir = "resolver"

// resolverMode is the resolver s asks for, or the engine's default.
func (e *Engine) resolverMode(s config.Skill) string {
	if s.Resolver != "" {
		return s.Resolver
	}
	return e.opts.resolver
}

// resolveBuiltin resolves s's requirements in process (package
// resolver) unless the skill or the engine asks for pip. It reads the
// index through the build's index proxy, as the resolve step would, and
// names the files the same way the step would see them, so the lock is
// the one pip gives; it is checked as a resolve step's would be. With
// prev (and not refresh), it extends prev's lock when the requirements
// only add to it, as resolveAdded does with pip.
//
// done is false when pip must resolve instead; r.resolverFallback then
// says why (auto mode). In builtin mode that is an error. A resolution
// pip would refuse is a *StepError explained as pip's refusal is.
func (e *Engine) resolveBuiltin(ctx context.Context, c gateway.Client, ss *solveSession, r *resolved, base llb.State, prev *lock.Document, refresh bool) (done bool, err error) {
	s := ss.skill
	mode := e.resolverMode(s)
	if mode == config.ResolverPip {
		return false, nil
	}
	declined := func(why string) (bool, error) {
		if mode == config.ResolverBuiltin {
			return false, fmt.Errorf("the builtin resolver cannot resolve this skill (%s); use --resolver pip or auto: %w", why, errdefs.ErrNotImplemented)
		}
		r.resolverFallback = why
		return false, nil
	}
	if s.Index.AllowSdist {
		return declined("source distributions are allowed")
	}
	envStep := sbllb.PythonEnvironment(base, s, resolver.EnvironmentScript)
	env, err := e.pythonEnvironment(ctx, c, r.baseDgst, envStep)
	if errors.Is(err, resolver.ErrUnsupported) {
		return declined(err.Error())
	}
	if err != nil {
		return false, err
	}
	r.env = envStep
	wheels, err := os.MkdirTemp(filepath.Join(e.opts.root, resolverDir), "wheels-")
	if err != nil {
		return false, fmt.Errorf("builtin resolver: %w", err)
	}
	ss.closers = append(ss.closers, func() error { return os.RemoveAll(wheels) })
	rs, err := newBuiltinResolver(s, ss.proxy, ss.trusted, env, wheels)
	if errors.Is(err, resolver.ErrUnsupported) {
		return declined(err.Error())
	}
	if err != nil {
		return false, err
	}
	lines := make([]string, len(s.Requirements))
	names := make([]string, len(s.Requirements))
	for i, q := range s.Requirements {
		lines[i], names[i] = q.Raw, q.Name
	}
	if prev != nil && !refresh {
		if ok, err := e.resolveBuiltinAdded(ctx, rs, ss, r, prev, lines, names); err != nil || ok {
			return ok, err
		}
	}
	res, err := rs.Resolve(ctx, lines, nil)
	switch {
	case errors.Is(err, resolver.ErrUnsupported):
		return declined(err.Error())
	case err != nil:
		return false, explainBuiltin(ctx, err, s, ss.origIndex)
	}
	if err := e.acceptBuiltin(ss, r, res, res.Lock); err != nil {
		return false, err
	}
	r.how = ResolveFull
	return true, nil
}

// newBuiltinResolver is the builtin resolver for s, whose index URLs are
// the ones a step would get (through proxy), for the interpreter env.
func newBuiltinResolver(s config.Skill, proxy *indexproxy.Proxy, trusted []string, env *resolver.Environment, wheels string) (*resolver.Resolver, error) {
	opts := []resolver.Opt{resolver.WithEnvironment(env), resolver.WithWheelDir(wheels),
		resolver.WithRequirementsFile(sbllb.RequirementsFile), resolver.WithTrustedHosts(trusted...)}
	if sbllb.UsesIndex(s.Index) {
		opts = append(opts, resolver.WithTransport(proxy), resolver.WithIndexURLs(append([]string{s.Index.URL}, s.Index.ExtraURLs...)...))
	}
	for i, dir := range s.Index.FindLinks {
		opts = append(opts, resolver.WithFindLinks(dir, sbllb.FindLinksPath(i)))
	}
	return resolver.New(opts...)
}

// resolveBuiltinAdded is resolveAdded with the builtin resolver: prev's
// lock as the installed distributions, the lock prev's plus what was
// added. ok is false (r.fallback saying why) when everything must be
// resolved instead.
func (e *Engine) resolveBuiltinAdded(ctx context.Context, rs *resolver.Resolver, ss *solveSession, r *resolved, prev *lock.Document, lines, names []string) (bool, error) {
	if why := addedApplies(prev, lines, r.baseDgst, false); why != "" {
		r.fallback = why
		return false, nil
	}
	prevLock := prev.Lock()
	// The same lock the pip path could put in a view of it installed.
	for _, d := range prevLock {
		if _, _, err := sbllb.DistInfo(d); err != nil {
			r.fallback = err.Error()
			return false, nil
		}
	}
	res, err := rs.Resolve(ctx, lines, prevLock)
	if err != nil {
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		r.fallback = "resolving what was added failed: " + firstLine(err.Error())
		return false, nil
	}
	locked, err := lock.Extend(prevLock, res.Lock, names)
	if err != nil {
		r.fallback = err.Error()
		return false, nil
	}
	if err := e.acceptBuiltin(ss, r, res, locked); err != nil {
		return false, err
	}
	r.how = ResolveAdded
	return true, nil
}

// acceptBuiltin checks a builtin resolution's lock as a resolve step's
// report is checked, records it in r, and lets the install steps take the
// wheels the resolver downloaded instead of fetching them again.
func (e *Engine) acceptBuiltin(ss *solveSession, r *resolved, res *resolver.Result, locked lock.Lock) error {
	if err := locked.Check(ss.sources); err != nil {
		return err
	}
	if err := checkSdists(locked, ss.skill.Index.AllowSdist); err != nil {
		return err
	}
	if e.fetch != nil && len(res.Wheels) > 0 {
		remove := e.fetch.serveFiles(res.Wheels)
		ss.closers = append(ss.closers, func() error { remove(); return nil })
	}
	r.lock, r.resolver = locked, ResolverBuiltin
	return nil
}

// pythonEnvironment is the base's python environment for the builtin
// resolver: read from the state root when this base was looked at before
// on this kernel (marker values include the kernel's release) by this
// script, otherwise
// asked of the base in a step (llb.PythonEnvironment) and kept.
func (e *Engine) pythonEnvironment(ctx context.Context, c gateway.Client, base digest.Digest, step llb.State) (*resolver.Environment, error) {
	file := environmentFile(e.opts.root, base)
	if env, err, ok := cachedEnvironment(file); ok {
		return env, err
	}
	def, err := step.Marshal(ctx)
	if err != nil {
		return nil, err
	}
	res, err := c.Solve(ctx, gateway.SolveRequest{Definition: def.ToPB()})
	if err != nil {
		return nil, fmt.Errorf("the base's python could not describe itself (%v): %w", firstLine(err.Error()), resolver.ErrUnsupported)
	}
	ref, err := res.SingleRef()
	if err != nil {
		return nil, err
	}
	b, err := ref.ReadFile(ctx, gateway.ReadRequest{Filename: sbllb.EnvironmentFile})
	if err != nil {
		return nil, fmt.Errorf("the base's python could not describe itself (%v): %w", firstLine(err.Error()), resolver.ErrUnsupported)
	}
	env, perr := resolver.ParseEnvironment(b)
	if perr == nil || errors.Is(perr, resolver.ErrUnsupported) {
		if err := os.MkdirAll(filepath.Dir(file), 0o700); err == nil {
			writeFileAtomic(file, b) //nolint:errcheck // a cache: the next build asks again
		}
	}
	return env, perr
}

// environmentFile is where the state root keeps the python environment of
// the base whose manifest digest is base, as seen on this kernel by this
// skillbuild's EnvironmentScript.
func environmentFile(root string, base digest.Digest) string {
	var u unix.Utsname
	_ = unix.Uname(&u)
	key := digest.FromString(base.String() + "\x00" + unix.ByteSliceToString(u.Release[:]) + "\x00" + unix.ByteSliceToString(u.Version[:]) +
		"\x00" + resolver.EnvironmentScript).Encoded()
	return filepath.Join(root, resolverDir, "environments", key+".json")
}

// cachedEnvironment reads a kept environment; ok is false when there is
// none (or it is unreadable).
func cachedEnvironment(file string) (env *resolver.Environment, err error, ok bool) {
	b, rerr := os.ReadFile(file)
	if rerr != nil {
		return nil, nil, false
	}
	env, err = resolver.ParseEnvironment(b)
	if err == nil || errors.Is(err, resolver.ErrUnsupported) {
		return env, err, true
	}
	return nil, nil, false
}

// writeFileAtomic writes b to a temporary file beside path and renames it
// into place.
func writeFileAtomic(path string, b []byte) error {
	var rnd [6]byte
	rand.Read(rnd[:]) //nolint:errcheck
	tmp := path + ".tmp-" + hex.EncodeToString(rnd[:])
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// explainBuiltin turns the builtin resolver's refusal into the error the
// pip path gives for the same refusal (explainResolve).
func explainBuiltin(ctx context.Context, err error, s config.Skill, index []string) error {
	se := &StepError{Step: sbllb.StepResolve, Err: err}
	var conflict *resolver.ConflictError
	var noMatch *resolver.NoMatchError
	var python *resolver.PythonError
	switch {
	case errors.As(err, &conflict):
		se.Reason, se.Hint = explainConflictParts(conflict.Triggers, conflict.Causes, s)
	case errors.As(err, &noMatch):
		versions := strings.Join(noMatch.Versions, ", ")
		if versions == "" {
			versions = "none"
		}
		explainNoVersion(ctx, se, noMatch.Requirement, versions, s, index)
	case errors.As(err, &python):
		explainPython(se, firstLine(python.Message))
	default:
		return fmt.Errorf("builtin resolver: %w", err)
	}
	se.Log = strings.Split(err.Error(), "\n")
	return se
}
