package runtime

import (
	"bytes"
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/skillbuild/skillbuild/config"
)

//go:embed runner.py
var runnerSource []byte

// RunnerSource returns the runner program mounted into every run.
func RunnerSource() []byte { return bytes.Clone(runnerSource) }

// Labels on every container (and root filesystem view) a run creates.
const (
	// LabelRun marks a run's container and snapshot; its value is "1".
	LabelRun = "org.skillbuild.run"
	// LabelDeadline is when the run must be over (RFC 3339, UTC): past it
	// plus the sweep grace, the container counts as orphaned.
	LabelDeadline = "org.skillbuild.run.deadline"
)

// idPrefix starts the ID of every run's container, snapshot and state
// directory.
const idPrefix = "sbrun-"

// ErrImageNotFound says the image of a run is not in containerd; it wraps
// errdefs.ErrNotFound.
var ErrImageNotFound = fmt.Errorf("image not found: %w", errdefs.ErrNotFound)

// Error types of Result.Error that the runtime itself reports. Any other
// type is the Python exception's (module-qualified unless a builtin).
const (
	// ErrorTimeout: the run hit its timeout; every process was killed.
	ErrorTimeout = "Timeout"
	// ErrorOutOfMemory: the kernel's OOM killer ended a process of the run.
	ErrorOutOfMemory = "OutOfMemory"
	// ErrorResultNotSerializable: the code set a result json.dumps refuses.
	ErrorResultNotSerializable = "ResultNotSerializable"
	// ErrorResultTooLarge: the JSON result was larger than allowed.
	ErrorResultTooLarge = "ResultTooLarge"
	// ErrorNoReport: the process ended without the runner reporting
	// (os._exit, a signal, a crash of the interpreter).
	ErrorNoReport = "NoReport"
	// ErrorInput: the runner could not decode the inputs.
	ErrorInput = "InputError"
	// ErrorCPUTimeLimit: without a CPU cgroup (WithRlimitLimits), the run
	// used its CPU seconds (cpus × timeout) and got SIGXCPU.
	ErrorCPUTimeLimit = "CPUTimeLimit"
)

// Request is one run of skill code.
type Request struct {
	// Image is the image reference, fully qualified as containerd stores it
	// (docker.io/library/atom-skill:hello-v1).
	Image string
	// Code is the Python source to run.
	Code []byte
	// Inputs is a JSON object, given to the code as the global `inputs`
	// dict. Empty means {}.
	Inputs json.RawMessage
	// Limits bound the run; zero fields take DefaultLimits.
	Limits Limits
	// User overrides the image's USER (uid[:gid] or a name in the image's
	// /etc/passwd). Only an explicit User can be root.
	User string
	// Preload are Python modules the runner imports before it reads the
	// job ("numpy", "pandas.core"): in a Pool's warm container they are
	// imported before the run begins, so the run does not pay for them.
	Preload []string
	// Stdout and Stderr, if set, receive the code's output as it happens,
	// cut at the output limit like Result.Stdout and Result.Stderr.
	Stdout, Stderr io.Writer
	// Files are put under InDir, read-only, by name (a slash-separated path
	// relative to it, see CheckFiles), before the code starts.
	Files map[string][]byte
}

// CodeError describes why the code failed.
type CodeError struct {
	// Type is the Python exception type, or one of the Error* constants.
	Type    string `json:"type"`
	Message string `json:"message"`
	// Traceback is Python's formatted traceback, when there is one.
	Traceback string `json:"traceback,omitempty"`
}

// Result is what a run did. Stdout, Stderr and Error are valid UTF-8
// (invalid bytes become U+FFFD).
type Result struct {
	// ExitCode is the runner's exit status: 0, 1 after an exception, the
	// code's SystemExit status, or 128+signal when it was killed.
	ExitCode int `json:"exit_code"`
	// Stdout and Stderr are the code's output, each cut at the output
	// limit.
	Stdout string `json:"stdout"`
	Stderr string `json:"stderr"`
	// Result is the JSON of the code's global `result`; nil (JSON null)
	// when the code set none or it could not be reported.
	Result json.RawMessage `json:"result"`
	// Error is nil when the code finished without an exception, within its
	// limits, and its result (if any) was reported.
	Error *CodeError `json:"error"`
	// TimedOut: the run reached its timeout and was killed.
	TimedOut bool `json:"timed_out"`
	// OOMKilled: the memory cgroup's OOM killer killed a process of the run.
	OOMKilled bool `json:"oom_killed"`
	// Truncated: stdout or stderr was cut at the output limit.
	Truncated bool `json:"truncated"`
	// UID and GID are the user the code ran as: a uid of the run's own
	// (RunUIDBase...) unless the image or the caller named another user.
	UID uint32 `json:"uid"`
	GID uint32 `json:"gid"`
	// LimitsEnforced says how each of the memory, cpus and pids limits was
	// held: ByCgroup or ByRlimit.
	LimitsEnforced map[string]string `json:"limits_enforced"`
	// Duration is from the start of the process to its exit.
	Duration time.Duration `json:"-"`
	// Files are the files the code left under OutDir, in name order, at
	// most MaxOutFiles.
	Files []File `json:"-"`
	// FilesOmitted counts the files beyond MaxOutFiles, not listed.
	FilesOmitted int `json:"-"`
	// SessionEnded says why a session's call ended the session (one of
	// the SessionEnded* values); "" when it goes on, and always for a run.
	SessionEnded string `json:"-"`
}

