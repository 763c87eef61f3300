package skill

import (
	"context"
	"errors"
	"fmt"
	"syscall"

	ctd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
	"github.com/skillbuild/skillbuild/config"
	"github.com/skillbuild/skillbuild/registry"
	"github.com/skillbuild/skillbuild/runtime"
	"github.com/skillbuild/skillbuild/skill/api"
)

// Run runs code in a skill's image (or the request's image), sandboxed,
// and returns what it did. err is the failure of the run itself (the
// image is missing, the request is bad, it was refused or interrupted);
// what the code did (an exception, a timeout, an OOM kill) is in the
// document with err nil.
func (s *Service) Run(ctx context.Context, req api.RunRequest) (*api.RunResult, error) {
	out := &api.RunResult{SkillID: req.SkillID}
	in := req.Input()
	if in.ID != "" {
		out.SkillID = in.ID
	}
	skill, err := s.load(in)
	if err != nil {
		return fillRun(out, runtime.Result{}, err), err
	}
	out.SkillID = skill.ID
	if err := s.checkCeilings(skill.Run, req.User); err != nil {
		return fillRun(out, runtime.Result{}, err), err
	}
	files, err := inFiles(req.Files)
	if err != nil {
		return fillRun(out, runtime.Result{}, err), err
	}
	rreq := runtime.Request{Code: []byte(req.Code), Inputs: req.Inputs, Limits: runtime.Limits(skill.Run), User: req.User, Preload: req.Preload,
		Files: files, Stdout: req.Local.Stdout, Stderr: req.Local.Stderr}
	rreq.Image, out.ImageTag, err = runImage(skill, req.Image)
	if err != nil {
		return fillRun(out, runtime.Result{}, err), err
	}
	opts := admitOpts{policy: skill.Policy, allowUnscanned: req.Local.AllowUnscanned,
		result: func(a *api.Admission) { out.Admission, out.Unscanned = a, a.Unscanned }}
	if s.pool() != nil || s.opts.runPolicy != nil {
		// A server's callers bring no policy: the operator's applies.
		if opts.policy, err = s.serverPolicy(); err != nil {
			return fillRun(out, runtime.Result{}, err), err
		}
	}
	var res runtime.Result
	if pool := s.pool(); pool != nil {
		res, err = s.runWarm(ctx, pool, rreq, opts)
		err = s.runError(err, skill, req.Image, out.ImageTag)
		return fillRun(out, res, err), err
	}
	res, err = s.runCold(ctx, req.Local, rreq, opts)
	if cause := context.Cause(ctx); err != nil && errors.Is(cause, syscall.EPIPE) {
		err = fmt.Errorf("%w: the run was stopped and cleaned up", cause)
	}
	err = s.runError(err, skill, req.Image, out.ImageTag)
	if errors.Is(err, runtime.ErrLimitsNotEnforceable) {
		err = s.limitsRefused(err)
	}
	return fillRun(out, res, err), err
}

// runCold runs in a container of its own: pull the image if asked, then
// run it once admitted (the runner asks admission with the record it
// found).
func (s *Service) runCold(ctx context.Context, local api.RunLocal, req runtime.Request, opts admitOpts) (runtime.Result, error) {
	// The sweep of dead runs' leftovers goes on beside this run (it never
	// touches a live one) and is waited for by Close.
	client, err := s.containerd(ctx, sweepAside)
	if err != nil {
		return runtime.Result{}, err
	}
	if err := s.pullForRun(ctx, client, local.Pull, req.Image); err != nil {
		return runtime.Result{}, err
	}
	ropts := append([]runtime.Opt{runtime.WithStateDir(s.runsDir()), runtime.WithoutSweep(), runtime.WithAdmission(s.admitter(client, opts))},
		s.runtimeModeOpts(!local.AcceptRlimits)...)
	if local.Trace != nil {
		ropts = append(ropts, runtime.WithTrace(local.Trace)) // how long each step took
	}
	runner, err := runtime.New(ctx, client, ropts...)
	if err != nil {
		return runtime.Result{}, err
	}
	p, err := runner.Prepare(ctx, req)
	if errors.Is(err, runtime.ErrImageNotFound) || errors.Is(err, runtime.ErrLimitsNotEnforceable) {
		return runtime.Result{LimitsEnforced: runner.LimitsEnforced()}, err
	}
	if err != nil {
		return runtime.Result{}, err
	}
	return runner.RunPrepared(ctx, p)
}

// runWarm runs in a warm container of the pool, once the image is
// admitted for this request (the pool's runner admits every container it
// starts too, through the same decisions).
func (s *Service) runWarm(ctx context.Context, pool *runtime.Pool, req runtime.Request, opts admitOpts) (runtime.Result, error) {
	req, res, err := s.admitWarm(ctx, req, opts)
	if err != nil {
		return res, err
	}
	return pool.Run(ctx, req)
}

// admitWarm admits the image of req for a warm container of the pool (a
// run or a session) and fills in the preload list of the image when req
// has none. When the image is missing, the Result says how the limits
// would have been held.
func (s *Service) admitWarm(ctx context.Context, req runtime.Request, opts admitOpts) (runtime.Request, runtime.Result, error) {
	client, err := s.containerd(ctx, sweepNone)
	if err != nil {
		return req, runtime.Result{}, err
	}
	rec, err := client.ImageService().Get(ctx, req.Image)
	if errdefs.IsNotFound(err) {
		// How the limits would have been held, as a run of its own says.
		s.mu.Lock()
		runner := s.runner
		s.mu.Unlock()
		var res runtime.Result
		if runner != nil {
			res.LimitsEnforced = runner.LimitsEnforced()
		}
		return req, res, fmt.Errorf("image %s: %w", req.Image, runtime.ErrImageNotFound)
	}
	if err != nil {
		return req, runtime.Result{}, err
	}
	a, err := s.admit(ctx, client, rec, opts)
	if a != nil && opts.result != nil {
		opts.result(a)
	}
	if err != nil {
		return req, runtime.Result{}, err
	}
	if len(req.Preload) == 0 {
		// The skill's own list, from its skill.yaml.
		req.Preload = s.preloadOf(ctx, req.Image)
	}
	return req, runtime.Result{}, nil
}

