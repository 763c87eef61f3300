package api

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	"github.com/skillbuild/skillbuild/config"
	"github.com/skillbuild/skillbuild/labels"
	"github.com/skillbuild/skillbuild/scan"
)

// ScanRequest asks for requirements to be checked against the
// vulnerability database: resolved like install resolves them, unless
// NoResolve (then the name==version pins given are the whole set).
type ScanRequest struct {
	Requirements   []string `json:"requirements"`
	NoResolve      bool     `json:"no_resolve,omitempty"`
	Base           string   `json:"base,omitempty"`
	IndexURL       string   `json:"index_url,omitempty"`
	ExtraIndexURLs []string `json:"extra_index_urls,omitempty"`
	AllowSdist     bool     `json:"allow_sdist,omitempty"`
	// Allow entries: ID, ID@PACKAGE, or ID[@PACKAGE]:YYYY-MM-DD:REASON.
	Allow        []string `json:"allow,omitempty"`
	MinSeverity  string   `json:"min_severity,omitempty"`
	AllowStaleDB bool     `json:"allow_stale_db,omitempty"`

	Local ScanLocal `json:"-"`
}

// ScanLocal are the command line's parts of a scan.
type ScanLocal struct {
	// Input, when set, is what to scan and how to resolve it (arguments,
	// -r files, index, base, sdists) as the command line gave it; it
	// replaces the request's requirements and index settings. With
	// NoResolve its -r files hold the pins.
	Input *config.Input
	// DB is a database to scan with instead of the state root's: an OSV
	// PyPI export zip, or a state root holding osv/.
	DB string
}

// ScanResult is a scan's verdict: the document of `skillbuild scan
// --json` and of POST /v1/scan.
type ScanResult = scan.Verdict

// ListRequest asks for the skill images in the store.
type ListRequest struct {
	// Unpacked also measures each image's unpacked (snapshot) size.
	Unpacked bool `json:"unpacked,omitempty"`
}

// SkillImage is one tagged skill image, as `ls --json` lists it.
type SkillImage struct {
	// SkillID is the skill's id: the same key as in every other document.
	SkillID  string        `json:"skill_id"`
	Version  string        `json:"version"`
	Tag      string        `json:"tag"`  // short form, e.g. atom-skill:weather-v3
	Name     string        `json:"name"` // containerd name, fully qualified
	Digest   digest.Digest `json:"digest"`
	Packages int           `json:"packages"`
	// LockDigest identifies the hash-pinned package set.
	LockDigest string `json:"lock_digest,omitempty"`
	// Size is the content size of the manifest, config and layers.
	Size int64 `json:"size"`
	// Unpacked is the disk usage of the image's snapshots (with
	// ListRequest.Unpacked).
	Unpacked int64     `json:"unpacked_size,omitempty"`
	Created  time.Time `json:"created"`
	Updated  time.Time `json:"updated"`
}

// RemoveRequest asks for a skill's image tags to be removed: one version,
// or every version when Version is empty.
type RemoveRequest struct {
	SkillID string `json:"skill_id"`
	Version string `json:"version,omitempty"`
}

// RemoveResult is what a remove did.
type RemoveResult struct {
	Removed []SkillImage `json:"removed"`
	Error   string       `json:"error,omitempty"`
}

// PullRequest asks for an image to be pulled from a registry: Ref, or the
// image of SkillID when its repository names a registry.
type PullRequest struct {
	Ref     string `json:"ref,omitempty"`
	SkillID string `json:"skill_id,omitempty"`
	Version string `json:"version,omitempty"`
	// Repo is the repository of the local skill tag (and of SkillID's
	// image).
	Repo string `json:"repo,omitempty"`
	// Base pulls an image to build skills on (install builds only on an
	// image imported or pulled as a base).
	Base bool `json:"base,omitempty"`
	// Replace lets the pull move a name that points at another image.
	Replace bool `json:"replace,omitempty"`
}

// PullResult says what a pull stored.
type PullResult struct {
	// Ref is the reference pulled (normalized); the image is stored under
	// it and under Names.
	Ref string `json:"ref"`
	// Digest is what Ref points at (a manifest or an index).
	Digest digest.Digest `json:"digest"`
	// Names are the containerd image names now pointing at Digest.
	Names []string `json:"names"`
	// Labels are the image config's labels.
	Labels map[string]string `json:"labels,omitempty"`
	// BytesFetched counts what came over the network.
	BytesFetched int64 `json:"bytes_fetched"`
	// SignedBy names the trusted key that verified the image before
	// anything was named (with trusted keys configured).
	SignedBy string `json:"signed_by,omitempty"`
}

// PushRequest asks for a skill's local image to be pushed to Ref (a
// template with {id} and {version}; empty: the image's own name).
type PushRequest struct {
	SkillID string `json:"skill_id"`
	Version string `json:"version,omitempty"`
	Repo    string `json:"repo,omitempty"`
	Ref     string `json:"ref,omitempty"`

	Local PushLocal `json:"-"`
}

// PushLocal are the command line's parts of a push.
type PushLocal struct {
	// Input, when set, is the skill as the command line gave it.
	Input *config.Input
	// SignKey signs what is pushed (cosign's format), with SignPassword.
	SignKey      string
	SignPassword []byte
}

// PushResult is the document of `skillbuild push --json`.
type PushResult struct {
	SkillID  string `json:"skill_id"`
	Version  string `json:"version"`
	ImageTag string `json:"image_tag"`
	Pushed
}

