package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"syscall"

	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
	"github.com/skillbuild/skillbuild/config"
	"github.com/skillbuild/skillbuild/runtime"
	"github.com/urfave/cli/v2"
)

// Exit statuses of `skillbuild run` (without --json) when the code did not
// exit by itself.
const (
	exitRunTimedOut = 124 // like timeout(1)
	exitRunOOM      = 137 // 128+SIGKILL, as a shell reports an OOM kill
)

func runCommand() *cli.Command {
	return &cli.Command{
		Name:  "run",
		Usage: "run Python code in a skill's image, sandboxed: inputs as JSON in, result as JSON out",
		Description: `Runs the code in a container of atom-skill:<id>-v<version> (or --image) with
a read-only image, no network, no capabilities and the given limits. The code
sees a global dict "inputs"; a global "result" it sets is reported as JSON.

Without --json the code's stdout and stderr pass through, a result is printed
as one JSON line on stdout after them, and the exit status is the code's
(124 after a timeout, 137 after an OOM kill). With --json one document
{skill_id, image_tag, exit_code, stdout, stderr, result, error, timed_out,
oom_killed, truncated, duration_ms, uid, gid, limits_enforced} goes to stdout
and the exit status is 0 whenever the run itself worked, whatever the code did.

limits_enforced says how the memory, cpus and pids limits were held:
"cgroup", or "rlimit" for a rootless user without a delegated cgroup
subtree (per process: RLIMIT_AS, RLIMIT_CPU at cpus × timeout seconds,
RLIMIT_NPROC). Such a run is refused unless --require-limits=false.`,
		ArgsUsage: "SKILL_ID",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: config.FlagVersion, Value: "1", Usage: "skill `VERSION`"},
			&cli.StringFlag{Name: config.FlagRepo, Value: config.DefaultRepo, Usage: "image repository `NAME`"},
			&cli.StringFlag{Name: config.FlagFile, Aliases: []string{"f"}, Usage: "skill.yaml `FILE` (its run limits apply)"},
			&cli.StringFlag{Name: "code", Usage: "Python `FILE` to run"},
			&cli.StringFlag{Name: "c", Usage: "Python `CODE` to run"},
			&cli.StringFlag{Name: "inputs", Usage: "inputs as a JSON object"},
			&cli.StringFlag{Name: "inputs-file", Usage: "`FILE` with the inputs as a JSON object (- for stdin)"},
			&cli.StringFlag{Name: config.FlagMemory, Value: config.DefaultRunMemory, Usage: "memory limit (no swap)"},
			&cli.StringFlag{Name: config.FlagCPUs, Value: config.DefaultRunCPUs, Usage: "CPU limit"},
			&cli.StringFlag{Name: config.FlagPids, Value: config.DefaultRunPids, Usage: "process/thread limit"},
			&cli.StringFlag{Name: config.FlagTimeout, Value: config.DefaultRunTimeout, Usage: "wall-clock limit; at it every process is killed"},
			&cli.StringFlag{Name: config.FlagTmpfsSize, Value: config.DefaultRunTmpfsSize, Usage: "size of /tmp and of /dev/shm"},
			&cli.StringFlag{Name: config.FlagOutputLimit, Value: config.DefaultRunOutputLimit, Usage: "stdout and stderr are each cut at this size"},
			&cli.StringFlag{Name: "image", Usage: "run in image `REF` instead of the skill's"},
			&cli.StringFlag{Name: "user", Usage: "run as `UID[:GID]` instead of the image's USER (only this can be root)"},
			&cli.StringSliceFlag{Name: "preload", Usage: "import Python `MODULE` before the inputs are read (what serve's warm containers do ahead of a run)"},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON document on stdout"},
			&cli.BoolFlag{Name: "require-limits", Value: true, Usage: "rootless without cgroup delegation: refuse to run rather than hold memory, CPU and process limits with per-process rlimits"},
			&cli.StringFlag{Name: "pull", Usage: "pull the image first: `missing|always|never` (default: missing when its name names a registry, else never)"},
			&cli.BoolFlag{Name: "allow-unscanned", Usage: "run a pulled or loaded image that carries no passing scan verdict (loud, and recorded in the result)"},
		}, registryFlags()...),
		Action: runAction,
	}
}

