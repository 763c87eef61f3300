package engine

import (
	"context"
	"fmt"

	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/errdefs"
)

// startupLeases answers Delete of a lease that does not exist without
// asking containerd, from one listing of the namespace's leases taken as
// the engine starts. Opening the build cache checks that every cached
// result's record still exists, and releasing each one deletes its view
// lease, which is there only while a result is mounted: one containerd
// round trip per cached result (40-130 ms in a used root) before the
// first step, nearly all answered "not found". The listing is of every
// lease in the namespace (not only this root's), a lease created
// meanwhile is added to it, and after done every call goes to containerd.
type startupLeases struct {
	ownedLeases
	startupListing[string, struct{}]
}

// newStartupLeases lists the leases of the namespace in ctx.
func newStartupLeases(ctx context.Context, m ownedLeases) *startupLeases {
	s := &startupLeases{ownedLeases: m}
	all, err := m.Manager.List(ctx) // every root's, unfiltered
	if err != nil {
		return s // every Delete asks containerd
	}
	s.m = make(map[string]struct{}, len(all))
	for _, l := range all {
		s.m[l.ID] = struct{}{}
	}
	return s
}

// Create records the new lease while starting.
func (s *startupLeases) Create(ctx context.Context, opts ...leases.Opt) (leases.Lease, error) {
	l, err := s.ownedLeases.Create(ctx, opts...)
	if err == nil {
		s.set(l.ID, struct{}{})
	}
	return l, err
}

// Delete answers not found for a lease the listing lacks while starting.
func (s *startupLeases) Delete(ctx context.Context, l leases.Lease, opts ...leases.DeleteOpt) error {
	if known, listed := s.drop(l.ID); listed && !known {
		return fmt.Errorf("lease %q: %w", l.ID, errdefs.ErrNotFound)
	}
	return s.ownedLeases.Delete(ctx, l, opts...)
}
