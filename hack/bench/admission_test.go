package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/skillbuild/skillbuild/skill/api"
)

func TestAdmissionOrderRunsEachRowOnceAndRotates(t *testing.T) {
	t.Parallel()
	firsts := map[int]bool{}
	for round := range 6 {
		order := admissionOrder(round, 3)
		assert.ElementsMatch(t, []int{0, 1, 2}, order, "round %d", round)
		firsts[order[0]] = true
	}
	assert.Len(t, firsts, 3, "every row leads some round")
}

// TestAdmissionRowsCheckTheirOrigin: every row runs print(1), and a row
// measured in an image admitted some other way than its column says is an
// error, not a row.
func TestAdmissionRowsCheckTheirOrigin(t *testing.T) {
	t.Parallel()
	rows := admissionRows()
	require.Len(t, rows, 3)
	base, built := &api.Admission{Origin: api.OriginBase}, &api.Admission{Origin: api.OriginBuilt}
	verified := &api.Admission{Origin: "outside this state root", Base: baseRef, Scan: "pass", DB: "sha"}
	unscanned := &api.Admission{Origin: "outside this state root", Unscanned: "not verified"}
	for i, tc := range []struct {
		ok  *api.Admission
		bad []*api.Admission
	}{
		{base, []*api.Admission{nil, built, verified}},
		{built, []*api.Admission{nil, base, verified}},
		{verified, []*api.Admission{nil, base, built, unscanned, {Origin: "a registry"}}},
	} {
		assert.Equal(t, "print(1)", rows[i].req["code"], rows[i].name)
		assert.NoError(t, rows[i].check(tc.ok), rows[i].name)
		for _, a := range tc.bad {
			assert.Error(t, rows[i].check(a), "%s admitted as %+v", rows[i].name, a)
		}
	}
}

func TestAdmissionMarkdown(t *testing.T) {
	t.Parallel()
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	rows := admissionRows()
	rows[0].warm, rows[1].warm, rows[2].warm = ms(100, 100, 100), ms(110, 120, 110), ms(121, 110, 121)
	rows[1].first, rows[2].first = 400*time.Millisecond, 600*time.Millisecond
	out := (&serveReport{admission: rows, admissionLoad: "1.00 2.00 3.00"}).admissionMarkdown()
	assert.Contains(t, out, "### Admission\n")
	assert.Contains(t, out, "3 each")
	assert.Contains(t, out, "Load average at the end: 1.00 2.00 3.00.")
	assert.Contains(t, out, "| 100 ms | 100 ms | 1.00× | 0.91× |\n")
	assert.Contains(t, out, "| 110 ms | 120 ms | 1.10× | 1.00× |\n")
	assert.Contains(t, out, "| 121 ms | 121 ms | 1.21× | 1.10× |\n")
	assert.Contains(t, out, "| (b) own skill: admitted by its mark | 400 ms | 1.00× |\n")
	assert.Contains(t, out, "first run of a foreign image (verification")
	assert.Contains(t, out, "| 600 ms | 1.50× |\n")

	assert.Empty(t, (&serveReport{}).admissionMarkdown(), "not measured: no rows")
}