// pullForRun pulls the image of a run as mode says: always, when missing,
// or never. By default an image whose name names a registry is pulled when
// missing.
func (s *Service) pullForRun(ctx context.Context, client *ctd.Client, mode, name string) error {
	if mode == "" {
		mode = "never"
		if registry.NamesRegistry(name) {
			mode = "missing"
		}
	}
	switch mode {
	case "never":
		return nil
	case "missing":
		_, err := client.ImageService().Get(ctx, name)
		if err == nil || !errdefs.IsNotFound(err) {
			return err
		}
	case "always":
	default:
		return fmt.Errorf("--pull %q: expected missing, always or never: %w", mode, errdefs.ErrInvalidArgument)
	}
	if !registry.NamesRegistry(name) {
		return fmt.Errorf("--pull %s: %s names no registry to pull from: %w", mode, name, errdefs.ErrInvalidArgument)
	}
	res, err := s.pullImage(ctx, client, name, "", OriginRegistry, false)
	if err != nil {
		return err
	}
	fmt.Fprintf(s.opts.log, "pulled %s: %d bytes fetched\n", res.Ref, res.BytesFetched)
	return nil
}

// runImage is the image reference a run of skill uses (image, when given,
// instead of the skill's tag) as containerd stores it, and as shown to the
// user.
func runImage(skill config.Skill, image string) (ref, tag string, err error) {
	tag = skill.Tag()
	ref = tag
	if image != "" {
		ref, tag = image, image
	}
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return "", "", fmt.Errorf("image reference %q: %v: %w", ref, err, errdefs.ErrInvalidArgument)
	}
	if image == "" {
		tag = reference.FamiliarString(reference.TagNameOnly(named))
	}
	return reference.TagNameOnly(named).String(), tag, nil
}

// runError turns a missing image into an error that says what to do.
func (s *Service) runError(err error, skill config.Skill, image, tag string) error {
	if errors.Is(err, runtime.ErrLimitsNotEnforceable) && s.pool() != nil {
		return fmt.Errorf("run refused: this server cannot hold run limits with cgroups (rootless without a delegated cgroup subtree); "+
			"its operator can delegate one with `skillbuild rootless setup --user USER` as root: %w", err)
	}
	if !errors.Is(err, runtime.ErrImageNotFound) {
		return err
	}
	hint := "run `skillbuild install " + skill.ID + "` first"
	if skill.Version != "1" {
		hint = "run `skillbuild install --version " + skill.Version + " " + skill.ID + "` first"
	}
	apiHint := fmt.Sprintf("install it first (POST /v1/install with skill_id %q, version %q)", skill.ID, skill.Version)
	if image != "" {
		hint = "run `skillbuild base import`, or pull it into containerd, first"
		apiHint = "import or pull it on the server first"
	}
	return &notFoundError{msg: fmt.Sprintf("image %s not found, %s", tag, s.advise(hint, apiHint))}
}

// fillRun records what a run did; err is the failure of the run itself,
// if any (then the document's error says what it was).
func fillRun(out *api.RunResult, res runtime.Result, err error) *api.RunResult {
	if ran := res.Duration > 0 || err == nil; ran {
		// Only a process that ran has an exit status and a user.
		out.ExitCode, out.UID, out.GID = &res.ExitCode, &res.UID, &res.GID
	}
	out.Stdout, out.Stderr = res.Stdout, res.Stderr
	out.Result = res.Result
	if res.Error != nil {
		out.Error = &api.CodeError{Type: res.Error.Type, Message: res.Error.Message, Traceback: res.Error.Traceback}
	}
	out.TimedOut, out.OOMKilled, out.Truncated = res.TimedOut, res.OOMKilled, res.Truncated
	out.DurationMS = res.Duration.Milliseconds()
	out.LimitsEnforced = res.LimitsEnforced
	out.Files, out.FilesOmitted = outFiles(res.Files), res.FilesOmitted
	if err != nil && out.Error == nil {
		out.Error = &api.CodeError{Type: runErrorType(err), Message: err.Error()}
	}
	return out
}

// runErrorType is the error type of a run that did not happen.
func runErrorType(err error) string {
	switch {
	case errdefs.IsNotFound(err):
		return "ImageNotFound"
	case errdefs.IsInvalidArgument(err):
		return "InvalidRequest"
	case api.IsInterrupted(err):
		return "Interrupted"
	case errdefs.IsUnavailable(err):
		return "Unavailable"
	case errors.Is(err, runtime.ErrLimitsNotEnforceable):
		return "LimitsNotEnforceable"
	default:
		return "RunFailed"
	}
}

// FailedRun is the document of a run that failed before the service could
// start it (a request the command line could not build, bad settings of
// the service itself).
func FailedRun(req api.RunRequest, err error) *api.RunResult {
	return fillRun(&api.RunResult{SkillID: req.SkillID}, runtime.Result{}, err)
}