// Runner runs skill code through a containerd client. It is safe for
// concurrent use.
type Runner struct {
	client *client.Client
	opts   options
	images *imageInfoCache
	runscState
}

// New returns a Runner using c (whose default namespace, or the one in ctx,
// holds the images) and sweeps away orphaned runs: containers of runs whose
// deadline passed, left behind by a skillbuild process that died. A sweep
// that fails fails New, unless WithoutSweep.
func New(ctx context.Context, c *client.Client, opts ...Opt) (*Runner, error) {
	if c == nil {
		return nil, fmt.Errorf("containerd client is nil: %w", errdefs.ErrInvalidArgument)
	}
	o := defaultOptions()
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(o.stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("run state directory: %w", err)
	}
	r := &Runner{client: c, opts: o, images: newImageInfoCache(o.stateDir)}
	if o.sweepOnNew {
		if _, err := r.Sweep(ctx); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// LimitsEnforced says how the Runner holds the memory, cpus and pids
// limits of its runs (Result.LimitsEnforced).
func (r *Runner) LimitsEnforced() map[string]string { return r.opts.limitMode.enforced() }

// Run is New followed by Runner.Run, for a single run.
func Run(ctx context.Context, c *client.Client, req Request, opts ...Opt) (Result, error) {
	r, err := New(ctx, c, opts...)
	if err != nil {
		return Result{}, err
	}
	return r.Run(ctx, req)
}

// namespaced returns ctx with the client's default namespace unless it
// already names one.
func (r *Runner) namespaced(ctx context.Context) context.Context {
	if _, ok := namespaces.Namespace(ctx); !ok && r.client.DefaultNamespace() != "" {
		return namespaces.WithNamespace(ctx, r.client.DefaultNamespace())
	}
	return ctx
}

// cleanupTimeout bounds the cleanup of one run.
const cleanupTimeout = 30 * time.Second

// stepTimeout bounds the creation of a run's container and task together.
const stepTimeout = 2 * time.Minute

// startMargin is how long after its creation a run's container may start
// and still be covered by the deadline label set at creation (see
// Sandbox.Start).
const startMargin = 15 * time.Second

// Run runs req.Code in a container of req.Image and reports what happened.
// The error is for failures of the run itself (bad request, image not
// found, containerd trouble, ctx cancelled); what the code did, including
// exceptions, timeouts and OOM kills, is in the Result. Whatever happens,
// the task, the container, its snapshot and the state files are removed
// before Run returns, even when ctx is cancelled.
//
// Run is its stages in order: Prepare, Create, Sandbox.Start,
// Sandbox.Wait, Sandbox.Collect, Sandbox.Close and Sandbox.Flush. The
// output reaches req.Stdout and req.Stderr as it happens, but a slow
// reader never holds up the run or its teardown: what it has not taken yet
// is written after the teardown, and Run returns once it is written or ctx
// is done.
func (r *Runner) Run(ctx context.Context, req Request) (Result, error) {
	p, err := r.Prepare(ctx, req)
	if err != nil {
		return Result{LimitsEnforced: r.LimitsEnforced()}, err
	}
	return r.RunPrepared(ctx, p)
}

// RunPrepared is Run of a request that Prepare checked and whose image it
// found (a caller that decides on the image's record first, such as an
// admission check, reads it once).
func (r *Runner) RunPrepared(ctx context.Context, p *Prepared) (res Result, retErr error) {
	res.LimitsEnforced = r.LimitsEnforced()
	sb, err := r.Create(ctx, p)
	if err != nil {
		return res, err
	}
	defer func() {
		if err := sb.Close(ctx); err != nil {
			retErr = errors.Join(retErr, err)
		}
	}()
	if err := sb.Start(ctx); err != nil {
		return res, err
	}
	exit, err := sb.Wait(ctx)
	if err != nil {
		return res, err
	}
	if res, err = sb.Collect(ctx, exit); err != nil {
		return res, err
	}
	// The output is all collected: tear down first, then hand it to the
	// caller's writers, however slowly they read.
	if err := sb.Close(ctx); err != nil {
		return res, err
	}
	sb.Flush(ctx)
	return res, nil
}

// interpret turns the runner's report and what the runtime saw into the
// result and error of a run.
func interpret(res Result, limits Limits, rep *runnerReport, repErr error, maxResult int64) (json.RawMessage, *CodeError) {
	var result json.RawMessage
	var cerr *CodeError
	if rep != nil {
		if rep.ResultSet {
			result = rep.Result
		}
		cerr = rep.Error
	}
	switch {
	case res.TimedOut:
		return result, &CodeError{Type: ErrorTimeout, Message: fmt.Sprintf("the run did not finish within its %s timeout; every process was killed", limits.Timeout)}
	case res.OOMKilled && (rep == nil || res.ExitCode != 0):
		// A child killed while the code went on and reported is only
		// flagged (OOMKilled); here the code itself did not finish.
		return result, &CodeError{Type: ErrorOutOfMemory, Message: fmt.Sprintf("the kernel killed a process that exceeded the %s memory limit", config.FormatSize(limits.MemoryBytes))}
	case errors.Is(repErr, errResultTooLarge):
		return nil, &CodeError{Type: ErrorResultTooLarge, Message: fmt.Sprintf("the result is larger than %s", config.FormatSize(maxResult))}
	case repErr != nil:
		return nil, &CodeError{Type: ErrorNoReport, Message: fmt.Sprintf("the runner's report is unreadable: %v", repErr)}
	case rep == nil:
		return nil, &CodeError{Type: ErrorNoReport, Message: fmt.Sprintf("the process exited with status %d before the runner reported (os._exit, a signal or an interpreter crash)", res.ExitCode)}
	}
	if cerr != nil {
		cerr.Message = strings.ToValidUTF8(cerr.Message, "\uFFFD")
		cerr.Traceback = strings.ToValidUTF8(cerr.Traceback, "\uFFFD")
	}
	return result, cerr
}

func toValidUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

// checkPreload checks that every name is a Python module name (they become
// arguments of the runner, never code).
func checkPreload(names []string) error {
	for _, n := range names {
		if err := config.ValidateModuleName(n); err != nil {
			return fmt.Errorf("preload: %v: %w", err, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

// normalizeInputs checks that in is one JSON object (empty means {}) and
// encodes it as the runner reads it: compact, on one line.
func normalizeInputs(in json.RawMessage) ([]byte, error) {
	trimmed := bytes.TrimSpace(in)
	if len(trimmed) == 0 {
		return []byte("{}\n"), nil
	}
	if trimmed[0] != '{' || !json.Valid(trimmed) {
		return nil, fmt.Errorf("inputs must be one JSON object: %w", errdefs.ErrInvalidArgument)
	}
	// One line for the runner: compact JSON has no raw newline.
	var buf bytes.Buffer
	if err := json.Compact(&buf, trimmed); err != nil {
		return nil, fmt.Errorf("inputs: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

func newID() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return idPrefix + hex.EncodeToString(b[:])
}

// prepareBox creates the run's state directory and the sandbox directory
// mounted into the container, with the runner and the code (the report
// socket comes with openReport).
func prepareBox(dir, box string, code []byte) error {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return fmt.Errorf("run state directory: %w", err)
	}
	// Mounted as the container's SandboxDir: searchable by the run's user.
	if err := os.Mkdir(box, 0o755); err != nil {
		return fmt.Errorf("sandbox directory: %w", err)
	}
	if err := os.Chmod(box, 0o755); err != nil { // despite the umask
		return err
	}
	for name, data := range map[string][]byte{runnerName: runnerSource, codeName: code} {
		if err := writeReadOnly(filepath.Join(box, name), data); err != nil {
			return fmt.Errorf("sandbox file %s: %w", name, err)
		}
	}
	return nil
}

// writeReadOnly writes a new file readable by everyone and writable by
// nobody (mode 0444, whatever the umask).
func writeReadOnly(p string, data []byte) error {
	if err := os.WriteFile(p, data, 0o444); err != nil {
		return err
	}
	return os.Chmod(p, 0o444)
}
