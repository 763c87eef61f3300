package integration

import (
	"context"
	"maps"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	sbruntime "github.com/skillbuild/skillbuild/runtime"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// countingClient is a client of the suite's containerd that counts its
// unary calls by method; calls returns the counts since the last call.
func countingClient(t *testing.T) (c *containerd.Client, calls func() map[string]int) {
	t.Helper()
	var mu sync.Mutex
	counts := map[string]int{}
	conn, err := grpc.NewClient("unix://"+env.socket, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoke grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			mu.Lock()
			counts[method]++
			mu.Unlock()
			return invoke(ctx, method, req, reply, cc, opts...)
		}))
	require.NoError(t, err)
	c, err = containerd.NewWithConn(conn, containerd.WithDefaultNamespace(namespace))
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c, func() map[string]int {
		mu.Lock()
		defer mu.Unlock()
		out := maps.Clone(counts)
		clear(counts)
		return out
	}
}

// TestRunAsksContainerdOnlyWhatItNeeds: a run takes no lease (its root
// filesystem view is a gc.root from its creation), never reads back the
// container record it just created (each read carries the whole spec),
// looks its image up once, and a sweep between two lists of the run
// containers still removes a dead run of its own state directory at once.
func TestRunAsksContainerdOnlyWhatItNeeds(t *testing.T) {
	ctx := context.Background()
	c, calls := countingClient(t)
	state := sbruntime.WithStateDir(filepath.Join(env.root, "runs"))
	r, err := sbruntime.New(ctx, c, state, sbruntime.WithoutSweep())
	require.NoError(t, err)
	run := func() {
		res, err := r.Run(ctx, sbruntime.Request{Image: env.base, Code: []byte("print(1)")})
		require.NoError(t, err)
		require.Nil(t, res.Error)
		require.Equal(t, "1\n", res.Stdout)
	}
	run() // the first run of a process may read the image's config
	calls()
	run()
	got := calls()
	t.Logf("containerd calls of one run: %v", got)
	for m := range got {
		assert.False(t, strings.Contains(m, ".leases.") || strings.Contains(m, ".namespaces."), "%s: a run needs no lease and names its runtime itself", m)
	}
	assert.Zero(t, got["/containerd.services.containers.v1.Containers/Get"], "the record the run created is not read back")
	assert.Equal(t, 1, got["/containerd.services.images.v1.Images/Get"], "the image is looked up once")
	assert.Equal(t, 1, got["/containerd.services.containers.v1.Containers/Create"])
	assert.Equal(t, 1, got["/containerd.services.tasks.v1.Tasks/Create"])
	assert.LessOrEqual(t, got["/containerd.services.snapshots.v1.Snapshots/Mounts"], 1, "the view's mounts are asked for once, for the view and the task")

	// The sweep lists the run containers at most once an hour here: this
	// New lists them, the next one does not, and still removes the run
	// whose process died.
	every := sbruntime.WithContainerSweepEvery(time.Hour)
	_, err = sbruntime.New(ctx, c, state, every)
	require.NoError(t, err)
	startSleepingRun(t, "10m", "rpc-orphan")() // killed: an orphan with ten minutes to go
	require.Len(t, runContainers(t, ctdClient(t)), 1)
	calls()
	_, err = sbruntime.New(ctx, c, state, every)
	require.NoError(t, err)
	got = calls()
	assert.Zero(t, got["/containerd.services.containers.v1.Containers/List"], "the list is not due")
	assert.Empty(t, runContainers(t, ctdClient(t)), "the dead run of this state directory is swept all the same")
	assertNoRunLeftovers(t)
}
