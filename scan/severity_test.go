package scan

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestSeverityOf(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		sevs []Severity
		want string
	}{
		// PYSEC-2024-25 (duckdb): 9.8.
		{"v3.1 critical", []Severity{{"CVSS_V3", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}}, SeverityCritical},
		// PYSEC-2023-228 (pip): 3.3.
		{"v3.1 low", []Severity{{"CVSS_V3", "CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:N/I:L/A:N"}}, SeverityLow},
		{"v3.0 vector", []Severity{{"CVSS_V3", "CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"}}, SeverityHigh},
		{"v2 vector", []Severity{{"CVSS_V2", "AV:N/AC:L/Au:N/C:P/I:P/A:P"}}, SeverityHigh},
		{"v4 vector", []Severity{{"CVSS_V4", "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"}}, SeverityCritical},
		{"highest of several wins", []Severity{{"CVSS_V3", "CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:N/I:L/A:N"}, {"CVSS_V3", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}}, SeverityCritical},
		{"garbage vector is unknown", []Severity{{"CVSS_V3", "CVSS:3.1/garbage"}}, SeverityUnknown},
		{"unknown type is unknown", []Severity{{"Ubuntu", "high"}}, SeverityUnknown},
		{"none is unknown", nil, SeverityUnknown},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, _ := severityOf(tc.sevs)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestParseSeverity(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"": "", "LOW": "low", " high ": "high", "critical": "critical"} {
		got, err := ParseSeverity(in)
		assert.NoError(t, err, in)
		assert.Equal(t, want, got)
	}
	for _, bad := range []string{"none", "severe", "unknown"} {
		_, err := ParseSeverity(bad)
		assert.Error(t, err, bad)
	}
}
