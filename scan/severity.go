package scan

import (
	"fmt"
	"strings"

	"github.com/containerd/errdefs"
	gocvss20 "github.com/pandatix/go-cvss/20"
	gocvss30 "github.com/pandatix/go-cvss/30"
	gocvss31 "github.com/pandatix/go-cvss/31"
	gocvss40 "github.com/pandatix/go-cvss/40"
)

// Severity levels, from least to most severe. SeverityUnknown is a record
// without a usable CVSS vector; it always blocks (see [Check]).
const (
	SeverityUnknown  = "unknown"
	SeverityNone     = "none"
	SeverityLow      = "low"
	SeverityMedium   = "medium"
	SeverityHigh     = "high"
	SeverityCritical = "critical"
)

var severityRank = map[string]int{
	SeverityNone: 1, SeverityLow: 2, SeverityMedium: 3, SeverityHigh: 4, SeverityCritical: 5,
}

// ParseSeverity checks a policy threshold ("" means report everything).
func ParseSeverity(s string) (string, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "" {
		return "", nil
	}
	if _, ok := severityRank[s]; !ok || s == SeverityNone {
		return "", fmt.Errorf("unknown severity %q (want low, medium, high or critical): %w", s, errdefs.ErrInvalidArgument)
	}
	return s, nil
}

// cvssScore returns the base score of a CVSS vector and whether it parsed.
func cvssScore(typ, vector string) (float64, bool) {
	switch typ {
	case "CVSS_V2":
		c, err := gocvss20.ParseVector(vector)
		if err != nil {
			return 0, false
		}
		return c.BaseScore(), true
	case "CVSS_V3":
		if strings.HasPrefix(vector, "CVSS:3.0/") {
			c, err := gocvss30.ParseVector(vector)
			if err != nil {
				return 0, false
			}
			return c.BaseScore(), true
		}
		c, err := gocvss31.ParseVector(vector)
		if err != nil {
			return 0, false
		}
		return c.BaseScore(), true
	case "CVSS_V4":
		c, err := gocvss40.ParseVector(vector)
		if err != nil {
			return 0, false
		}
		return c.Score(), true
	}
	return 0, false
}

// rating maps a CVSS base score to its qualitative rating (the v3/v4 table;
// v2 scores use the same bands, as NVD does).
func rating(score float64) string {
	switch {
	case score >= 9.0:
		return SeverityCritical
	case score >= 7.0:
		return SeverityHigh
	case score >= 4.0:
		return SeverityMedium
	case score >= 0.1:
		return SeverityLow
	}
	return SeverityNone
}

// severityOf returns the highest rating among the record's and the affected
// entry's CVSS vectors, or SeverityUnknown if none parses.
func severityOf(sevs ...[]Severity) (string, string) {
	best, vector := SeverityUnknown, ""
	for _, list := range sevs {
		for _, s := range list {
			score, ok := cvssScore(s.Type, s.Score)
			if !ok {
				continue
			}
			if r := rating(score); severityRank[r] > severityRank[best] {
				best, vector = r, s.Score
			}
		}
	}
	return best, vector
}
