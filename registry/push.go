package registry

import (
	"context"
	"fmt"
	"sync"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	"github.com/distribution/reference"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// PushResult says what a push did.
type PushResult struct {
	// Ref is the reference pushed to (normalized).
	Ref string `json:"ref"`
	// Digest is the manifest (or index) digest the tag now points at.
	Digest digest.Digest `json:"digest"`
	// MediaType is the media type of Digest's document.
	MediaType string `json:"media_type"`
	// BytesPushed counts the bytes uploaded: blobs and manifests the
	// registry did not have.
	BytesPushed int64 `json:"bytes_pushed"`
	// Uploaded and Skipped count the blobs and manifests uploaded and
	// those the registry already had.
	Uploaded int `json:"uploaded"`
	Skipped  int `json:"skipped"`
}

// Push uploads the image desc (a manifest or an index and everything it
// references, attestation manifests included) from store to ref. Blobs
// the registry already has are not uploaded again. Children go before
// their parents and the tagged manifest or index goes last, so a push
// that fails or is interrupted leaves the tag where it was.
//
// After a push each blob is labelled with the repository it is now in, so
// that a later push of another image sharing it to another repository of
// the same registry mounts it there instead of uploading it again.
func (c *Client) Push(ctx context.Context, store content.Store, desc ocispec.Descriptor, ref string) (PushResult, error) {
	named, err := ParseRef(ref)
	if err != nil {
		return PushResult{}, err
	}
	if d, ok := named.(reference.Digested); ok && d.Digest() != desc.Digest {
		return PushResult{}, fmt.Errorf("push to %s: the reference pins %s but the image is %s: %w", ref, d.Digest(), desc.Digest, errdefs.ErrInvalidArgument)
	}
	host := reference.Domain(named)
	// name:tag@digest: only the image's own manifest gets the tag; the
	// children are put by digest.
	target := named.String()
	if _, ok := named.(reference.Digested); !ok {
		target += "@" + desc.Digest.String()
	}
	p, err := c.resolver().Pusher(ctx, target)
	if err != nil {
		return PushResult{}, c.classify("push "+named.String(), host, err)
	}
	cp := &countingPusher{Pusher: p}
	if err := remotes.PushContent(ctx, cp, desc, store, nil, platforms.All, nil); err != nil {
		return PushResult{}, c.classify("push "+named.String(), host, err)
	}
	res := PushResult{Ref: named.String(), Digest: desc.Digest, MediaType: desc.MediaType}
	res.BytesPushed, res.Uploaded, res.Skipped = cp.totals()
	if err := recordSource(ctx, store, desc, named.String()); err != nil {
		return res, fmt.Errorf("push %s: pushed, but recording the blobs' repository: %w", named, err)
	}
	return res, nil
}

// recordSource labels every blob of the image desc with ref's repository
// (containerd's distribution source label, which its pusher reads to
// mount blobs across repositories and its puller writes).
func recordSource(ctx context.Context, store content.Store, desc ocispec.Descriptor, ref string) error {
	appendSource, err := docker.AppendDistributionSourceLabel(store, ref)
	if err != nil {
		return err
	}
	return images.Walk(ctx, images.HandlerFunc(func(ctx context.Context, d ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		if _, err := appendSource(ctx, d); err != nil {
			return nil, err
		}
		return images.Children(ctx, store, d)
	}), desc)
}

// countingPusher counts what a push uploads and what it skips because the
// registry already had it.
type countingPusher struct {
	remotes.Pusher
	mu       sync.Mutex
	bytes    int64
	uploaded int
	skipped  int
}

func (p *countingPusher) Push(ctx context.Context, desc ocispec.Descriptor) (content.Writer, error) {
	w, err := p.Pusher.Push(ctx, desc)
	if errdefs.IsAlreadyExists(err) {
		p.mu.Lock()
		p.skipped++
		p.mu.Unlock()
	}
	if err != nil {
		return nil, err
	}
	return &countingWriter{Writer: w, p: p, size: desc.Size}, nil
}

func (p *countingPusher) totals() (int64, int, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.bytes, p.uploaded, p.skipped
}

// countingWriter adds its blob to the totals once the registry committed it.
type countingWriter struct {
	content.Writer
	p    *countingPusher
	size int64
}

func (w *countingWriter) Commit(ctx context.Context, size int64, expected digest.Digest, opts ...content.Opt) error {
	err := w.Writer.Commit(ctx, size, expected, opts...)
	if err == nil || errdefs.IsAlreadyExists(err) {
		w.p.mu.Lock()
		if err == nil {
			w.p.bytes += w.size
			w.p.uploaded++
		} else {
			w.p.skipped++
		}
		w.p.mu.Unlock()
	}
	return err
}