// runOutput is the --json document of `skillbuild run`.
type runOutput struct {
	SkillID    string             `json:"skill_id"`
	ImageTag   string             `json:"image_tag"`
	ExitCode   int                `json:"exit_code"`
	Stdout     string             `json:"stdout"`
	Stderr     string             `json:"stderr"`
	Result     json.RawMessage    `json:"result"`
	Error      *runtime.CodeError `json:"error"`
	TimedOut   bool               `json:"timed_out"`
	OOMKilled  bool               `json:"oom_killed"`
	Truncated  bool               `json:"truncated"`
	DurationMS int64              `json:"duration_ms"`
	UID        uint32             `json:"uid"`
	GID        uint32             `json:"gid"`
	// LimitsEnforced says how the memory, cpus and pids limits were held:
	// cgroup, or rlimit (rootless without cgroup delegation, per process).
	LimitsEnforced map[string]string `json:"limits_enforced"`
	// Unscanned says why an image without a passing scan verdict ran
	// (--allow-unscanned); absent otherwise.
	Unscanned string `json:"unscanned,omitempty"`
}

// runRequest turns the flags into a run request, the skill and the image's
// tag as shown to the user.
func runRequest(c *cli.Context) (runtime.Request, config.Skill, string, error) {
	in := skillInput(c)
	if c.NArg() > 1 {
		return runtime.Request{}, config.Skill{}, "", fmt.Errorf("expected one SKILL_ID, got %q: %w", c.Args().Slice(), errdefs.ErrInvalidArgument)
	}
	in.ID = c.Args().First()
	skill, err := config.Load(in)
	if err != nil {
		return runtime.Request{}, skill, "", err
	}
	req := runtime.Request{Limits: skill.Run, User: c.String("user"), Preload: c.StringSlice("preload")}

	switch code, file := c.String("c"), c.String("code"); {
	case c.IsSet("c") && c.IsSet("code"):
		return req, skill, "", fmt.Errorf("give --code FILE or -c CODE, not both: %w", errdefs.ErrInvalidArgument)
	case c.IsSet("c"):
		req.Code = []byte(code)
	case file != "":
		b, err := config.ReadInput(file, config.MaxCodeSize)
		if err != nil {
			return req, skill, "", fmt.Errorf("--code: %w", err)
		}
		req.Code = b
	default:
		return req, skill, "", fmt.Errorf("no code: give --code FILE or -c CODE: %w", errdefs.ErrInvalidArgument)
	}

	switch {
	case c.IsSet("inputs") && c.IsSet("inputs-file"):
		return req, skill, "", fmt.Errorf("give --inputs or --inputs-file, not both: %w", errdefs.ErrInvalidArgument)
	case c.IsSet("inputs"):
		req.Inputs = json.RawMessage(c.String("inputs"))
	case c.IsSet("inputs-file"):
		var b []byte
		var err error
		if f := c.String("inputs-file"); f == "-" {
			b, err = readStdin(c.Context, c.App.Reader, config.MaxInputsSize)
		} else {
			b, err = config.ReadInput(f, config.MaxInputsSize)
		}
		if err != nil {
			return req, skill, "", fmt.Errorf("--inputs-file: %w", err)
		}
		req.Inputs = b
	}

	var tag string
	req.Image, tag, err = runImage(skill, c.String("image"))
	return req, skill, tag, err
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

func runAction(c *cli.Context) error {
	asJSON := c.Bool("json")
	out := &runOutput{SkillID: c.Args().First()}
	req, skill, tag, err := runRequest(c)
	out.ImageTag = tag
	if skill.ID != "" {
		out.SkillID = skill.ID
	}
	if err != nil {
		return emitRun(c, out, err)
	}
	runGC(req.Limits)
	// Ctrl-C and SIGTERM cancel c.Context (see main), and so does a reader
	// of the output that goes away (EPIPE); the runtime still cleans up.
	ctx, cancel := context.WithCancelCause(c.Context)
	defer cancel(nil)
	if !asJSON {
		req.Stdout = pipeWatch{w: c.App.Writer, name: "stdout", cancel: cancel}
		req.Stderr = pipeWatch{w: c.App.ErrWriter, name: "stderr", cancel: cancel}
	}
	// The sweep of dead runs' leftovers goes on beside this run (it never
	// touches a live one) and is waited for before the client closes.
	client, swept, err := dialSweepAside(c)
	if err != nil {
		return emitRun(c, out, err)
	}
	defer client.Close()
	defer swept()
	if err := pullForRun(c, client, req.Image); err != nil {
		return emitRun(c, out, err)
	}
	ropts := append([]runtime.Opt{runtime.WithStateDir(runsDir(c)), runtime.WithoutSweep()}, runtimeModeOpts(modeOf(c), c.Bool("require-limits"))...)
	if c.Bool("debug") {
		ropts = append(ropts, runtime.WithTrace(c.App.ErrWriter)) // how long each step took
	}
	runner, err := runtime.New(ctx, client, ropts...)
	if err != nil {
		return emitRun(c, out, err)
	}
	// The image's record is read once, for the admission and the run.
	res := runtime.Result{LimitsEnforced: runner.LimitsEnforced()}
	p, err := runner.Prepare(ctx, req)
	if err == nil {
		if out.Unscanned, err = admit(ctx, client, p.Image(), c.Bool("allow-unscanned"), c.App.ErrWriter); err != nil {
			return emitRun(c, out, err)
		}
		res, err = runner.RunPrepared(ctx, p)
	}
	if cause := context.Cause(ctx); err != nil && errors.Is(cause, syscall.EPIPE) {
		err = fmt.Errorf("%w: the run was stopped and cleaned up", cause)
	}
	err = runError(err, skill, c.String("image"), tag)
	if errors.Is(err, runtime.ErrLimitsNotEnforceable) {
		err = limitsRefused(c, err)
	}
	out.fill(res, err)
	return emitRun(c, out, err)
}

// runError turns a missing image into an error that says what to do.
func runError(err error, skill config.Skill, image, tag string) error {
	if !errors.Is(err, runtime.ErrImageNotFound) {
		return err
	}
	hint := "skillbuild install " + skill.ID
	if skill.Version != "1" {
		hint = "skillbuild install --version " + skill.Version + " " + skill.ID
	}
	if image != "" {
		hint = "skillbuild base import, or pull it into containerd,"
	}
	return &notFoundError{msg: fmt.Sprintf("image %s not found, run `%s` first", tag, hint)}
}

// fill records what a run did; err is the failure of the run itself, if
// any (then the document's error says what it was).
func (out *runOutput) fill(res runtime.Result, err error) {
	out.ExitCode = res.ExitCode
	out.Stdout, out.Stderr = res.Stdout, res.Stderr
	out.Result, out.Error = res.Result, res.Error
	out.TimedOut, out.OOMKilled, out.Truncated = res.TimedOut, res.OOMKilled, res.Truncated
	out.DurationMS = res.Duration.Milliseconds()
	out.UID, out.GID = res.UID, res.GID
	out.LimitsEnforced = res.LimitsEnforced
	if err != nil && out.Error == nil {
		out.Error = &runtime.CodeError{Type: runErrorType(err), Message: err.Error()}
	}
}

// emitRun prints the outcome of a run and returns what decides the exit
// status: err when the run itself failed; otherwise, without --json, the
// code's exit status.
func emitRun(c *cli.Context, out *runOutput, err error) error {
	if c.Bool("json") {
		if err != nil && out.Error == nil {
			out.Error = &runtime.CodeError{Type: runErrorType(err), Message: err.Error()}
		}
		if err != nil {
			fmt.Fprintln(c.App.ErrWriter, "skillbuild:", err)
		}
		return jsonResult(c.App.Writer, out, err, exitCode)
	}
	if err != nil {
		return cli.Exit(err.Error(), exitCode(err))
	}
	if out.Result != nil {
		if _, err := fmt.Fprintln(c.App.Writer, string(out.Result)); err != nil {
			return cli.Exit("run: print the result: "+err.Error(), exitCode(err))
		}
	}
	switch {
	case out.TimedOut:
		return cli.Exit("run: "+out.Error.Message, exitRunTimedOut)
	case out.OOMKilled:
		return cli.Exit("run: "+out.Error.Message, exitRunOOM)
	case out.Error != nil && out.Error.Traceback == "":
		// Python printed no traceback for this one: say what happened.
		code := out.ExitCode
		if code == 0 {
			code = exitFailed
		}
		return cli.Exit("run: "+out.Error.Message, code)
	}
	if out.ExitCode != 0 {
		return cli.Exit("", out.ExitCode)
	}
	return nil
}

// runErrorType is the --json error type of a run that did not happen.
func runErrorType(err error) string {
	switch {
	case errdefs.IsNotFound(err):
		return "ImageNotFound"
	case errdefs.IsInvalidArgument(err):
		return "InvalidRequest"
	case isInterrupted(err):
		return "Interrupted"
	case errdefs.IsUnavailable(err):
		return "Unavailable"
	case errors.Is(err, runtime.ErrLimitsNotEnforceable):
		return "LimitsNotEnforceable"
	default:
		return "RunFailed"
	}
}

// notFoundError is a not-found error that says only what to do.
type notFoundError struct{ msg string }

func (e *notFoundError) Error() string { return e.msg }
func (e *notFoundError) Unwrap() error { return errdefs.ErrNotFound }

// pipeWatch passes writes on to w and cancels the run, with the error as
// the cause, once w's reader is gone (EPIPE): nobody reads what the run
// would print.
type pipeWatch struct {
	w      io.Writer
	name   string
	cancel context.CancelCauseFunc
}

func (p pipeWatch) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	if errors.Is(err, syscall.EPIPE) {
		p.cancel(fmt.Errorf("%s closed by its reader: %w", p.name, err))
	}
	return n, err
}

