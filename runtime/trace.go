package runtime

import (
	"fmt"
	"time"
)

// step starts timing one step of run id; the returned func ends it and
// writes its line to the trace writer (WithTrace). Without a trace writer
// it costs nothing but the clock read.
func (r *Runner) step(id, name string) func() {
	if r.opts.trace == nil {
		return func() {}
	}
	t0 := time.Now()
	return func() {
		fmt.Fprintf(r.opts.trace, "run %s %s %s\n", id, name, time.Since(t0).Round(10*time.Microsecond))
	}
}
