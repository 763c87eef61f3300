package config

import (
	"errors"
	"math"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/distribution/reference"
	"github.com/skillbuild/skillbuild/lock"
)

// Severity levels accepted by Policy.MinSeverity, lowest first.
var Severities = []string{"low", "medium", "high", "critical"}

var (
	idRE       = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)
	versionRE  = regexp.MustCompile(`^[0-9]+(\.[0-9]+)*$`)
	sizeRE     = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?)([a-zA-Z]*)$`)
	advisoryRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
)

// maxIDLen bounds a skill id so that the tag ID-vVERSION stays well under
// the 128-character limit of an image tag.
const (
	maxIDLen      = 63
	maxVersionLen = 32
)

// ValidateID checks a skill id: lowercase letters, digits, '-', '_' and
// '.', starting with a letter or digit, at most 63 characters. It never
// rewrites the id; an invalid one is an error.
func ValidateID(id string) error {
	switch {
	case id == "":
		return &Error{Field: "id", Msg: "skill id is required"}
	case len(id) > maxIDLen:
		return invalidf("", 0, "id", "skill id %s is %d characters long; at most %d are allowed", quote(id), len(id), maxIDLen)
	case !idRE.MatchString(id):
		return invalidf("", 0, "id", "skill id %s is invalid: use lowercase letters, digits, '-', '_' and '.', starting with a letter or digit", quote(id))
	}
	return nil
}

// ValidateVersion checks a skill version: a positive integer or dotted
// numbers ("3", "1.2.0") without leading zeros, not all zero.
func ValidateVersion(v string) error {
	switch {
	case v == "":
		return &Error{Field: "version", Msg: "skill version is required"}
	case len(v) > maxVersionLen:
		return invalidf("", 0, "version", "skill version %s is longer than %d characters", quote(v), maxVersionLen)
	case !versionRE.MatchString(v):
		return invalidf("", 0, "version", "skill version %s is invalid: use a positive integer or dotted numbers such as 3 or 1.2.0", quote(v))
	}
	allZero := true
	for _, part := range strings.Split(v, ".") {
		if len(part) > 1 && part[0] == '0' {
			return invalidf("", 0, "version", "skill version %s has a leading zero in %s", quote(v), quote(part))
		}
		if strings.Trim(part, "0") != "" {
			allZero = false
		}
	}
	if allZero {
		return invalidf("", 0, "version", "skill version %s is not positive", quote(v))
	}
	return nil
}

// NormalizeRepo checks an image repository name (lowercase path components,
// optional registry host, no tag or digest) and returns it fully qualified:
// "atom-skill" becomes "docker.io/library/atom-skill".
func NormalizeRepo(repo string) (string, error) {
	if repo == "" {
		return "", &Error{Field: "repo", Msg: "image repository is required"}
	}
	named, err := reference.ParseNormalizedNamed(repo)
	if err != nil {
		return "", invalidf("", 0, "repo", "image repository %s is invalid: %v", quote(repo), err)
	}
	if !reference.IsNameOnly(named) {
		return "", invalidf("", 0, "repo", "image repository %s must not have a tag or digest; the tag is derived from the skill id and version", quote(repo))
	}
	return named.Name(), nil
}

// NormalizeBase checks a base image reference and returns it fully
// qualified with a tag (":latest" when none is given) or digest:
// "python:3.11-slim" becomes "docker.io/library/python:3.11-slim".
func NormalizeBase(base string) (string, error) {
	if base == "" {
		return "", &Error{Field: "base", Msg: "base image is required"}
	}
	named, err := reference.ParseNormalizedNamed(base)
	if err != nil {
		return "", invalidf("", 0, "base", "base image %s is invalid: %v", quote(base), err)
	}
	return reference.TagNameOnly(named).String(), nil
}

// ParseSize parses a size such as "256m", "1g", "512k", "64MiB" or
// "1073741824" into bytes. Units are binary (k = 1024) and case-insensitive:
// b, k/kb/ki/kib, m/mb/mi/mib, g/gb/gi/gib, t/tb/ti/tib. A fraction is
// allowed with a unit ("1.5g"). Zero, negative and overflowing sizes are
// errors.
func ParseSize(s string) (int64, error) {
	m := sizeRE.FindStringSubmatch(s)
	if m == nil {
		return 0, invalidf("", 0, "", "size %s is invalid: use a number of bytes with an optional unit, e.g. 256m, 1g, 64MiB", quote(s))
	}
	var mult float64
	switch strings.ToLower(m[2]) {
	case "", "b":
		mult = 1
	case "k", "kb", "ki", "kib":
		mult = 1 << 10
	case "m", "mb", "mi", "mib":
		mult = 1 << 20
	case "g", "gb", "gi", "gib":
		mult = 1 << 30
	case "t", "tb", "ti", "tib":
		mult = 1 << 40
	default:
		return 0, invalidf("", 0, "", "size %s has unknown unit %s: use k, m, g or t", quote(s), quote(m[2]))
	}
	var n float64
	if !strings.Contains(m[1], ".") {
		i, err := strconv.ParseInt(m[1], 10, 64)
		if err != nil {
			return 0, invalidf("", 0, "", "size %s is too large", quote(s))
		}
		n = float64(i)
		if mult == 1 {
			if i <= 0 {
				return 0, invalidf("", 0, "", "size %s must be positive", quote(s))
			}
			return i, nil
		}
	} else {
		f, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			return 0, invalidf("", 0, "", "size %s is invalid", quote(s))
		}
		n = f
	}
	b := n * mult
	if b >= math.MaxInt64 {
		return 0, invalidf("", 0, "", "size %s is too large", quote(s))
	}
	if int64(b) <= 0 {
		return 0, invalidf("", 0, "", "size %s must be positive", quote(s))
	}
	return int64(b), nil
}

// ParseCPUs parses a positive, finite number of CPUs such as "0.5" or "2".
func ParseCPUs(s string) (float64, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, invalidf("", 0, "", "cpus %s is invalid: use a positive number such as 0.5 or 2", quote(s))
	}
	if f <= 0 || f > 4096 {
		return 0, invalidf("", 0, "", "cpus %s must be greater than 0 and at most 4096", quote(s))
	}
	if f*1e5 < 1000 {
		// The CFS quota is cpus*period(100ms); the kernel wants >= 1ms.
		return 0, invalidf("", 0, "", "cpus %s is below the minimum of 0.01", quote(s))
	}
	return f, nil
}

// ParsePids parses a positive process-count limit.
func ParsePids(s string) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, invalidf("", 0, "", "pids %s is invalid: use a positive integer", quote(s))
	}
	if n <= 0 {
		return 0, invalidf("", 0, "", "pids %s must be positive", quote(s))
	}
	return n, nil
}

// ParseDuration parses a positive duration in Go syntax ("30s", "10m",
// "1h30m") or whole days ("7d").
func ParseDuration(s string) (time.Duration, error) {
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok && days != "" && strings.Trim(days, "0123456789") == "" {
		n, err := strconv.ParseInt(days, 10, 64)
		if err != nil || n > int64(math.MaxInt64/(24*time.Hour)) {
			return 0, invalidf("", 0, "", "duration %s is too large", quote(s))
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		d, err = time.ParseDuration(s)
		if err != nil {
			return 0, invalidf("", 0, "", "duration %s is invalid: use a unit, e.g. 30s, 10m, 1h", quote(s))
		}
	}
	if d <= 0 {
		return 0, invalidf("", 0, "", "duration %s must be positive", quote(s))
	}
	return d, nil
}

// ValidateSeverity checks a minimum severity: empty or one of Severities.
func ValidateSeverity(s string) error {
	if s == "" {
		return nil
	}
	for _, v := range Severities {
		if s == v {
			return nil
		}
	}
	return invalidf("", 0, "min_severity", "severity %s is invalid: use one of %s", quote(s), strings.Join(Severities, ", "))
}

// ValidateRuntime checks a run's runtime: one of Runtimes.
func ValidateRuntime(s string) error {
	for _, v := range Runtimes {
		if s == v {
			return nil
		}
	}
	return invalidf("", 0, "runtime", "runtime %s is invalid: use one of %s", quote(s), strings.Join(Runtimes, ", "))
}

// moduleNameRE is a dotted Python module name.
var moduleNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$`)

