package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/skillbuild/skillbuild/build"
	"github.com/skillbuild/skillbuild/config"
	sbllb "github.com/skillbuild/skillbuild/llb"
	"github.com/skillbuild/skillbuild/scan"
)

// Image labels that record the vulnerability verdict.
const (
	labelScan      = "org.skillbuild.scan"
	labelScanDB    = "org.skillbuild.scan.db.sha256"
	labelScanAllow = "org.skillbuild.scan.allowed"
)

// scanGate plugs the scanner between resolution and fetching: it scans
// exactly the resolved lock and records the verdict in out and the image.
// openDB waits for the database, which loads while the build starts.
func scanGate(openDB func() (*scan.DB, error), policy config.Policy, out *installResult) build.Gate {
	return func(ctx context.Context, lock sbllb.Lock) (map[string]string, error) {
		db, err := openDB()
		if err != nil {
			return nil, err
		}
		pkgs := make([]scan.Package, len(lock))
		for i, d := range lock {
			pkgs[i] = scan.Package{Name: d.Name, Version: d.Version}
		}
		v, err := scan.Check(db, pkgs, policy, time.Now())
		out.Allowed = v.Allowed
		out.Warnings = append(out.Warnings, v.Warnings...)
		for _, w := range v.Warnings {
			fmt.Fprintln(os.Stderr, "WARNING:", w)
		}
		var ve *scan.VulnerableError
		if errors.As(err, &ve) {
			out.Scan = "refused"
			return nil, err
		}
		if err != nil {
			return nil, err
		}
		out.Scan = "passed"
		labels := map[string]string{labelScan: "passed", labelScanDB: v.DB.SHA256}
		if len(v.Allowed) > 0 {
			ids := ""
			for i, a := range v.Allowed {
				if i > 0 {
					ids += ","
				}
				ids += a.ID + "@" + a.Package
			}
			labels[labelScan] = "passed-with-allowed"
			labels[labelScanAllow] = ids
		}
		if v.DB.StaleAllowed {
			labels[labelScan] += "-stale-db"
		}
		return labels, nil
	}
}
