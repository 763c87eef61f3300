package api

import (
	"github.com/opencontainers/go-digest"
	"github.com/skillbuild/skillbuild/config"
)

// InstallRequest asks for a skill's image to be built (or reused): the
// skill and the flags of `skillbuild install`, by the same names with
// underscores. Empty fields take the CLI's defaults.
type InstallRequest struct {
	SkillID        string   `json:"skill_id"`
	Version        string   `json:"version,omitempty"`
	Requirements   []string `json:"requirements"`
	Repo           string   `json:"repo,omitempty"`
	Base           string   `json:"base,omitempty"`
	IndexURL       string   `json:"index_url,omitempty"`
	ExtraIndexURLs []string `json:"extra_index_urls,omitempty"`
	AllowSdist     bool     `json:"allow_sdist,omitempty"`
	BuildMemory    string   `json:"build_memory,omitempty"`
	BuildCPUs      string   `json:"build_cpus,omitempty"`
	BuildPids      string   `json:"build_pids,omitempty"`
	BuildTimeout   string   `json:"build_timeout,omitempty"`
	NoScan         bool     `json:"no_scan,omitempty"`
	Allow          []string `json:"allow,omitempty"`
	MinSeverity    string   `json:"min_severity,omitempty"`
	AllowStaleDB   bool     `json:"allow_stale_db,omitempty"`
	Refresh        bool     `json:"refresh,omitempty"`
	// Preload are the modules the image records for warm run containers
	// to import ahead of a run (skill.yaml's preload).
	Preload []string `json:"preload,omitempty"`
	// Progress asks the API for the build's progress as a stream of
	// events before the result.
	Progress bool `json:"progress,omitempty"`

	Local InstallLocal `json:"-"`
}

// InstallLocal are the command line's parts of an install: files and
// destinations on the host the service runs on.
type InstallLocal struct {
	// Input, when set, is the skill as the command line gave it (flags,
	// -f skill.yaml, -r files); it replaces the request's skill fields.
	Input *config.Input
	// Outputs are --output destinations (oci-archive=FILE, oci-layout=DIR).
	Outputs []string
	// Load puts the image of a builder without containerd into it.
	Load bool
	// CacheFrom and CacheTo are registry build cache references
	// (templates with {id} and {version}).
	CacheFrom []string
	CacheTo   string
	// Push is the reference (template) to push the image to once built.
	Push string
	// SignKey signs what is pushed (cosign's format), with SignPassword.
	SignKey      string
	SignPassword []byte
	// MaxLayers and SingleLayer tune the install layers (experiments and
	// benchmarks).
	MaxLayers   int
	SingleLayer bool
}

// Input is the skill the request describes, as config.Load takes it.
func (r InstallRequest) Input() config.Input {
	if r.Local.Input != nil {
		return *r.Local.Input
	}
	version := r.Version
	if version == "" {
		version = "1"
	}
	return config.Input{
		Dir: "/", ID: r.SkillID, Version: version, Repo: r.Repo, Base: r.Base,
		Requirements: r.Requirements, IndexURL: r.IndexURL, ExtraIndexURL: r.ExtraIndexURLs, AllowSdist: r.AllowSdist,
		BuildMemory: r.BuildMemory, BuildCPUs: r.BuildCPUs, BuildPids: r.BuildPids, BuildTimeout: r.BuildTimeout,
		NoScan: r.NoScan, Allow: r.Allow, MinSeverity: r.MinSeverity, AllowStaleDB: r.AllowStaleDB, Preload: r.Preload,
		Set: map[string]bool{},
	}
}

// Scan outcomes an InstallResult reports.
const (
	ScanPassed   = "passed"
	ScanDisabled = "disabled"
	ScanRefused  = "refused"
)

// InstallResult is what an install did: the document of
// `skillbuild install --json` and of POST /v1/install.
type InstallResult struct {
	Success         bool             `json:"success"`
	SkillID         string           `json:"skill_id"`
	Version         string           `json:"version"`
	ImageTag        string           `json:"image_tag"`
	Digest          string           `json:"digest"`
	ManifestDigest  string           `json:"manifest_digest,omitempty"`
	Packages        []Package        `json:"packages"`
	Vulnerabilities []Finding        `json:"vulnerabilities"`
	Allowed         []AllowedFinding `json:"allowed_vulnerabilities,omitempty"`
	// Scan is ScanPassed, ScanDisabled or ScanRefused (empty when the
	// build failed before the scan).
	Scan     string   `json:"scan"`
	Warnings []string `json:"warnings,omitempty"`
	Cached   bool     `json:"cached"`
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
	// Push is what the push after the build did (absent without one).
	Push *Pushed `json:"push,omitempty"`
	// Resolve is how the lock was resolved: "full" (every requirement) or
	// "added" (only what the requirements add to an earlier image's lock);
	// ResolveFallback why an earlier image's lock was not extended.
	Resolve         string `json:"resolve,omitempty"`
	ResolveFallback string `json:"resolve_fallback,omitempty"`
	// Resolver is which resolver made the lock: "builtin" (in process) or
	// "pip" (pip in the base image); ResolverFallback why pip resolved
	// when the builtin resolver was asked first. Both are absent without
	// requirements or when nothing was built.
	Resolver         string `json:"resolver,omitempty"`
	ResolverFallback string `json:"resolver_fallback,omitempty"`
}

// Package is a distribution's name and version in an image.
type Package struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// Pushed says what a push moved.
type Pushed struct {
	// Ref is the reference pushed to (normalized).
	Ref string `json:"ref"`
	// Digest is the manifest (or index) digest the tag now points at.
	Digest digest.Digest `json:"digest"`
	// MediaType is the media type of Digest's document.
	MediaType string `json:"media_type"`
	// BytesPushed counts the bytes uploaded: blobs and manifests the
	// registry did not have.
	BytesPushed int64 `json:"bytes_pushed"`
	// Uploaded and Skipped count the blobs and manifests uploaded and
	// those the registry already had.
	Uploaded int `json:"uploaded"`
	Skipped  int `json:"skipped"`
	// Signed says how the pushed image was signed (with a signing key).
	Signed *Signed `json:"signed,omitempty"`
}

// Signed says what a signing did: the signature artifact beside the
// image, the signing key's fingerprint, and how many signatures the
// artifact holds now (others' are kept).
type Signed struct {
	Artifact      string `json:"artifact"`
	KeyID         string `json:"key_id"`
	Signatures    int    `json:"signatures"`
	AlreadySigned bool   `json:"already_signed,omitempty"`
}
