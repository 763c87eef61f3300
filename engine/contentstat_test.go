package engine

import (
	"bytes"
	"context"
	"maps"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func writeBlob(t *testing.T, cs content.Store, data string) digest.Digest {
	t.Helper()
	dgst := digest.FromString(data)
	require.NoError(t, content.WriteBlob(context.Background(), cs, "test-"+dgst.Encoded(), bytes.NewReader([]byte(data)),
		ocispec.Descriptor{Digest: dgst, Size: int64(len(data))}))
	return dgst
}

// TestStartupInfosAnswerFromOneListing shows Info answered from the
// listing while the worker starts (a blob removed behind its back is still
// there), from containerd after done, and never stale after an Update.
func TestStartupInfosAnswerFromOneListing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cs, err := local.NewLabeledStore(t.TempDir(), labelMap{})
	require.NoError(t, err)
	listed := writeBlob(t, cs, "listed")
	relabelled := writeBlob(t, cs, "relabelled")

	s := newStartupInfos(ctx, cs, "ns")
	require.NoError(t, cs.Delete(ctx, listed)) // behind the wrapper's back
	_, err = s.Info(ctx, listed)
	require.NoError(t, err, "answered from the listing while starting")

	later := writeBlob(t, cs, "written after the listing")
	_, err = s.Info(ctx, later)
	require.NoError(t, err, "a digest the listing lacks goes to the store")

	_, err = s.Update(ctx, content.Info{Digest: relabelled, Labels: map[string]string{"k": "v"}}, "labels.k")
	require.NoError(t, err)
	info, err := s.Info(ctx, relabelled)
	require.NoError(t, err)
	assert.Equal(t, "v", info.Labels["k"], "no stale labels after Update")

	s.done()
	_, err = s.Info(ctx, listed)
	assert.True(t, errdefs.IsNotFound(err), "after done every Info asks the store: %v", err)
}

// TestStartupInfosDeleteInvalidates shows a Delete through the wrapper
// is seen at once.
func TestStartupInfosDeleteInvalidates(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cs, err := local.NewStore(t.TempDir())
	require.NoError(t, err)
	dgst := writeBlob(t, cs, "gone")
	s := newStartupInfos(ctx, cs, "ns")
	require.NoError(t, s.Delete(ctx, dgst))
	_, err = s.Info(ctx, dgst)
	assert.True(t, errdefs.IsNotFound(err), "%v", err)
}

// labelMap is an in-memory label store for a local content store.
type labelMap map[digest.Digest]map[string]string

func (m labelMap) Get(d digest.Digest) (map[string]string, error) { return maps.Clone(m[d]), nil }

func (m labelMap) Set(d digest.Digest, l map[string]string) error {
	m[d] = maps.Clone(l)
	return nil
}

func (m labelMap) Update(d digest.Digest, l map[string]string) (map[string]string, error) {
	if m[d] == nil {
		m[d] = map[string]string{}
	}
	for k, v := range l {
		if v == "" {
			delete(m[d], k)
		} else {
			m[d][k] = v
		}
	}
	return maps.Clone(m[d]), nil
}
