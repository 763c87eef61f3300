package api

import (
	"encoding/json"
	"io"

	"github.com/skillbuild/skillbuild/config"
)

// RunRequest asks for code to run in a skill's image: the flags of
// `skillbuild run`. Limits are strings as on the command line ("256m",
// "30s", "0.5"); empty ones take the defaults.
type RunRequest struct {
	SkillID     string          `json:"skill_id"`
	Version     string          `json:"version,omitempty"`
	Repo        string          `json:"repo,omitempty"`
	Image       string          `json:"image,omitempty"`
	Code        string          `json:"code"`
	Inputs      json.RawMessage `json:"inputs,omitempty"`
	Memory      string          `json:"memory,omitempty"`
	CPUs        string          `json:"cpus,omitempty"`
	Pids        string          `json:"pids,omitempty"`
	Timeout     string          `json:"timeout,omitempty"`
	TmpfsSize   string          `json:"tmpfs_size,omitempty"`
	OutputLimit string          `json:"output_limit,omitempty"`
	User        string          `json:"user,omitempty"`
	// Runtime is what the code runs under: runc (the default) or gvisor
	// (see docs/runtimes.md).
	Runtime string `json:"runtime,omitempty"`
	// Preload are modules imported before the run (by a warm container,
	// ahead of it). Empty: the skill's own list (skill.yaml's preload,
	// recorded in its image).
	Preload []string `json:"preload,omitempty"`
	// Files are put under /data/in, read-only, before the code starts:
	// name (a relative, slash-separated path) → content in standard
	// base64.
	Files map[string]string `json:"files,omitempty"`

	Local RunLocal `json:"-"`
}

// RunLocal are the command line's parts of a run.
type RunLocal struct {
	// Input, when set, is the skill and its run limits as the command line
	// gave them (flags, -f skill.yaml); it replaces the request's skill
	// and limit fields.
	Input *config.Input
	// Stdout and Stderr, if set, receive the code's output as it happens.
	Stdout, Stderr io.Writer
	// Pull is the --pull mode: missing, always or never ("": missing when
	// the image's name names a registry, else never).
	Pull string
	// AllowUnscanned runs an image from elsewhere that carries no passing
	// scan verdict, loudly.
	AllowUnscanned bool
	// AcceptRlimits runs with per-process rlimits where cgroups cannot
	// hold the limits (rootless without delegation) instead of refusing.
	AcceptRlimits bool
	// Trace, if set, receives how long each step of the run took.
	Trace io.Writer
}

// Input is the skill the request names, with its run limits, as
// config.Load takes it.
func (r RunRequest) Input() config.Input {
	if r.Local.Input != nil {
		return *r.Local.Input
	}
	version := r.Version
	if version == "" {
		version = "1"
	}
	return config.Input{
		Dir: "/", ID: r.SkillID, Version: version, Repo: r.Repo,
		Memory: r.Memory, CPUs: r.CPUs, Pids: r.Pids, Timeout: r.Timeout, TmpfsSize: r.TmpfsSize, OutputLimit: r.OutputLimit,
		Runtime: r.Runtime, Set: map[string]bool{},
	}
}

// RunResult is what a run did: the document of `skillbuild run --json`
// and of POST /v1/run.
type RunResult struct {
	SkillID  string `json:"skill_id"`
	ImageTag string `json:"image_tag"`
	// ExitCode is the runner's exit status; null when no process ran (the
	// run was refused, or its image was not found).
	ExitCode   *int            `json:"exit_code"`
	Stdout     string          `json:"stdout"`
	Stderr     string          `json:"stderr"`
	Result     json.RawMessage `json:"result"`
	Error      *CodeError      `json:"error"`
	TimedOut   bool            `json:"timed_out"`
	OOMKilled  bool            `json:"oom_killed"`
	Truncated  bool            `json:"truncated"`
	DurationMS int64           `json:"duration_ms"`
	// UID and GID are the user the code ran as; null when no process ran.
	UID *uint32 `json:"uid"`
	GID *uint32 `json:"gid"`
	// LimitsEnforced says how the memory, cpus and pids limits were held:
	// cgroup, or rlimit (rootless without cgroup delegation, per process).
	LimitsEnforced map[string]string `json:"limits_enforced"`
	// Unscanned says why an image that was not verified ran
	// (--allow-unscanned); absent otherwise.
	Unscanned string `json:"unscanned,omitempty"`
	// Admission says how the image was admitted (absent when the run was
	// refused before).
	Admission *Admission `json:"admission,omitempty"`
	// Files are what the code left under /data/out, in name order (at
	// most 64; a file whose content would pass the cap of 16 MiB of
	// content together is listed with omitted set).
	Files []RunFile `json:"files,omitempty"`
	// FilesOmitted counts the files beyond the 64 listed.
	FilesOmitted int `json:"files_omitted,omitempty"`
}

// Admission says why an image was allowed to run.
type Admission struct {
	// Origin is OriginBuilt, OriginBase, or where an image from elsewhere
	// came from ("a registry", "archive FILE", ...).
	Origin string `json:"origin"`
	// Base is the trusted base an image from elsewhere was found to be
	// built on; Scan the verdict of this host's scan of its lock, with
	// the database's sha256 (both absent for OriginBuilt and OriginBase).
	Base string `json:"base,omitempty"`
	Scan string `json:"scan,omitempty"`
	DB   string `json:"db,omitempty"`
	// SignedBy names the trusted key whose signature it carries (with
	// trusted keys configured).
	SignedBy string `json:"signed_by,omitempty"`
	// Unscanned says why it ran unverified (--allow-unscanned).
	Unscanned string `json:"unscanned,omitempty"`
}

// Origins of an admitted image that need no verification.
const (
	// OriginBuilt: built by this host's state root (its scan was the
	// build's).
	OriginBuilt = "built here"
	// OriginBase: a base image, run only where bases are allowed.
	OriginBase = "base"
)

// CodeError describes why the code failed, or why the run did not happen.
type CodeError struct {
	// Type is the Python exception type, or one of the runtime's error
	// types (Timeout, OOMKilled, ...) or a run's failure class
	// (ImageNotFound, InvalidRequest, ...).
	Type    string `json:"type"`
	Message string `json:"message"`
	// Traceback is Python's formatted traceback, when there is one.
	Traceback string `json:"traceback,omitempty"`
}

// Exit is the run's exit status, 0 when no process ran.
func (r *RunResult) Exit() int {
	if r.ExitCode == nil {
		return 0
	}
	return *r.ExitCode
}

// MaxFilesBytes is the most a run's files may hold together, the ones
// it takes and the content of the ones it returns alike (runtime.MaxInBytes
// and MaxOutBytes).
const MaxFilesBytes = 16 << 20

// RunFile is a file the code left under /data/out, as a run or a session
// call returns it.
type RunFile struct {
	// Name is slash-separated, relative to /data/out.
	Name string `json:"name"`
	Size int64  `json:"size"`
	// SHA256 is the hex digest of the whole file.
	SHA256 string `json:"sha256"`
	// Content is the file's bytes in standard base64; absent when
	// Omitted.
	Content string `json:"content,omitempty"`
	// Omitted: the file is listed but its content was not returned (the
	// run's returned files together would pass the cap).
	Omitted bool `json:"omitted,omitempty"`
}
