package cli

import (
	"errors"
	"fmt"
	"io"

	"github.com/skillbuild/skillbuild/config"
	"github.com/skillbuild/skillbuild/engine"
	"github.com/skillbuild/skillbuild/scan"
)

// scanGate is scan.Gate recording the verdict in out and in verdict, and
// printing its warnings on stderr.
func scanGate(openDB func() (*scan.DB, error), policy config.Policy, out *installResult, verdict *scan.Verdict, stderr io.Writer) engine.Gate {
	record := recordVerdict(out, stderr)
	return scan.Gate(openDB, policy, func(v scan.Verdict, err error) {
		*verdict = v
		record(v, err)
	})
}

// recordVerdict records a verdict (or a refusal) in out and prints its
// warnings on stderr.
func recordVerdict(out *installResult, stderr io.Writer) func(scan.Verdict, error) {
	return func(v scan.Verdict, err error) {
		out.Allowed = v.Allowed
		out.Warnings = append(out.Warnings, v.Warnings...)
		for _, w := range v.Warnings {
			fmt.Fprintln(stderr, "WARNING:", w)
		}
		var ve *scan.VulnerableError
		switch {
		case errors.As(err, &ve):
			out.Scan = "refused"
		case err == nil:
			out.Scan = "passed"
		}
	}
}
