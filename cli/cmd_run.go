package cli

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/containerd/errdefs"
	"github.com/skillbuild/skillbuild/config"
	"github.com/skillbuild/skillbuild/skill"
	"github.com/skillbuild/skillbuild/skill/api"
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

--in NAME=PATH puts a file under /data/in (read-only) for the code; what the
code writes under /data/out comes back (files, in the --json document) and
--out-dir DIR saves it there (at most 64 files and 16 MiB of them: more are
listed as not saved, on stderr).

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
			&cli.StringFlag{Name: config.FlagRuntime, Value: config.DefaultRunRuntime, Usage: "run the code under `RUNTIME`: runc, or gvisor (gVisor's runsc: a user-space kernel between the code and the host's; see docs/runtimes.md)"},
			&cli.StringFlag{Name: "image", Usage: "run in image `REF` instead of the skill's"},
			&cli.StringFlag{Name: "user", Usage: "run as `UID[:GID]` instead of the image's USER (only this can be root)"},
			&cli.GenericFlag{Name: "in", Value: &repeated{}, Usage: "put file `NAME=PATH` (or PATH, named by its base name) under /data/in, read-only, for the code (repeatable)"},
			&cli.StringFlag{Name: "out-dir", Usage: "save the files the code leaves under /data/out into `DIR` (created; symbolic links in it are not followed)"},
			&cli.StringSliceFlag{Name: "preload", Usage: "import Python `MODULE` before the inputs are read (what serve's warm containers do ahead of a run)"},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON document on stdout"},
			&cli.BoolFlag{Name: "require-limits", Value: true, Usage: "rootless without cgroup delegation: refuse to run rather than hold memory, CPU and process limits with per-process rlimits"},
			&cli.StringFlag{Name: "pull", Usage: "pull the image first: `missing|always|never` (default: missing when its name names a registry, else never)"},
			&cli.BoolFlag{Name: "allow-unscanned", Usage: "run an image from elsewhere (pulled, loaded) that admission could not verify (loud, and recorded in the result)"},
			&cli.StringSliceFlag{Name: config.FlagAllow, Usage: "admit an image from elsewhere despite a vulnerability: `ID[@PACKAGE]:YYYY-MM-DD:REASON`"},
			&cli.StringFlag{Name: config.FlagMinSeverity, Usage: "only findings at or above `SEVERITY` (low|medium|high|critical) refuse an image from elsewhere"},
			&cli.BoolFlag{Name: config.FlagAllowStaleDB, Usage: "admit images from elsewhere with a vulnerability database older than its maximum age"},
		}, append(registryFlags(), trustFlags()...)...),
		Action: runAction,
	}
}

// runRequest turns the flags into a run request.
func runRequest(c *cli.Context) (api.RunRequest, error) {
	in := skillInput(c)
	in.ID = c.Args().First()
	req := api.RunRequest{SkillID: in.ID, Image: c.String("image"), User: c.String("user"), Preload: c.StringSlice("preload"),
		Local: api.RunLocal{Input: &in, Pull: c.String("pull"), AllowUnscanned: c.Bool("allow-unscanned"), AcceptRlimits: !c.Bool("require-limits")}}
	if c.NArg() > 1 {
		return req, fmt.Errorf("expected one SKILL_ID, got %q: %w", c.Args().Slice(), errdefs.ErrInvalidArgument)
	}
	if c.Bool("debug") {
		req.Local.Trace = c.App.ErrWriter // how long each step took
	}
	var err error
	if req.Files, err = fileFlags(c); err != nil {
		return req, err
	}
	req.Code, req.Inputs, err = codeAndInputs(c)
	return req, err
}

