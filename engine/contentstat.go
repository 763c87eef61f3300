package engine

import (
	"context"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	digest "github.com/opencontainers/go-digest"
)

// startupInfos answers Info from one Walk of the content store while the
// worker starts. BuildKit's cache manager loads every cache record at
// start and, for each, walks its ancestors asking the content store
// whether each blob-only ancestor's blob is there: one containerd round
// trip per ancestor per record, so a root with many builds pays hundreds
// of them before the first step. One Walk (a single streamed listing)
// answers them all. As with startupStats, only what the listing holds is
// answered from it, and only until done: a digest missing from it, and
// every call after done, goes to containerd; Update and Delete drop the
// digest first, so no label is served stale.
type startupInfos struct {
	content.Store
	startupListing[digest.Digest, content.Info]
}

// newStartupInfos lists the content of namespace ns in cs.
func newStartupInfos(ctx context.Context, cs content.Store, ns string) *startupInfos {
	s := &startupInfos{Store: cs}
	infos := map[digest.Digest]content.Info{}
	err := cs.Walk(namespaces.WithNamespace(ctx, ns), func(info content.Info) error {
		infos[info.Digest] = info
		return nil
	})
	if err == nil {
		s.m = infos
	}
	return s
}

// Info answers from the listing while the worker starts.
func (s *startupInfos) Info(ctx context.Context, dgst digest.Digest) (content.Info, error) {
	if info, ok := s.get(dgst); ok {
		return info, nil
	}
	return s.Store.Info(ctx, dgst)
}

// Update changes the labels Info would report.
func (s *startupInfos) Update(ctx context.Context, info content.Info, fieldpaths ...string) (content.Info, error) {
	s.drop(info.Digest)
	return s.Store.Update(ctx, info, fieldpaths...)
}

// Delete removes the blob.
func (s *startupInfos) Delete(ctx context.Context, dgst digest.Digest) error {
	s.drop(dgst)
	return s.Store.Delete(ctx, dgst)
}
