package scan

import (
	"context"
	"errors"
	"testing"

	"github.com/skillbuild/skillbuild/config"
	"github.com/skillbuild/skillbuild/lock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLabels(t *testing.T) {
	t.Parallel()
	db := DBInfo{Manifest: Manifest{SHA256: "abc"}}
	assert.Equal(t, map[string]string{LabelScan: "passed", LabelScanDB: "abc"}, Labels(Verdict{DB: db}))

	allowed := Verdict{DB: db, Allowed: []AllowedFinding{{Finding: Finding{ID: "PYSEC-1", Package: "pip"}}, {Finding: Finding{ID: "GHSA-x", Package: "a"}}}}
	l := Labels(allowed)
	assert.Equal(t, "passed-with-allowed", l[LabelScan])
	assert.Equal(t, "PYSEC-1@pip,GHSA-x@a", l[LabelScanAllowed])

	stale := db
	stale.StaleAllowed = true
	assert.Equal(t, "passed-stale-db", Labels(Verdict{DB: stale})[LabelScan], "a stale database accepted is on the image")
	allowed.DB = stale
	assert.Equal(t, "passed-with-allowed-stale-db", Labels(allowed)[LabelScan])
}

func TestPackagesOfLock(t *testing.T) {
	t.Parallel()
	l := lock.Lock{{Name: "a", Version: "1", SHA256: "x"}, {Name: "b", Version: "2.0", SHA256: "y"}}
	assert.Equal(t, []Package{{Name: "a", Version: "1"}, {Name: "b", Version: "2.0"}}, Packages(l))
}

// TestGate runs the gate on the real advisory export: a vulnerable lock
// is refused (and the refusal reported), a clean one gets the labels.
func TestGate(t *testing.T) {
	t.Parallel()
	db, err := OpenFile(testExport)
	require.NoError(t, err)
	var verdicts []Verdict
	var errs []error
	policy := config.Policy{}
	gate := Gate(func() (*DB, error) { return db, nil }, policy, func(v Verdict, err error) {
		verdicts = append(verdicts, v)
		errs = append(errs, err)
	})
	labels, err := gate(context.Background(), lock.Lock{{Name: "pip", Version: "23.0.1"}})
	var ve *VulnerableError
	require.ErrorAs(t, err, &ve)
	assert.Nil(t, labels)
	require.Len(t, verdicts, 1)
	assert.False(t, verdicts[0].Safe)
	assert.ErrorAs(t, errs[0], &ve, "the refusal is reported to seen too")

	labels, err = gate(context.Background(), lock.Lock{{Name: "pip", Version: "23.3"}})
	require.NoError(t, err)
	assert.Equal(t, "passed", labels[LabelScan])
	assert.Equal(t, db.Manifest().SHA256, labels[LabelScanDB])

	openErr := errors.New("no database")
	_, err = Gate(func() (*DB, error) { return nil, openErr }, policy, nil)(context.Background(), nil)
	assert.ErrorIs(t, err, openErr)
}
