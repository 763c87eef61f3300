package registry

import (
	"bytes"
	"context"
	"fmt"
	"io"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// maxDocument bounds a document read from a registry without storing it
// (manifests, configs, statements; never layers).
const maxDocument = 16 << 20

// Open resolves ref and returns its descriptor and a read-only view of the
// registry's blobs for reading documents (manifests, configs,
// attestations) without storing anything.
func (c *Client) Open(ctx context.Context, ref string) (ocispec.Descriptor, content.Provider, error) {
	named, err := ParseRef(ref)
	if err != nil {
		return ocispec.Descriptor{}, nil, err
	}
	host := reference.Domain(named)
	op := "inspect " + named.String()
	res := c.resolver()
	name, desc, err := res.Resolve(ctx, named.String())
	if err != nil {
		return ocispec.Descriptor{}, nil, c.classify(op, host, err)
	}
	f, err := res.Fetcher(ctx, name)
	if err != nil {
		return ocispec.Descriptor{}, nil, c.classify(op, host, err)
	}
	return desc, &remoteProvider{f: f, classify: func(err error) error { return c.classify(op, host, err) }}, nil
}

// remoteProvider reads a registry's documents into memory.
type remoteProvider struct {
	f        remotes.Fetcher
	classify func(error) error
}

func (p *remoteProvider) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	if desc.Size > maxDocument {
		return nil, fmt.Errorf("%s: %d bytes is too large to read as a document: %w", desc.Digest, desc.Size, errdefs.ErrInvalidArgument)
	}
	rc, err := p.f.Fetch(ctx, desc)
	if err != nil {
		return nil, p.classify(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxDocument+1))
	if err != nil {
		return nil, p.classify(err)
	}
	if int64(len(b)) != desc.Size || desc.Digest.Validate() != nil || desc.Digest.Algorithm().FromBytes(b) != desc.Digest {
		return nil, fmt.Errorf("%s from the registry does not match its digest: %w", desc.Digest, errdefs.ErrDataLoss)
	}
	return bytesReaderAt{bytes.NewReader(b)}, nil
}

type bytesReaderAt struct{ *bytes.Reader }

func (b bytesReaderAt) Close() error { return nil }
