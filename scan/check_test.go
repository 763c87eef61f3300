package scan

import (
	"errors"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/skillbuild/skillbuild/config"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// freshDB returns the real database as if fetched at now.
func freshDB(t *testing.T, now time.Time, age time.Duration) *DB {
	t.Helper()
	db := *mustRealDB(t) // shallow copy: the index is shared read-only
	db.manifest.FetchedAt = now.Add(-age)
	db.manifest.CheckedAt = now.Add(-age)
	return &db
}

var now = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func TestCheckPolicy(t *testing.T) {
	t.Parallel()
	// urllib3 1.26.4 is affected by PYSEC-2023-192 (CVSS 8.1 high, alias
	// CVE-2023-43804), PYSEC-2023-212 (4.4 medium, CVE-2023-45803) and
	// PYSEC-2021-108 (no severity). pip 23.0.1: PYSEC-2023-228 (CVSS 3.3, low).
	pkgs := []Package{{Name: "urllib3", Version: "1.26.4"}, {Name: "pip", Version: "23.0.1"}, {Name: "six", Version: "1.16.0"}}
	future := now.Add(24 * time.Hour)
	cases := []struct {
		name     string
		policy   config.Policy
		blocking []string
		allowed  []string
		below    []string
		errIs    error
	}{
		{
			name:     "no policy: everything blocks",
			blocking: []string{"PYSEC-2021-108", "PYSEC-2023-192", "PYSEC-2023-212", "PYSEC-2023-228"},
		},
		{
			name:     "min severity high: medium is below, unknown still blocks",
			policy:   config.Policy{MinSeverity: "high"},
			blocking: []string{"PYSEC-2021-108", "PYSEC-2023-192"},
			below:    []string{"PYSEC-2023-212", "PYSEC-2023-228"},
		},
		{
			name: "allow by alias, by id with package, and wrong package does not match",
			policy: config.Policy{Allow: []config.AllowEntry{
				{ID: "CVE-2023-43804", Reason: "not using cookies", Expires: future},
				{ID: "PYSEC-2023-228", Package: "PIP", Reason: "build-only pip", Expires: future},
				{ID: "PYSEC-2021-108", Package: "requests", Reason: "wrong package", Expires: future},
			}},
			blocking: []string{"PYSEC-2021-108", "PYSEC-2023-212"},
			allowed:  []string{"PYSEC-2023-192", "PYSEC-2023-228"},
		},
		{
			name: "expired allow entry fails even if it would match",
			policy: config.Policy{Allow: []config.AllowEntry{
				{ID: "CVE-2023-43804", Reason: "old", Expires: now.Add(-time.Hour)},
			}},
			errIs: errdefs.ErrInvalidArgument,
		},
		{
			name:   "bad severity",
			policy: config.Policy{MinSeverity: "severe"},
			errIs:  errdefs.ErrInvalidArgument,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v, err := Check(freshDB(t, now, time.Hour), pkgs, tc.policy, now)
			if tc.errIs != nil {
				require.ErrorIs(t, err, tc.errIs)
				if len(tc.policy.Allow) > 0 {
					assert.Contains(t, err.Error(), tc.policy.Allow[0].ID)
				}
				return
			}
			var ids, allowed, below []string
			for _, f := range v.Findings {
				ids = append(ids, f.ID)
			}
			for _, f := range v.Allowed {
				allowed = append(allowed, f.ID)
				assert.NotEmpty(t, f.Reason)
			}
			for _, f := range v.Below {
				below = append(below, f.ID)
			}
			assert.ElementsMatch(t, tc.blocking, ids)
			assert.ElementsMatch(t, tc.allowed, allowed)
			assert.ElementsMatch(t, tc.below, below)
			assert.Equal(t, len(tc.blocking) == 0, v.Safe)
			if len(tc.blocking) > 0 {
				var ve *VulnerableError
				require.True(t, errors.As(err, &ve), "err = %v", err)
				assert.Len(t, ve.Findings, len(tc.blocking))
			} else {
				require.NoError(t, err)
			}
		})
	}
}

func TestCheckFindingFields(t *testing.T) {
	t.Parallel()
	v, err := Check(freshDB(t, now, 0), []Package{{Name: "URLLib3", Version: "1.26.4"}}, config.Policy{}, now)
	var ve *VulnerableError
	require.ErrorAs(t, err, &ve)
	var f Finding
	for _, x := range v.Findings {
		if x.ID == "PYSEC-2023-192" {
			f = x
		}
	}
	require.Equal(t, "PYSEC-2023-192", f.ID)
	assert.Equal(t, "urllib3", f.Package)
	assert.Equal(t, "1.26.4", f.Version)
	assert.Equal(t, SeverityHigh, f.Severity)
	assert.Contains(t, f.Aliases, "CVE-2023-43804")
	assert.Equal(t, []string{"1.26.17", "2.0.6"}, f.Fixed)
	assert.Contains(t, ve.Error(), "urllib3==1.26.4 PYSEC-2023-192")
}

func TestCheckSafe(t *testing.T) {
	t.Parallel()
	v, err := Check(freshDB(t, now, 0), []Package{{Name: "pip", Version: "24.0"}, {Name: "six", Version: "1.16.0"}}, config.Policy{}, now)
	require.NoError(t, err)
	assert.True(t, v.Safe)
	assert.Empty(t, v.Findings)
	assert.Len(t, v.Packages, 2)
	assert.Equal(t, 2661, v.DB.Records)
}

func TestCheckStaleness(t *testing.T) {
	t.Parallel()
	pkgs := []Package{{Name: "six", Version: "1.16.0"}}
	day := 24 * time.Hour
	cases := []struct {
		name         string
		age          time.Duration
		policy       config.Policy
		wantErr      bool
		stale        bool
		staleAllowed bool
	}{
		{name: "fresh", age: day},
		{name: "older than warn age warns", age: 8 * day, stale: true},
		{name: "older than max age refuses", age: 31 * day, wantErr: true},
		{name: "allow stale db proceeds and says so", age: 31 * day, policy: config.Policy{AllowStaleDB: true}, stale: true, staleAllowed: true},
		{name: "custom ages", age: 3 * day, policy: config.Policy{WarnAge: day, MaxAge: 2 * day}, wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v, err := Check(freshDB(t, now, tc.age), pkgs, tc.policy, now)
			if tc.wantErr {
				require.ErrorIs(t, err, errdefs.ErrFailedPrecondition)
				assert.Contains(t, err.Error(), "skillbuild db update")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.stale, v.DB.Stale)
			assert.Equal(t, tc.staleAllowed, v.DB.StaleAllowed)
			assert.Equal(t, tc.stale, len(v.Warnings) > 0)
		})
	}
}

func TestCheckNoScan(t *testing.T) {
	t.Parallel()
	v, err := Check(nil, []Package{{Name: "pip", Version: "23.0.1"}}, config.Policy{NoScan: true}, now)
	require.NoError(t, err)
	assert.True(t, v.Safe)
	assert.True(t, v.Skipped)
	assert.NotEmpty(t, v.Warnings)
	_, err = Check(nil, []Package{{Name: "pip", Version: "23.0.1"}}, config.Policy{}, now)
	require.ErrorIs(t, err, errdefs.ErrFailedPrecondition)
}
