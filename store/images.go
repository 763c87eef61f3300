package store

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	ctd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/skillbuild/skillbuild/labels"
)

// SkillImage is one tagged skill image in containerd, described from its
// image record (labels written by Build when it tagged the image). Its
// document is skill/api's SkillImage.
type SkillImage struct {
	ID       string
	Version  string
	Tag      string // short form, e.g. atom-skill:weather-v3
	Name     string // containerd name, fully qualified
	Digest   digest.Digest
	Packages int
	// LockDigest identifies the hash-pinned package set.
	LockDigest string
	// Size is the content size of the manifest, config and layers.
	Size int64
	// Unpacked is the disk usage of the image's snapshots, measured only
	// with WithUnpackedSize (zero otherwise, or when not unpacked).
	Unpacked int64
	Created  time.Time
	Updated  time.Time
}

// skillImage describes a containerd image record if it is a skill image:
// it carries the skill id label and is not a build's staging name.
func skillImage(img images.Image) (SkillImage, bool) {
	id := img.Labels[labels.SkillID]
	if id == "" || strings.HasPrefix(img.Name, StagingPrefix) {
		return SkillImage{}, false
	}
	n, _ := strconv.Atoi(img.Labels[labels.Packages])
	return SkillImage{
		ID:         id,
		Version:    img.Labels[labels.SkillVersion],
		Tag:        Familiar(img.Name),
		Name:       img.Name,
		Digest:     img.Target.Digest,
		Packages:   n,
		LockDigest: img.Labels[labels.LockDigest],
		Created:    img.CreatedAt,
		Updated:    img.UpdatedAt,
	}, true
}

// lessVersion orders dotted numeric versions numerically ("2" < "10"),
// falling back to string order for anything else.
func lessVersion(a, b string) bool {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) && i < len(bs); i++ {
		x, errx := strconv.Atoi(as[i])
		y, erry := strconv.Atoi(bs[i])
		if errx != nil || erry != nil {
			if as[i] != bs[i] {
				return as[i] < bs[i]
			}
			continue
		}
		if x != y {
			return x < y
		}
	}
	return len(as) < len(bs)
}

func sortImages(imgs []SkillImage) {
	sort.Slice(imgs, func(i, j int) bool {
		a, b := imgs[i], imgs[j]
		if a.ID != b.ID {
			return a.ID < b.ID
		}
		if a.Version != b.Version {
			return lessVersion(a.Version, b.Version)
		}
		return a.Name < b.Name
	})
}

type listOptions struct {
	snapshotter string // measure unpacked size with this snapshotter
	id, version string
}

// ListOpt configures ListImages and RemoveImages.
type ListOpt func(*listOptions) error

// WithUnpackedSize measures each image's snapshots in the snapshotter
// (a walk of their directories: slower on large images).
func WithUnpackedSize(snapshotter string) ListOpt {
	return func(o *listOptions) error {
		if snapshotter == "" {
			return fmt.Errorf("snapshotter is empty: %w", errdefs.ErrInvalidArgument)
		}
		o.snapshotter = snapshotter
		return nil
	}
}

// WithSkill restricts the images to one skill id and, if version is not
// empty, to that version.
func WithSkill(id, version string) ListOpt {
	return func(o *listOptions) error {
		if id == "" {
			return fmt.Errorf("skill id is empty: %w", errdefs.ErrInvalidArgument)
		}
		o.id, o.version = id, version
		return nil
	}
}

func (o listOptions) match(s SkillImage) bool {
	return (o.id == "" || s.ID == o.id) && (o.version == "" || s.Version == o.version)
}

// ListImages returns the skill images in the client's namespace, ordered by
// id and version. Base images and staging names of builds are not skill
// images and never appear.
func ListImages(ctx context.Context, c *ctd.Client, opts ...ListOpt) ([]SkillImage, error) {
	var o listOptions
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	recs, err := c.ImageService().List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	out := []SkillImage{}
	for _, rec := range recs {
		s, ok := skillImage(rec)
		if !ok || !o.match(s) {
			continue
		}
		img := ctd.NewImageWithPlatform(c, rec, platforms.Default())
		if s.Size, err = img.Size(ctx); err != nil {
			return nil, fmt.Errorf("size of %s: %w", s.Tag, err)
		}
		if o.snapshotter != "" {
			if s.Unpacked, err = unpackedSize(ctx, c, img, o.snapshotter); err != nil {
				return nil, fmt.Errorf("unpacked size of %s: %w", s.Tag, err)
			}
		}
		out = append(out, s)
	}
	sortImages(out)
	return out, nil
}