// readStdin reads stdin (at most max bytes) unless ctx is done first: a
// stdin nobody writes to must not make Ctrl-C and SIGTERM useless.
func readStdin(ctx context.Context, r io.Reader, max int64) ([]byte, error) {
	type read struct {
		b   []byte
		err error
	}
	done := make(chan read, 1)
	go func() {
		b, err := config.ReadLimited("stdin", r, max)
		done <- read{b, err}
	}()
	select {
	case rd := <-done:
		return rd.b, rd.err
	case <-ctx.Done():
		return nil, fmt.Errorf("reading stdin: %w", context.Cause(ctx))
	}
}

// runGC sets the garbage collector of a `skillbuild run` process: it lives
// for one run and its heap stays small (the output buffers are capped), so
// collecting as it goes costs more CPU (a third of the process's own, with
// the collector's idle workers) than the memory it frees. It collects only
// when the heap nears a bound a little above what the run may buffer (its
// two capped streams and their JSON copies): a run of print(1) never gets
// there, and one that floods its output keeps the process's memory flat
// however much the code prints.
func runGC(l runtime.Limits) {
	out := l.OutputLimitBytes
	if out <= 0 {
		out = runtime.DefaultLimits().OutputLimitBytes
	}
	debug.SetGCPercent(-1)
	debug.SetMemoryLimit(96<<20 + 4*out)
}