// LoadRequest asks for the images of an OCI archive or layout on the
// service's host to be loaded.
type LoadRequest struct {
	// Path is an OCI or docker-save tar archive, or an OCI layout
	// directory.
	Path string `json:"-"`
	// Repo is the repository of the skill tags given to skill images.
	Repo string `json:"repo,omitempty"`
	// Replace lets the load move a name that points at another image.
	Replace bool `json:"replace,omitempty"`
}

// LoadResult lists what a load stored.
type LoadResult []LoadedImage

// LoadedImage is one image a load stored, with every name it now has.
type LoadedImage struct {
	Names  []string `json:"names"`
	Digest string   `json:"digest"`
}

// InspectRequest names an image to describe: a skill (SkillID, Version,
// Repo) or a reference, read from containerd, or from its registry when
// containerd does not have it.
type InspectRequest struct {
	SkillID string `json:"skill_id,omitempty"`
	Version string `json:"version,omitempty"`
	Repo    string `json:"repo,omitempty"`
	Ref     string `json:"ref,omitempty"`
}

// InspectResult is the document of `skillbuild inspect --json`.
type InspectResult struct {
	Name           string            `json:"name"`
	Source         string            `json:"source"` // containerd | registry
	Digest         string            `json:"digest"`
	ManifestDigest string            `json:"manifest_digest"`
	Labels         map[string]string `json:"labels"`
	// Lock is the hash-pinned lock from the image's label (when it fit).
	Lock string `json:"lock,omitempty"`
	// SBOM and Verdict are the attested predicates (null when the image
	// carries none).
	SBOM    json.RawMessage `json:"sbom"`
	Verdict json.RawMessage `json:"verdict"`
	// Attestations lists the predicate types of every statement.
	Attestations []string `json:"attestations"`
}

// PruneRequest asks for build cache and unused content to be freed.
type PruneRequest struct {
	// All removes all build cache and the build history.
	All bool `json:"all,omitempty"`
	// KeepStorage keeps up to this many bytes of build cache.
	KeepStorage int64 `json:"keep_storage,omitempty"`
}

// PruneResult says what a prune removed and freed.
type PruneResult struct {
	CacheRecords   int      `json:"cache_records"`
	CacheBytes     int64    `json:"cache_bytes"`
	HistoryRecords int      `json:"history_records"`
	Staging        []string `json:"staging_images"`
	KeptImages     []string `json:"kept_images"`
	Before         Usage    `json:"before"`
	After          Usage    `json:"after"`
	Freed          Usage    `json:"freed"`
}

// Usage is what containerd holds in the namespace.
type Usage struct {
	Blobs         int   `json:"blobs"`
	ContentBytes  int64 `json:"content_bytes"`
	Snapshots     int   `json:"snapshots"`
	SnapshotBytes int64 `json:"snapshot_bytes"`
}

// BaseImportRequest asks for a base image to be imported offline from
// exactly one of a layout, an archive or a root filesystem on the host.
type BaseImportRequest struct {
	OCILayout  string `json:"-"`
	OCIArchive string `json:"-"`
	Rootfs     string `json:"-"`
	// Name is the reference to tag (required with Rootfs).
	Name string `json:"name,omitempty"`
}

// ImportedImage is an image an import stored.
type ImportedImage struct {
	Name   string        `json:"name"`
	Digest digest.Digest `json:"digest"`
}

// Health says whether the service can serve, and how its warm pool is.
type Health struct {
	OK         bool `json:"ok"`
	Warm       int  `json:"warm"`
	Starting   int  `json:"starting"`
	Destroying int  `json:"destroying"`
}

// PoolStats counts what the warm pool did.
type PoolStats struct {
	Warm, Starting, Destroying                     int
	WarmByImage                                    map[string]int
	Hits, Misses, Discarded, StartFailures, Waited int64
	// Images is the pool per image reference (a skill's image).
	Images map[string]PoolImageStats
}

// PoolImageStats is the warm pool of one image: its containers ready and
// being started, the depth its demand asks for (Target), and its runs
// that got a warm container, started their own, or waited for one.
type PoolImageStats struct {
	Ready, Starting, Target int
	Hits, Misses, Waited    int64
}

// IsRef reports whether a command's argument names an image (it has a
// '/', ':' or '@') rather than a skill id.
func IsRef(arg string) bool { return strings.ContainsAny(arg, "/:@") }

// DBManifest describes the installed vulnerability database: the
// document of `skillbuild db status --json`.
type DBManifest = scan.Manifest

// Familiar is an image name as people write it (atom-skill:x-v1 for
// docker.io/library/atom-skill:x-v1); a name that does not parse is
// returned as it is.
func Familiar(name string) string {
	named, err := reference.ParseNormalizedNamed(name)
	if err != nil {
		return name
	}
	return reference.FamiliarString(named)
}

// InspectLabels are the image labels worth showing people, in the order
// `inspect` shows them.
var InspectLabels = []string{labels.SkillID, labels.SkillVersion, labels.LockDigest, labels.Packages, labels.Base, labels.BaseDigest,
	scan.LabelScan, scan.LabelScanDB, scan.LabelScanAllowed}

// VerdictPredicate is the scan verdict an image carries as an attestation
// (InspectResult.Verdict).
type VerdictPredicate = scan.VerdictPredicate