// ValidateModuleName checks a module name of the preload list: dotted
// Python identifiers ("numpy", "pandas.core"), never code.
func ValidateModuleName(s string) error {
	if !moduleNameRE.MatchString(s) {
		return errors.New(quote(s) + " is not a Python module name (dotted identifiers, e.g. numpy or pandas.core)")
	}
	return nil
}

// ValidateResolver accepts the resolver choices: auto, pip, builtin.
func ValidateResolver(s string) error {
	switch s {
	case ResolverAuto, ResolverPip, ResolverBuiltin:
		return nil
	}
	return invalidf("", 0, "", "resolver %s is not one of %s, %s, %s", quote(s), ResolverAuto, ResolverPip, ResolverBuiltin)
}

// ValidateIndexURL checks a package index URL: absolute http or https with a
// host. Credentials in the URL are allowed and never echoed in errors.
func ValidateIndexURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return invalidf("", 0, "", "index URL %s is invalid", quote(s))
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return invalidf("", 0, "", "index URL %s must be http or https", quote(redactURL(s)))
	}
	if u.Host == "" {
		return invalidf("", 0, "", "index URL %s has no host", quote(redactURL(s)))
	}
	return nil
}

// dateLayout is the format of an allow entry's expiry date.
const dateLayout = "2006-01-02"

