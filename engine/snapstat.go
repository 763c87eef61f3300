package engine

import (
	"context"

	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/moby/buildkit/snapshot"
)

// startupStats answers Stat from one Walk of the snapshotter while the
// worker starts. BuildKit's cache manager loads every cache record at
// start and asks containerd about each one's snapshot in its own round
// trip (tens of milliseconds each on a loaded machine); one Walk lists
// them all. Only existence and metadata are read from the listing, taken
// under the engine's state lock; a key missing from it, and every call
// after done, goes to containerd.
type startupStats struct {
	snapshot.Snapshotter
	startupListing[string, snapshots.Info]
}

func newStartupStats(ctx context.Context, sn snapshot.Snapshotter) *startupStats {
	s := &startupStats{Snapshotter: sn}
	infos := map[string]snapshots.Info{}
	err := sn.Walk(ctx, func(_ context.Context, info snapshots.Info) error {
		infos[info.Name] = info
		return nil
	})
	if err == nil {
		s.m = infos
	}
	return s
}

// Stat answers from the listing while the worker starts.
func (s *startupStats) Stat(ctx context.Context, key string) (snapshots.Info, error) {
	if info, ok := s.get(key); ok {
		return info, nil
	}
	return s.Snapshotter.Stat(ctx, key)
}

// Remove and Commit change what Stat would say about the key.
func (s *startupStats) Remove(ctx context.Context, key string) error {
	s.drop(key)
	return s.Snapshotter.Remove(ctx, key)
}

// Commit invalidates the key (and the committed name).
func (s *startupStats) Commit(ctx context.Context, name, key string, opts ...snapshots.Opt) error {
	s.drop(key)
	s.drop(name)
	return s.Snapshotter.Commit(ctx, name, key, opts...)
}

// Update invalidates the key.
func (s *startupStats) Update(ctx context.Context, info snapshots.Info, fieldpaths ...string) (snapshots.Info, error) {
	s.drop(info.Name)
	return s.Snapshotter.Update(ctx, info, fieldpaths...)
}
