package engine

import (
	"context"
	"fmt"

	ctdsnapshot "github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/plugins/snapshots/native"
	"github.com/containerd/containerd/v2/plugins/snapshots/overlay"
	"github.com/containerd/containerd/v2/plugins/snapshots/overlay/overlayutils"
	"github.com/moby/buildkit/executor/oci"
	"github.com/moby/buildkit/util/network/cniprovider"
	"github.com/moby/buildkit/util/network/netproviders"
	"github.com/moby/buildkit/worker/base"
	"github.com/moby/buildkit/worker/runc"
)

// ociWorkerOpt is BuildKit's OCI worker for the embedded-oci builder:
// runc runs the steps and a snapshotter of BuildKit's own (overlayfs when
// the state root supports it, native copies otherwise) keeps their
// filesystems under the state root. No containerd is involved.
func (e *Engine) ociWorkerOpt(_ context.Context, stateDir string) (base.WorkerOpt, func(), error) {
	sn := runc.SnapshotterFactory{Name: "native", New: native.NewSnapshotter}
	if overlayutils.Supported(stateDir) == nil {
		sn = runc.SnapshotterFactory{Name: "overlayfs", New: func(root string) (ctdsnapshot.Snapshotter, error) {
			return overlay.NewSnapshotter(root, overlay.AsynchronousRemove)
		}}
	}
	wopt, err := runc.NewWorkerOpt(stateDir, sn, false, oci.ProcessSandbox,
		map[string]string{"org.skillbuild.worker": BuilderEmbeddedOCI},
		nil,
		// As with the containerd worker: every exec sets its network mode,
		// "host" only avoids probing for CNI.
		netproviders.Opt{Mode: "host", CNI: cniprovider.Opt{Root: stateDir}},
		nil, "", "", false, nil, "", e.opts.cgroupParent, nil)
	if err != nil {
		return base.WorkerOpt{}, nil, fmt.Errorf("runc, %s snapshotter: %w", sn.Name, err)
	}
	return wopt, func() {}, nil
}
