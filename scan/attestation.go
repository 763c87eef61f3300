package scan

import (
	"time"

	"github.com/skillbuild/skillbuild/config"
)

// VerdictPredicate is a verdict as an in-toto predicate attached to the
// image it was reached for (see package attest). It is a function of the
// lock, the database's content and the policy only (no scan time, no
// time the host imported or last checked the database), so an unchanged
// rebuild, on this host or on another with the same database, yields the
// same attestation and the same image digest.
type VerdictPredicate struct {
	// Result is the LabelScan value: passed, passed-with-allowed (either
	// with -stale-db), or disabled.
	Result string `json:"result"`
	// Packages is how many distributions were scanned.
	Packages int `json:"packages"`
	// DB is the vulnerability database the verdict came from (absent when
	// disabled).
	DB *VerdictDB `json:"db,omitempty"`
	// Policy is what decided which findings block.
	Policy VerdictPolicy `json:"policy"`
	// Findings are blocking findings (empty: the image was built).
	Findings []Finding `json:"findings"`
	// Allowed are findings an allow entry accepted, with its reason and
	// expiry.
	Allowed []AllowedFinding `json:"allowed"`
	// BelowThreshold are findings under the policy's minimum severity.
	BelowThreshold []Finding `json:"below_threshold"`
}

// VerdictDB identifies a database by its content: its sha256, and the
// newest modification time among its records (how current it is).
type VerdictDB struct {
	SHA256         string    `json:"sha256"`
	NewestModified time.Time `json:"newest_modified"`
	Records        int       `json:"records"`
	// StaleAllowed: older than the policy's maximum age, accepted.
	StaleAllowed bool `json:"stale_allowed"`
}

// VerdictPolicy is the part of a policy a verdict depends on.
type VerdictPolicy struct {
	MinSeverity  string  `json:"min_severity,omitempty"`
	AllowStaleDB bool    `json:"allow_stale_db"`
	MaxAgeDays   float64 `json:"max_age_days,omitempty"`
}

// Predicate is the attestation of a passing verdict v reached under p.
func Predicate(v Verdict, p config.Policy) VerdictPredicate {
	out := VerdictPredicate{
		Result:         Labels(v)[LabelScan],
		Packages:       len(v.Packages),
		Policy:         verdictPolicy(p),
		Findings:       nonNil(v.Findings),
		Allowed:        v.Allowed,
		BelowThreshold: nonNil(v.Below),
		DB: &VerdictDB{
			SHA256: v.DB.SHA256, NewestModified: v.DB.NewestModified.UTC(),
			Records: v.DB.Records, StaleAllowed: v.DB.StaleAllowed,
		},
	}
	if out.Allowed == nil {
		out.Allowed = []AllowedFinding{}
	}
	return out
}

// DisabledPredicate is the attestation of a build whose policy disabled
// the scan: nothing was checked.
func DisabledPredicate(p config.Policy, packages int) VerdictPredicate {
	return VerdictPredicate{Result: "disabled", Packages: packages, Policy: verdictPolicy(p),
		Findings: []Finding{}, Allowed: []AllowedFinding{}, BelowThreshold: []Finding{}}
}

func verdictPolicy(p config.Policy) VerdictPolicy {
	return VerdictPolicy{MinSeverity: p.MinSeverity, AllowStaleDB: p.AllowStaleDB, MaxAgeDays: p.MaxAge.Hours() / 24}
}

func nonNil(f []Finding) []Finding {
	if f == nil {
		return []Finding{}
	}
	return f
}

// Passing tells whether a LabelScan value is a passing verdict.
func Passing(label string) bool {
	return label == "passed" || label == "passed-with-allowed" ||
		label == "passed-stale-db" || label == "passed-with-allowed-stale-db"
}