// unpackedSize adds up the snapshots of the image's layer chain. A layer
// that is not unpacked counts zero.
func unpackedSize(ctx context.Context, c *ctd.Client, img ctd.Image, snapshotter string) (int64, error) {
	diffIDs, err := img.RootFS(ctx)
	if err != nil {
		return 0, err
	}
	sn := c.SnapshotService(snapshotter)
	var total int64
	for i := range diffIDs {
		u, err := sn.Usage(ctx, identity.ChainID(diffIDs[:i+1]).String())
		if errdefs.IsNotFound(err) {
			continue
		}
		if err != nil {
			return 0, err
		}
		total += u.Size
	}
	return total, nil
}

// RemoveImages deletes the tags of a skill (WithSkill is required): one
// version, or every version of the id when the version is empty. It
// returns what it removed, or an errdefs.ErrNotFound error when there was
// nothing to remove. Content and snapshots are released to containerd's
// garbage collector (run before RemoveImages returns) unless the build
// cache still holds them: Prune frees those. containerd lets an image be
// deleted while a container created from it runs; that container keeps
// its own snapshot.
func RemoveImages(ctx context.Context, c *ctd.Client, opts ...ListOpt) ([]SkillImage, error) {
	var o listOptions
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if o.id == "" {
		return nil, fmt.Errorf("remove: no skill id given: %w", errdefs.ErrInvalidArgument)
	}
	found, err := ListImages(ctx, c, WithSkill(o.id, o.version))
	if err != nil {
		return nil, err
	}
	if len(found) == 0 {
		what := "skill " + o.id
		if o.version != "" {
			what += " version " + o.version
		}
		return nil, fmt.Errorf("no image of %s (see `skillbuild ls`): %w", what, errdefs.ErrNotFound)
	}
	is := c.ImageService()
	removed := []SkillImage{}
	for i, s := range found {
		var dopts []images.DeleteOpt
		if i == len(found)-1 {
			dopts = append(dopts, images.SynchronousDelete())
		}
		// Delete only what was listed: a tag moved meanwhile is left alone.
		target := ocispec.Descriptor{Digest: s.Digest}
		dopts = append(dopts, images.DeleteTarget(&target))
		if err := is.Delete(ctx, s.Name, dopts...); err != nil {
			if errdefs.IsNotFound(err) {
				continue
			}
			return removed, fmt.Errorf("remove %s: %w", s.Tag, err)
		}
		removed = append(removed, s)
	}
	if len(removed) == 0 {
		return nil, fmt.Errorf("no image of skill %s left to remove: %w", o.id, errdefs.ErrNotFound)
	}
	return removed, nil
}

// Usage is what containerd holds in the namespace: content blobs and
// snapshots (of the snapshotter skillbuild uses).
type Usage struct {
	Blobs         int   `json:"blobs"`
	ContentBytes  int64 `json:"content_bytes"`
	Snapshots     int   `json:"snapshots"`
	SnapshotBytes int64 `json:"snapshot_bytes"`
}

// Sub is u minus v, field by field.
func (u Usage) Sub(v Usage) Usage {
	return Usage{
		Blobs:         u.Blobs - v.Blobs,
		ContentBytes:  u.ContentBytes - v.ContentBytes,
		Snapshots:     u.Snapshots - v.Snapshots,
		SnapshotBytes: u.SnapshotBytes - v.SnapshotBytes,
	}
}

// DiskUsage measures the content store and the snapshotter of the client's
// namespace.
func DiskUsage(ctx context.Context, c *ctd.Client, snapshotter string) (Usage, error) {
	var u Usage
	err := c.ContentStore().Walk(ctx, func(info content.Info) error {
		u.Blobs++
		u.ContentBytes += info.Size
		return nil
	})
	if err != nil {
		return u, fmt.Errorf("walk content store: %w", err)
	}
	sn := c.SnapshotService(snapshotter)
	var keys []string
	if err := sn.Walk(ctx, func(_ context.Context, info snapshots.Info) error {
		keys = append(keys, info.Name)
		return nil
	}); err != nil {
		return u, fmt.Errorf("walk snapshots: %w", err)
	}
	for _, k := range keys {
		su, err := sn.Usage(ctx, k)
		if errdefs.IsNotFound(err) {
			continue // removed meanwhile
		}
		if err != nil {
			return u, fmt.Errorf("snapshot usage: %w", err)
		}
		u.Snapshots++
		u.SnapshotBytes += su.Size
	}
	return u, nil
}

// CollectGarbage runs containerd's garbage collector and waits for it: a
// lease deleted with SynchronousDelete triggers a collection.
func CollectGarbage(ctx context.Context, c *ctd.Client) error {
	ls := c.LeasesService()
	l, err := ls.Create(ctx, leases.WithRandomID(), leases.WithExpiration(time.Minute))
	if err != nil {
		return fmt.Errorf("garbage collection: %w", err)
	}
	if err := ls.Delete(ctx, l, leases.SynchronousDelete); err != nil {
		return fmt.Errorf("garbage collection: %w", err)
	}
	return nil
}
