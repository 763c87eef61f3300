package config

import "time"

// Skill is a validated skill specification: everything a build or a run
// needs to know, with no flags, files or environment left to read.
type Skill struct {
	// ID is the skill's identifier (lowercase letters, digits, '-', '_', '.').
	ID string `json:"id"`
	// Version is a positive integer or dotted numbers ("3", "1.2.0").
	Version string `json:"version"`
	// Repo is the image repository name; the tag is Repo:ID-vVersion.
	Repo string `json:"repo"`
	// Base is a fully-qualified image reference with a python3 on PATH.
	Base string `json:"base"`
	// Requirements are the validated PEP 508 requirement lines.
	Requirements []Requirement `json:"requirements"`
	// Index says where packages come from.
	Index Index `json:"index"`
	// Build limits apply to every build step that runs package code.
	Build BuildLimits `json:"build"`
	// Run limits apply to skill code executed by `skillbuild run`.
	Run RunLimits `json:"run"`
	// Policy is the vulnerability policy.
	Policy Policy `json:"policy"`
	// Preload are Python modules a warm run container imports before its
	// job comes ("numpy", "pandas.core"), so a run does not pay for them.
	Preload []string `json:"preload,omitempty"`
	// Resolver chooses how the requirements are resolved: ResolverAuto
	// (the builtin resolver, pip when it cannot), ResolverPip or
	// ResolverBuiltin; empty leaves it to the engine's default. Either
	// gives the same lock: it is not part of the build spec.
	Resolver string `json:"resolver,omitempty"`
}

// The resolver choices (Skill.Resolver).
const (
	// ResolverAuto resolves in process when the builtin resolver can, and
	// with pip in the base image otherwise (source distributions allowed,
	// a requirement or an index it does not handle), saying why.
	ResolverAuto = "auto"
	// ResolverPip always resolves with pip in the base image.
	ResolverPip = "pip"
	// ResolverBuiltin always resolves in process; what it cannot resolve
	// is an error.
	ResolverBuiltin = "builtin"
)

// Requirement is one PEP 508 requirement line.
type Requirement struct {
	// Line is the 1-based line number in Source (0 for command-line args).
	Line int `json:"line,omitempty"`
	// Source names where the line came from (a file path or "args").
	Source string `json:"source,omitempty"`
	// Raw is the requirement as written, trimmed of comments and blanks.
	Raw string `json:"raw"`
	// Name is the PEP 503-normalized project name.
	Name string `json:"name"`
	// Extras in the order written.
	Extras []string `json:"extras,omitempty"`
	// Specifier is the version specifier set, e.g. ">=1.0,<2".
	Specifier string `json:"specifier,omitempty"`
	// Marker is the environment marker, without the leading ';'.
	Marker string `json:"marker,omitempty"`
}

// Index is the package-index configuration. It never comes from the
// requirement lines themselves.
type Index struct {
	URL        string   `json:"url,omitempty"`         // --index-url; empty means PyPI
	ExtraURLs  []string `json:"extra_urls,omitempty"`  // --extra-index-url
	FindLinks  []string `json:"find_links,omitempty"`  // local wheel directories (absolute paths)
	AllowSdist bool     `json:"allow_sdist,omitempty"` // allow source distributions
}

// Redacted returns a copy with any credentials in the index URLs masked,
// for logs and --json output.
func (i Index) Redacted() Index {
	out := i
	out.URL = redactURL(i.URL)
	out.ExtraURLs = nil
	for _, u := range i.ExtraURLs {
		out.ExtraURLs = append(out.ExtraURLs, redactURL(u))
	}
	return out
}

// BuildLimits bound the build steps that run package code.
type BuildLimits struct {
	MemoryBytes int64         `json:"memory_bytes"`
	CPUs        float64       `json:"cpus"`
	Pids        int64         `json:"pids"`
	Timeout     time.Duration `json:"timeout"`
	// InRlimits is set by the engine, not by users, when build steps can
	// have no cgroup (rootless without cgroup delegation): memory and CPU
	// become RLIMIT_DATA and RLIMIT_CPU (cpus × timeout seconds) of each
	// process, and the process limit is not enforced (RLIMIT_NPROC would
	// count every process of the user the steps run as, daemons included).
	InRlimits bool `json:"-"`
}

// RunLimits bound a single run of skill code.
type RunLimits struct {
	MemoryBytes      int64         `json:"memory_bytes"`
	CPUs             float64       `json:"cpus"`
	Pids             int64         `json:"pids"`
	Timeout          time.Duration `json:"timeout"`
	TmpfsBytes       int64         `json:"tmpfs_bytes"`
	OutputLimitBytes int64         `json:"output_limit_bytes"`
	// Runtime is the sandbox the code runs in: RuntimeRunc (a container
	// on the host's kernel, the default) or RuntimeGVisor (gVisor's
	// runsc: a user-space kernel between the code and the host's).
	Runtime string `json:"runtime"`
}

// Runtimes of a run (RunLimits.Runtime).
const (
	RuntimeRunc   = "runc"
	RuntimeGVisor = "gvisor"
)

// Runtimes lists the valid values of RunLimits.Runtime.
var Runtimes = []string{RuntimeRunc, RuntimeGVisor}

// Policy is the vulnerability policy for a skill.
type Policy struct {
	NoScan       bool          `json:"no_scan,omitempty"`
	MinSeverity  string        `json:"min_severity,omitempty"` // "", low, medium, high, critical
	Allow        []AllowEntry  `json:"allow,omitempty"`
	AllowStaleDB bool          `json:"allow_stale_db,omitempty"`
	WarnAge      time.Duration `json:"warn_age,omitempty"`
	MaxAge       time.Duration `json:"max_age,omitempty"`
}

// AllowEntry accepts one known vulnerability until it expires.
type AllowEntry struct {
	ID      string    `json:"id"`
	Package string    `json:"package,omitempty"`
	Reason  string    `json:"reason"`
	Expires time.Time `json:"expires"`
}

// Tag is the image reference of the skill, Repo:ID-vVersion.
func (s Skill) Tag() string { return s.Repo + ":" + s.ID + "-v" + s.Version }

// Defaults of the host-wide settings every command shares.
const (
	// DefaultAddress is containerd's socket.
	DefaultAddress = "/run/containerd/containerd.sock"
	// DefaultNamespace is the containerd namespace skill images live in.
	DefaultNamespace = "skillbuild"
	// DefaultRoot is skillbuild's state directory (build cache, lock).
	DefaultRoot = "/var/lib/skillbuild"
)
