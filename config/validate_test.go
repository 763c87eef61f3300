package config

import (
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestValidateID(t *testing.T) {
	t.Parallel()
	for _, id := range []string{"weather", "a", "0", "web-search_v2.1", "a..b", "x123456789012345678901234567890123456789012345678901234567890ab"} {
		assert.NoError(t, ValidateID(id), id)
	}
	tests := []struct{ id, want string }{
		{"", "skill id is required"},
		{"../x", "is invalid"},
		{"a:b", "is invalid"},
		{"a/b", "is invalid"},
		{"Weather", "is invalid"},
		{"weather ", "is invalid"},
		{" weather", "is invalid"},
		{"-weather", "is invalid"},
		{".weather", "is invalid"},
		{"_weather", "is invalid"},
		{"wea ther", "is invalid"},
		{"wea\x00ther", "is invalid"},
		{"wéather", "is invalid"},
		{"x1234567890123456789012345678901234567890123456789012345678901abc", "at most 63 are allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			t.Parallel()
			err := ValidateID(tt.id)
			require.Error(t, err)
			assert.True(t, errdefs.IsInvalidArgument(err))
			assert.Contains(t, err.Error(), "id: ")
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestValidateVersion(t *testing.T) {
	t.Parallel()
	for _, v := range []string{"3", "1.2.0", "0.1", "10", "2024.11.26"} {
		assert.NoError(t, ValidateVersion(v), v)
	}
	tests := []struct{ v, want string }{
		{"", "skill version is required"},
		{"0", "is not positive"},
		{"0.0", "is not positive"},
		{"v3", "is invalid"},
		{"1.", "is invalid"},
		{".1", "is invalid"},
		{"-1", "is invalid"},
		{"1..2", "is invalid"},
		{"1.2-rc1", "is invalid"},
		{"3 ", "is invalid"},
		{"03", "leading zero"},
		{"1.02", "leading zero"},
		{"1.2.3.4.5.6.7.8.9.10.11.12.13.14.15", "longer than 32"},
	}
	for _, tt := range tests {
		t.Run(tt.v, func(t *testing.T) {
			t.Parallel()
			err := ValidateVersion(tt.v)
			require.Error(t, err)
			assert.True(t, errdefs.IsInvalidArgument(err))
			assert.Contains(t, err.Error(), "version: ")
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestNormalizeRepoAndBase(t *testing.T) {
	t.Parallel()
	repos := map[string]string{
		"atom-skill":                    "docker.io/library/atom-skill",
		"me/skills":                     "docker.io/me/skills",
		"registry.local:5000/a/b":       "registry.local:5000/a/b",
		"ghcr.io/acme/atom-skill":       "ghcr.io/acme/atom-skill",
		"docker.io/library/atom-skill":  "docker.io/library/atom-skill",
		"localhost/atom-skill":          "localhost/atom-skill",
		"registry.local:5000/atom_skil": "registry.local:5000/atom_skil",
	}
	for in, want := range repos {
		got, err := NormalizeRepo(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, bad := range []string{"", "Atom", "atom-skill:latest", "atom@sha256:" + sixtyFour, "a//b", "-a", "a b"} {
		_, err := NormalizeRepo(bad)
		require.Error(t, err, bad)
		assert.True(t, errdefs.IsInvalidArgument(err))
		assert.Contains(t, err.Error(), "repo: ")
	}

	bases := map[string]string{
		"python:3.11-slim":                    "docker.io/library/python:3.11-slim",
		"docker.io/library/python:3.11-slim":  "docker.io/library/python:3.11-slim",
		"python":                              "docker.io/library/python:latest",
		"ghcr.io/acme/py@sha256:" + sixtyFour: "ghcr.io/acme/py@sha256:" + sixtyFour,
	}
	for in, want := range bases {
		got, err := NormalizeBase(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, bad := range []string{"", "Python:3", "python:", "python:3 ", "python@sha256:abc"} {
		_, err := NormalizeBase(bad)
		require.Error(t, err, bad)
		assert.True(t, errdefs.IsInvalidArgument(err))
		assert.Contains(t, err.Error(), "base: ")
	}
}

const sixtyFour = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestParseSize(t *testing.T) {
	t.Parallel()
	good := map[string]int64{
		"256m": 256 << 20, "1g": 1 << 30, "512k": 512 << 10, "1073741824": 1 << 30, "64MiB": 64 << 20,
		"64mb": 64 << 20, "1G": 1 << 30, "1.5g": 3 << 29, "100b": 100, "2t": 2 << 40, "1Ki": 1024,
	}
	for in, want := range good {
		got, err := ParseSize(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	bad := map[string]string{
		"": "is invalid", "0": "must be positive", "0m": "must be positive", "-1m": "is invalid",
		"abc": "is invalid", "1q": "unknown unit", "1gg": "unknown unit", "g": "is invalid",
		" 1g": "is invalid", "1 g": "is invalid", "1.g": "is invalid", "0.0000001k": "must be positive",
		"99999999999999999999": "too large", "9999999999t": "too large", "1e3": "is invalid",
	}
	for in, want := range bad {
		_, err := ParseSize(in)
		require.Error(t, err, in)
		assert.True(t, errdefs.IsInvalidArgument(err))
		assert.Contains(t, err.Error(), want, in)
	}
}

func TestParseLimits(t *testing.T) {
	t.Parallel()
	c, err := ParseCPUs("0.5")
	require.NoError(t, err)
	assert.Equal(t, 0.5, c)
	for _, bad := range []string{"", "0", "-1", "NaN", "Inf", "abc", "0.001", "5000"} {
		_, err := ParseCPUs(bad)
		assert.Error(t, err, bad)
		assert.True(t, errdefs.IsInvalidArgument(err), bad)
	}
	p, err := ParsePids("64")
	require.NoError(t, err)
	assert.Equal(t, int64(64), p)
	for _, bad := range []string{"", "0", "-1", "1.5", "64k"} {
		_, err := ParsePids(bad)
		assert.Error(t, err, bad)
	}
	d, err := ParseDuration("10m")
	require.NoError(t, err)
	assert.Equal(t, 10*time.Minute, d)
	d, err = ParseDuration("7d")
	require.NoError(t, err)
	assert.Equal(t, 7*24*time.Hour, d)
	for _, bad := range []string{"", "0s", "-1s", "30", "d", "1.5d", "abc", "99999999999999d"} {
		_, err := ParseDuration(bad)
		assert.Error(t, err, bad)
	}
}

func TestValidateRuntime(t *testing.T) {
	t.Parallel()
	for _, r := range Runtimes {
		assert.NoError(t, ValidateRuntime(r), r)
	}
	for _, r := range []string{"", "runsc", "gVisor", "kata", " runc"} {
		err := ValidateRuntime(r)
		require.Error(t, err, r)
		assert.Contains(t, err.Error(), "use one of runc, gvisor", r)
	}
}

func TestValidateSeverityAndIndexURL(t *testing.T) {
	t.Parallel()
	for _, s := range append([]string{""}, Severities...) {
		assert.NoError(t, ValidateSeverity(s))
	}
	for _, s := range []string{"High", "severe", " high"} {
		assert.Error(t, ValidateSeverity(s), s)
	}
	for _, u := range []string{"https://pypi.org/simple", "http://127.0.0.1:8080/simple/", "https://user:tok@idx.example/simple"} {
		assert.NoError(t, ValidateIndexURL(u), u)
	}
	for _, u := range []string{"", "pypi.org/simple", "ftp://x/simple", "file:///srv/simple", "https:///simple", "https://user:s3cret@%zz"} {
		err := ValidateIndexURL(u)
		require.Error(t, err, u)
		assert.NotContains(t, err.Error(), "s3cret")
	}
	err := ValidateIndexURL("ftp://user:s3cret@idx.example/simple")
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "s3cret")
}

func TestParseAllow(t *testing.T) {
	t.Parallel()
	a, err := ParseAllow("PYSEC-2023-228@Pip_Tools:2027-01-31:not reachable: pip runs only at build time")
	require.NoError(t, err)
	assert.Equal(t, "PYSEC-2023-228", a.ID)
	assert.Equal(t, "pip-tools", a.Package)
	assert.Equal(t, "not reachable: pip runs only at build time", a.Reason)
	assert.Equal(t, time.Date(2027, 1, 31, 23, 59, 59, 999999999, time.UTC), a.Expires)
	assert.False(t, a.Expired(time.Date(2027, 1, 31, 23, 0, 0, 0, time.UTC)))
	assert.True(t, a.Expired(time.Date(2027, 2, 1, 0, 0, 0, 0, time.UTC)))

	// Expired entries are not configuration errors.
	a, err = ParseAllow("GHSA-xxxx-yyyy-zzzz:2001-01-01:old")
	require.NoError(t, err)
	assert.Empty(t, a.Package)
	assert.True(t, a.Expired(time.Now()))

	bad := map[string]string{
		"PYSEC-1":                       "malformed",
		"PYSEC-1:2027-01-31":            "malformed",
		"PYSEC-1:2027-01-31:":           "reason is required",
		"PYSEC-1:2027-01-31:   ":        "reason is required",
		"PYSEC-1:31-01-2027:why":        "use YYYY-MM-DD",
		"PYSEC-1:2027-02-30:why":        "use YYYY-MM-DD",
		":2027-01-31:why":               "advisory id is required",
		"PY SEC:2027-01-31:why":         "advisory id",
		"PYSEC-1@-bad-:2027-01-31:why":  "package name",
		"PYSEC-1:2027-01-31:why\x1b[2K": "control character",
		"PYSEC-1::why":                  "expiry date",
	}
	for in, want := range bad {
		_, err := ParseAllow(in)
		require.Error(t, err, in)
		assert.True(t, errdefs.IsInvalidArgument(err), in)
		assert.Contains(t, err.Error(), want, in)
	}
}

func TestIndexRedacted(t *testing.T) {
	t.Parallel()
	idx := Index{URL: "https://user:s3cret@idx.example/simple", ExtraURLs: []string{"https://x.example/simple", "https://tok@y.example/simple"}}
	r := idx.Redacted()
	assert.Equal(t, "https://xxxxx@idx.example/simple", r.URL)
	assert.Equal(t, []string{"https://x.example/simple", "https://xxxxx@y.example/simple"}, r.ExtraURLs)
	assert.Equal(t, "https://user:s3cret@idx.example/simple", idx.URL, "original unchanged")
}