// ParseExpires parses an allow entry's expiry date (YYYY-MM-DD). The entry
// stays valid through the end of that day UTC, so the returned instant is
// the last nanosecond of the day; see AllowEntry.Expired.
func ParseExpires(s string) (time.Time, error) {
	t, err := time.Parse(dateLayout, s)
	if err != nil {
		return time.Time{}, invalidf("", 0, "expires", "expiry date %s is invalid: use YYYY-MM-DD", quote(s))
	}
	return t.Add(24*time.Hour - time.Nanosecond), nil
}

// Expired reports whether the entry no longer applies at now. Expiry is not
// a configuration error: the scanner reports expired entries.
func (a AllowEntry) Expired(now time.Time) bool { return now.After(a.Expires) }

// NewAllowEntry validates the parts of an allow entry: an advisory id
// (PYSEC-2023-228, GHSA-..., CVE-...), an optional package name (stored
// PEP 503-normalized), a non-empty reason and an expiry date.
func NewAllowEntry(id, pkg, reason, expires string) (AllowEntry, error) {
	var errs []error
	a := AllowEntry{ID: id, Reason: strings.TrimSpace(reason)}
	if id == "" {
		errs = append(errs, &Error{Field: "id", Msg: "advisory id is required"})
	} else if !advisoryRE.MatchString(id) || len(id) > 128 {
		errs = append(errs, invalidf("", 0, "id", "advisory id %s is invalid", quote(id)))
	}
	if pkg != "" {
		if !nameRE.MatchString(pkg) {
			errs = append(errs, invalidf("", 0, "package", "package name %s is invalid", quote(pkg)))
		}
		a.Package = lock.NormalizeName(pkg)
	}
	if a.Reason == "" {
		errs = append(errs, &Error{Field: "reason", Msg: "a reason is required for every allowed vulnerability"})
	} else if strings.IndexFunc(a.Reason, isControl) >= 0 {
		errs = append(errs, &Error{Field: "reason", Msg: "reason contains a control character"})
	}
	if expires == "" {
		errs = append(errs, &Error{Field: "expires", Msg: "an expiry date (YYYY-MM-DD) is required for every allowed vulnerability"})
	} else if t, err := ParseExpires(expires); err != nil {
		errs = append(errs, err)
	} else {
		a.Expires = t
	}
	return a, errors.Join(errs...)
}

// ParseAllow parses the command-line form of an allow entry:
//
//	ID[@PACKAGE]:YYYY-MM-DD:REASON
//
// e.g. "PYSEC-2023-228@pip:2027-01-31:pip is not used at run time". The id
// runs to the first ':' and may name a package after '@'; the reason is
// everything after the date and may contain ':'.
func ParseAllow(s string) (AllowEntry, error) {
	head, rest, ok := strings.Cut(s, ":")
	date, reason, ok2 := strings.Cut(rest, ":")
	if !ok || !ok2 {
		return AllowEntry{}, invalidf("", 0, "", "allow entry %s is malformed: use ID[@PACKAGE]:YYYY-MM-DD:REASON", quote(s))
	}
	id, pkg, _ := strings.Cut(head, "@")
	return NewAllowEntry(id, pkg, reason, date)
}
