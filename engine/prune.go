package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	controlapi "github.com/moby/buildkit/api/services/control"
	bkclient "github.com/moby/buildkit/client"

	"github.com/containerd/errdefs"
	"github.com/skillbuild/skillbuild/labels"
	"github.com/skillbuild/skillbuild/store"
)

// PruneReport says what Prune removed and freed.
type PruneReport struct {
	// CacheRecords and CacheBytes are the BuildKit cache records removed,
	// as BuildKit reported them.
	CacheRecords int   `json:"cache_records"`
	CacheBytes   int64 `json:"cache_bytes"`
	// HistoryRecords are BuildKit's build history records removed (only
	// with WithPruneAll): each holds the logs, traces and results of one
	// past build, and the content they reference.
	HistoryRecords int `json:"history_records"`
	// Staging are leftover staging images of interrupted builds, removed.
	Staging []string `json:"staging_images"`
	// KeptImages are the images in the namespace that are not skill
	// images (base images): Prune never removes them.
	KeptImages []string    `json:"kept_images"`
	Before     store.Usage `json:"before"`
	After      store.Usage `json:"after"`
	// Freed is Before minus After: what containerd no longer holds.
	Freed store.Usage `json:"freed"`
}

type pruneOptions struct {
	all  bool
	keep int64
}

// PruneOpt configures Prune.
type PruneOpt func(*pruneOptions) error

// WithPruneAll removes every BuildKit cache record, including those whose
// layers an image still uses and BuildKit's internal ones (the next build
// runs every step again), and BuildKit's build history. Images, base
// images included, are never removed.
func WithPruneAll() PruneOpt {
	return func(o *pruneOptions) error { o.all = true; return nil }
}

// WithKeepStorage keeps up to n bytes of build cache, removing the least
// recently used records first.
func WithKeepStorage(n int64) PruneOpt {
	return func(o *pruneOptions) error {
		if n < 0 {
			return fmt.Errorf("keep-storage %d is negative: %w", n, errdefs.ErrInvalidArgument)
		}
		o.keep = n
		return nil
	}
}

// Prune frees what no skill image needs: leftover staging images of
// interrupted builds (not those of a build running on another root), BuildKit cache records whose layers no image uses
// (all records with WithPruneAll, down to a size with WithKeepStorage), and
// then the content and snapshots that nothing references any more
// (containerd's garbage collector, run synchronously). Layers shared with
// a remaining skill image survive: the image references them. The engine
// holds the state root's lock, so no build of this root runs meanwhile.
func (e *Engine) Prune(ctx context.Context, opts ...PruneOpt) (*PruneReport, error) {
	var o pruneOptions
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	rep := &PruneReport{Staging: []string{}, KeptImages: []string{}}
	switch {
	case e.remote:
		return nil, fmt.Errorf("builder %s keeps its own build cache under its own policy; prune it there (buildctl prune): %w", e.opts.builder, errdefs.ErrFailedPrecondition)
	case e.ctd == nil:
		// The OCI worker's cache is all there is: no images, no containerd.
		var err error
		if o.all {
			if rep.HistoryRecords, err = e.deleteHistory(ctx); err != nil {
				return nil, err
			}
		}
		return rep, e.pruneCache(ctx, o, rep)
	}
	c := e.ctd
	var err error
	if rep.Before, err = store.DiskUsage(ctx, c, e.opts.snapshotter); err != nil {
		return nil, err
	}

	recs, err := c.ImageService().List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	roots, err := e.knownRoots(ctx)
	if err != nil {
		return nil, err
	}
	for _, rec := range recs {
		switch {
		case strings.HasPrefix(rec.Name, store.StagingPrefix) && stagingInUse(rec.Name, e.opts.root, roots):
			// Another root's build is between export and tag.
		case strings.HasPrefix(rec.Name, store.StagingPrefix):
			if err := c.ImageService().Delete(ctx, rec.Name); err != nil && !errdefs.IsNotFound(err) {
				return nil, fmt.Errorf("remove staging image %s: %w", rec.Name, err)
			}
			rep.Staging = append(rep.Staging, rec.Name)
		case rec.Labels[labels.SkillID] == "":
			rep.KeptImages = append(rep.KeptImages, rec.Name)
		}
	}

	if o.all {
		if rep.HistoryRecords, err = e.deleteHistory(ctx); err != nil {
			return nil, err
		}
	}
	if err := e.pruneCache(ctx, o, rep); err != nil {
		return nil, err
	}

	if err := store.CollectGarbage(ctx, c); err != nil {
		return nil, err
	}
	if rep.After, err = store.DiskUsage(ctx, c, e.opts.snapshotter); err != nil {
		return nil, err
	}
	rep.Freed = rep.Before.Sub(rep.After)
	return rep, nil
}

// stagingInUse reports whether the staging image name belongs to another
// state root whose engine runs now (see stagingName: the name carries the
// root's id; the root's leases say where its lock is). Staging names of
// this root (its engine is the caller), of roots no lease names, and of
// roots nobody holds are leftovers.
func stagingInUse(name, self string, roots map[string]string) bool {
	id, _, ok := strings.Cut(strings.TrimPrefix(name, store.StagingPrefix), "-")
	if !ok || id == rootID(self) {
		return false
	}
	root, ok := roots[id]
	return ok && rootRunning(root)
}

// pruneCache removes BuildKit cache records as o says, counting them in rep.
func (e *Engine) pruneCache(ctx context.Context, o pruneOptions, rep *PruneReport) error {
	var popts []bkclient.PruneOption
	if o.all {
		popts = append(popts, bkclient.PruneAll)
	}
	if o.keep > 0 {
		popts = append(popts, bkclient.WithKeepOpt(0, o.keep, 0, 0))
	}
	ch := make(chan bkclient.UsageInfo)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ui := range ch {
			rep.CacheRecords++
			rep.CacheBytes += ui.Size
		}
	}()
	err := e.client.Prune(ctx, ch, popts...)
	close(ch)
	<-done
	if err != nil {
		return fmt.Errorf("prune build cache: %w", err)
	}
	return nil
}

// deleteHistory removes every finished build's history record and returns
// how many it removed. A build in progress (none: the engine holds the
// state root's lock) would be left alone.
func (e *Engine) deleteHistory(ctx context.Context) (int, error) {
	cc := e.client.ControlClient()
	stream, err := cc.ListenBuildHistory(ctx, &controlapi.BuildHistoryRequest{EarlyExit: true})
	if err != nil {
		return 0, fmt.Errorf("list build history: %w", err)
	}
	var refs []string
	for {
		ev, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, fmt.Errorf("list build history: %w", err)
		}
		if ev.Type == controlapi.BuildHistoryEventType_COMPLETE && ev.Record != nil {
			refs = append(refs, ev.Record.Ref)
		}
	}
	for _, ref := range refs {
		if _, err := cc.UpdateBuildHistory(ctx, &controlapi.UpdateBuildHistoryRequest{Ref: ref, Delete: true}); err != nil {
			return 0, fmt.Errorf("delete build history record %s: %w", ref, err)
		}
	}
	return len(refs), nil
}
