package scan

import (
	"context"
	"strings"
	"time"

	"github.com/skillbuild/skillbuild/config"
	"github.com/skillbuild/skillbuild/lock"
)

// Image labels that record the vulnerability verdict in a skill image.
const (
	// LabelScan is "passed", "passed-with-allowed", either with
	// "-stale-db" appended when a stale database was accepted.
	LabelScan = "org.skillbuild.scan"
	// LabelScanDB is the sha256 of the database the verdict came from.
	LabelScanDB = "org.skillbuild.scan.db.sha256"
	// LabelScanAllowed lists the allowed findings as ID@package, comma-separated.
	LabelScanAllowed = "org.skillbuild.scan.allowed"
)

// Packages is the lock's name==version set, as Check takes it.
func Packages(l lock.Lock) []Package {
	pkgs := make([]Package, len(l))
	for i, d := range l {
		pkgs[i] = Package{Name: d.Name, Version: d.Version}
	}
	return pkgs
}

// Labels records a passing verdict in image labels.
func Labels(v Verdict) map[string]string {
	labels := map[string]string{LabelScan: "passed", LabelScanDB: v.DB.SHA256}
	if len(v.Allowed) > 0 {
		ids := make([]string, len(v.Allowed))
		for i, a := range v.Allowed {
			ids[i] = a.ID + "@" + a.Package
		}
		labels[LabelScan] = "passed-with-allowed"
		labels[LabelScanAllowed] = strings.Join(ids, ",")
	}
	if v.DB.StaleAllowed {
		labels[LabelScan] += "-stale-db"
	}
	return labels
}

// Gate returns the check a build runs between resolving and fetching
// (engine.Gate): it scans exactly the resolved lock against the database
// that open returns (open may wait for a database still loading) and
// either refuses the lock with a *VulnerableError or returns the verdict's
// image labels. seen, if not nil, is told every verdict, refusals included.
func Gate(open func() (*DB, error), policy config.Policy, seen func(Verdict, error)) func(context.Context, lock.Lock) (map[string]string, error) {
	return func(ctx context.Context, l lock.Lock) (map[string]string, error) {
		db, err := open()
		if err != nil {
			return nil, err
		}
		v, err := Check(db, Packages(l), policy, time.Now())
		if seen != nil {
			seen(v, err)
		}
		if err != nil {
			return nil, err
		}
		return Labels(v), nil
	}
}
