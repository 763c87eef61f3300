package engine

import (
	"context"
	"sync"

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
	mu    sync.Mutex
	infos map[string]snapshots.Info // nil once done
}

func newStartupStats(ctx context.Context, sn snapshot.Snapshotter) *startupStats {
	s := &startupStats{Snapshotter: sn, infos: map[string]snapshots.Info{}}
	err := sn.Walk(ctx, func(_ context.Context, info snapshots.Info) error {
		s.infos[info.Name] = info
		return nil
	})
	if err != nil {
		s.infos = nil // every Stat asks containerd
	}
	return s
}

// Stat answers from the listing while the worker starts.
func (s *startupStats) Stat(ctx context.Context, key string) (snapshots.Info, error) {
	s.mu.Lock()
	info, ok := s.infos[key]
	s.mu.Unlock()
	if ok {
		return info, nil
	}
	return s.Snapshotter.Stat(ctx, key)
}

// done ends the start-up: every later Stat asks containerd.
func (s *startupStats) done() {
	s.mu.Lock()
	s.infos = nil
	s.mu.Unlock()
}

// invalidate drops key from the listing (it changed).
func (s *startupStats) invalidate(key string) {
	s.mu.Lock()
	delete(s.infos, key)
	s.mu.Unlock()
}

// Remove and Commit change what Stat would say about the key.
func (s *startupStats) Remove(ctx context.Context, key string) error {
	s.invalidate(key)
	return s.Snapshotter.Remove(ctx, key)
}

// Commit invalidates the key (and the committed name).
func (s *startupStats) Commit(ctx context.Context, name, key string, opts ...snapshots.Opt) error {
	s.invalidate(key)
	s.invalidate(name)
	return s.Snapshotter.Commit(ctx, name, key, opts...)
}

// Update invalidates the key.
func (s *startupStats) Update(ctx context.Context, info snapshots.Info, fieldpaths ...string) (snapshots.Info, error) {
	s.invalidate(info.Name)
	return s.Snapshotter.Update(ctx, info, fieldpaths...)
}