func runAction(c *cli.Context) error {
	req, err := runRequest(c)
	if err != nil {
		return emitRun(c, skill.FailedRun(req, err), err)
	}
	runGC(c.String(config.FlagOutputLimit))
	// Ctrl-C and SIGTERM cancel c.Context (see main), and so does a reader
	// of the output that goes away (EPIPE); the service still cleans up.
	ctx, cancel := context.WithCancelCause(c.Context)
	defer cancel(nil)
	if !c.Bool("json") {
		req.Local.Stdout = pipeWatch{w: c.App.Writer, name: "stdout", cancel: cancel}
		req.Local.Stderr = pipeWatch{w: c.App.ErrWriter, name: "stderr", cancel: cancel}
	}
	if remote(c) {
		// Without live streaming: the output is printed once the run is over.
		wired, err := wireRun(c, req)
		if err != nil {
			return emitRun(c, skill.FailedRun(req, err), err)
		}
		req = wired
	}
	ops, err := newOps(c)
	if err != nil {
		return emitRun(c, skill.FailedRun(req, err), err)
	}
	defer closeService(ops)
	out, err := ops.Run(ctx, req)
	if out == nil {
		// A server that could not be reached, or refused the request
		// before it had a document.
		out = skill.FailedRun(req, err)
	}
	saveErr := saveFiles(c.App.ErrWriter, c.String("out-dir"), out)
	return afterRun(c, emitRun(c, out, err), saveErr)
}

// afterRun is the outcome of a run whose document was printed (emitErr,
// the run's exit status) and whose files were saved (saveErr): a failure
// to save is reported beside the run's own failure, or is exit code 1.
func afterRun(c *cli.Context, emitErr, saveErr error) error {
	if emitErr != nil {
		if saveErr != nil {
			fmt.Fprintln(c.App.ErrWriter, "skillbuild:", saveErr)
		}
		return emitErr
	}
	if saveErr != nil {
		return cli.Exit(saveErr.Error(), api.ExitFailed)
	}
	return nil
}

// emitRun prints the outcome of a run and returns what decides the exit
// status: err when the run itself failed; otherwise, without --json, the
// code's exit status.
func emitRun(c *cli.Context, out *api.RunResult, err error) error {
	if c.Bool("json") {
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
		code := out.Exit()
		if code == 0 {
			code = api.ExitFailed
		}
		return cli.Exit("run: "+out.Error.Message, code)
	}
	if code := out.Exit(); code != 0 {
		return cli.Exit("", code)
	}
	return nil
}

// codeAndInputs are the code (-c or --code) and the inputs (--inputs or
// --inputs-file) the flags give, for a run or a session's call.
func codeAndInputs(c *cli.Context) (string, json.RawMessage, error) {
	var code string
	switch file := c.String("code"); {
	case c.IsSet("c") && c.IsSet("code"):
		return "", nil, fmt.Errorf("give --code FILE or -c CODE, not both: %w", errdefs.ErrInvalidArgument)
	case c.IsSet("c"):
		code = c.String("c")
	case file != "":
		b, err := config.ReadInput(file, config.MaxCodeSize)
		if err != nil {
			return "", nil, fmt.Errorf("--code: %w", err)
		}
		code = string(b)
	default:
		return "", nil, fmt.Errorf("no code: give --code FILE or -c CODE: %w", errdefs.ErrInvalidArgument)
	}

	switch {
	case c.IsSet("inputs") && c.IsSet("inputs-file"):
		return "", nil, fmt.Errorf("give --inputs or --inputs-file, not both: %w", errdefs.ErrInvalidArgument)
	case c.IsSet("inputs"):
		return code, json.RawMessage(c.String("inputs")), nil
	case c.IsSet("inputs-file"):
		var b []byte
		var err error
		if f := c.String("inputs-file"); f == "-" {
			b, err = readStdin(c.Context, c.App.Reader, config.MaxInputsSize)
		} else {
			b, err = config.ReadInput(f, config.MaxInputsSize)
		}
		if err != nil {
			return "", nil, fmt.Errorf("--inputs-file: %w", err)
		}
		return code, b, nil
	}
	return code, nil, nil
}
