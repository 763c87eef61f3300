package cli

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	ctd "github.com/containerd/containerd/v2/client"
	"github.com/skillbuild/skillbuild/runtime"
	"github.com/skillbuild/skillbuild/store"
	"github.com/urfave/cli/v2"
)

// dial connects to containerd for the global flags and sweeps away what
// dead runs left behind (sweepRuns). Every command that talks to
// containerd connects through dial or newEngine.
func dial(c *cli.Context) (*ctd.Client, error) {
	client, err := store.Dial(c.Context, c.String("address"), c.String("namespace"))
	if err != nil {
		return nil, err
	}
	sweepRuns(c.Context, envOf(c), client)
	return client, nil
}

// dialSweepAside is dial with the sweep running beside the caller's work
// instead of before it; swept waits for it to end.
func dialSweepAside(c *cli.Context) (client *ctd.Client, swept func(), err error) {
	client, err = store.Dial(c.Context, c.String("address"), c.String("namespace"))
	if err != nil {
		return nil, nil, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sweepRuns(c.Context, envOf(c), client)
	}()
	return client, func() { <-done }, nil
}

// viewSweepEvery is how often the sweep of every command walks
// containerd's snapshots when no dead run of its --root showed (a walk
// costs containerd a look at every snapshot of the namespace, and a
// command runs per tool call). The list of every run container (each with
// its spec, live runs' and serve's warm ones included) is taken as
// seldom: in between, the runs of --root whose process died are found
// from --root itself.
const viewSweepEvery = time.Minute

// sweepRuns removes the containers, views and state of runs whose
// skillbuild process died (at once for runs of --root; by their deadline,
// when their init killed their processes already, for others): the state
// directories of --root, a filtered list of containers when
// viewSweepEvery passed, and of snapshots when a dead run showed or
// viewSweepEvery passed. A failure is a warning: it must not stop an
// unrelated command.
func sweepRuns(ctx context.Context, e env, client *ctd.Client) {
	opts := append([]runtime.Opt{runtime.WithStateDir(filepath.Join(e.root, "runs")), runtime.WithoutSweep(), runtime.WithViewSweepEvery(viewSweepEvery), runtime.WithContainerSweepEvery(viewSweepEvery)}, runtimeModeOpts(e.mode, false)...)
	r, err := runtime.New(ctx, client, opts...)
	if err == nil {
		_, err = r.Sweep(ctx)
	}
	if err != nil {
		fmt.Fprintln(e.stderr, "skillbuild: warning: sweeping orphaned runs:", err)
	}
}

// runsDir is the state directory of runs under --root.
func runsDir(c *cli.Context) string { return filepath.Join(c.String("root"), "runs") }
