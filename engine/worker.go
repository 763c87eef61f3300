package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/pkg/gc"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/platforms"
	"github.com/moby/buildkit/cache/metadata"
	"github.com/moby/buildkit/executor/containerdexecutor"
	containerdsnapshot "github.com/moby/buildkit/snapshot/containerd"
	"github.com/moby/buildkit/solver/pb"
	"github.com/moby/buildkit/util/leaseutil"
	"github.com/moby/buildkit/util/network"
	"github.com/moby/buildkit/util/winlayers"
	"github.com/moby/buildkit/worker/base"
	wlabel "github.com/moby/buildkit/worker/label"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// networkProviders are the only networks a step can ask for. Every step
// skillbuild generates runs with network none (the resolve step reaches
// the index through a forwarded socket, not a network), so BuildKit's
// host, CNI and proxy-network providers are never set up: the proxy
// provider alone generates an RSA-2048 CA key and fills a pool of network
// namespaces at start. A step asking for any other network fails.
func networkProviders() map[pb.NetMode]network.Provider {
	return map[pb.NetMode]network.Provider{pb.NetMode_NONE: network.NewNoneProvider()}
}

// workerOpt is BuildKit's containerd worker on the engine's own containerd
// connection (ctdworker.NewWorkerOpt would dial a second one and ask the
// daemon for its identity and runtime platforms): steps run for the host
// platform only.
func (e *Engine) workerOpt(ctx context.Context, stateDir string) (base.WorkerOpt, func(), error) {
	o := e.opts
	root := filepath.Join(stateDir, "containerd-"+o.snapshotter)
	if err := os.MkdirAll(root, 0o700); err != nil {
		return base.WorkerOpt{}, nil, fmt.Errorf("create worker dir: %w", err)
	}
	id, err := base.ID(root)
	if err != nil {
		return base.WorkerOpt{}, nil, err
	}
	md, err := metadata.NewStore(filepath.Join(root, "metadata_v2.db"))
	if err != nil {
		return base.WorkerOpt{}, nil, fmt.Errorf("open worker metadata: %w", err)
	}
	c := e.ctd
	// Leases are labelled with, and listed for, this state root only
	// (leases.go): other roots may build in the same namespace.
	sl := newStartupLeases(namespaces.WithNamespace(ctx, o.namespace), newOwnedLeases(c.LeasesService(), o.root))
	lm := leaseutil.WithNamespace(sl, o.namespace)
	infos := newStartupInfos(ctx, c.ContentStore(), o.namespace)
	cs := containerdsnapshot.NewContentStore(infos, o.namespace)
	np := networkProviders()
	sn := newStartupStats(ctx, containerdsnapshot.NewSnapshotter(o.snapshotter, c.SnapshotService(o.snapshotter), o.namespace, nil))
	exec, err := newInstallBatcher(containerdexecutor.New(containerdexecutor.ExecutorOptions{
		Client:           c,
		Root:             root,
		CgroupParent:     o.cgroupParent,
		NetworkProviders: np,
		// Rootless without cgroups: BuildKit drops each step's cgroup
		// and resources (runc could create neither); the limits travel
		// as rlimits instead (config.BuildLimits.InRlimits).
		Rootless: o.noCgroups,
	}), root)
	if err != nil {
		return base.WorkerOpt{}, nil, err
	}
	return base.WorkerOpt{
		ID:   id,
		Root: root,
		Labels: map[string]string{
			wlabel.Executor:            "containerd",
			wlabel.Snapshotter:         o.snapshotter,
			wlabel.Network:             "none",
			wlabel.ContainerdNamespace: o.namespace,
			"org.skillbuild.worker":    "embedded",
		},
		MetadataStore:    md,
		NetworkProviders: np,
		// Install steps that arrive together run as one container
		// (coalesce.go); every other step as BuildKit runs it.
		Executor:     exec,
		Snapshotter:  sn,
		ContentStore: cs,
		Applier:      winlayers.NewFileSystemApplierWithWindows(cs, c.DiffService()),
		Differ:       winlayers.NewWalkingDiffWithWindows(cs, c.DiffService()),
		ImageStore:   c.ImageService(),
		Platforms:    []ocispecs.Platform{platforms.Normalize(platforms.DefaultSpec())},
		LeaseManager: lm,
		// Creating and synchronously deleting a lease makes containerd
		// collect garbage now (what BuildKit's containerd worker does).
		GarbageCollect: func(ctx context.Context) (gc.Stats, error) {
			l, err := lm.Create(ctx)
			if err != nil {
				return nil, nil
			}
			return nil, lm.Delete(ctx, leases.Lease{ID: l.ID}, leases.SynchronousDelete)
		},
		MountPoolRoot: filepath.Join(root, "cachemounts"),
	}, func() { sn.done(); infos.done(); sl.done() }, nil
}
