package build

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
	bkclient "github.com/moby/buildkit/client"
	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// SkillImage is one tagged skill image in containerd, described from its
// image record (labels written by Build when it tagged the image).
type SkillImage struct {
	ID       string        `json:"id"`
	Version  string        `json:"version"`
	Tag      string        `json:"tag"`  // short form, e.g. atom-skill:weather-v3
	Name     string        `json:"name"` // containerd name, fully qualified
	Digest   digest.Digest `json:"digest"`
	Packages int           `json:"packages"`
	// LockDigest identifies the hash-pinned package set.
	LockDigest string `json:"lock_digest,omitempty"`
	// Size is the content size of the manifest, config and layers.
	Size int64 `json:"size"`
	// Unpacked is the disk usage of the image's snapshots, measured only
	// with WithUnpackedSize (zero otherwise, or when not unpacked).
	Unpacked int64     `json:"unpacked_size,omitempty"`
	Created  time.Time `json:"created"`
	Updated  time.Time `json:"updated"`
}

// skillImage describes a containerd image record if it is a skill image:
// it carries the skill id label and is not a build's staging name.
func skillImage(img images.Image) (SkillImage, bool) {
	id := img.Labels[LabelSkillID]
	if id == "" || strings.HasPrefix(img.Name, stagingPrefix) {
		return SkillImage{}, false
	}
	n, _ := strconv.Atoi(img.Labels[LabelPackages])
	return SkillImage{
		ID:         id,
		Version:    img.Labels[LabelSkillVersion],
		Tag:        Familiar(img.Name),
		Name:       img.Name,
		Digest:     img.Target.Digest,
		Packages:   n,
		LockDigest: img.Labels[LabelLockDigest],
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

// StoreUsage is what containerd holds in the namespace: content blobs and
// snapshots (of the snapshotter skillbuild uses).
type StoreUsage struct {
	Blobs         int   `json:"blobs"`
	ContentBytes  int64 `json:"content_bytes"`
	Snapshots     int   `json:"snapshots"`
	SnapshotBytes int64 `json:"snapshot_bytes"`
}

// Sub is u minus v, field by field.
func (u StoreUsage) Sub(v StoreUsage) StoreUsage {
	return StoreUsage{
		Blobs:         u.Blobs - v.Blobs,
		ContentBytes:  u.ContentBytes - v.ContentBytes,
		Snapshots:     u.Snapshots - v.Snapshots,
		SnapshotBytes: u.SnapshotBytes - v.SnapshotBytes,
	}
}

// Usage measures the content store and the snapshotter of the client's
// namespace.
func Usage(ctx context.Context, c *ctd.Client, snapshotter string) (StoreUsage, error) {
	var u StoreUsage
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

// PruneReport says what Prune removed and freed.
type PruneReport struct {
	// CacheRecords and CacheBytes are the BuildKit cache records removed,
	// as BuildKit reported them.
	CacheRecords int   `json:"cache_records"`
	CacheBytes   int64 `json:"cache_bytes"`
	// Staging are leftover staging images of interrupted builds, removed.
	Staging []string `json:"staging_images"`
	// KeptImages are the images in the namespace that are not skill
	// images (base images): Prune never removes them.
	KeptImages []string   `json:"kept_images"`
	Before     StoreUsage `json:"before"`
	After      StoreUsage `json:"after"`
	// Freed is Before minus After: what containerd no longer holds.
	Freed StoreUsage `json:"freed"`
}

type pruneOptions struct {
	all  bool
	keep int64
}

// PruneOpt configures Prune.
type PruneOpt func(*pruneOptions) error

// WithPruneAll removes every BuildKit cache record, including those whose
// layers an image still uses and BuildKit's internal ones (the next build
// runs every step again). Images, base images included, are never removed.
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
// interrupted builds, BuildKit cache records whose layers no image uses
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
	c := e.ctd
	rep := &PruneReport{Staging: []string{}, KeptImages: []string{}}
	var err error
	if rep.Before, err = Usage(ctx, c, e.opts.snapshotter); err != nil {
		return nil, err
	}

	recs, err := c.ImageService().List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	for _, rec := range recs {
		switch {
		case strings.HasPrefix(rec.Name, stagingPrefix):
			if err := c.ImageService().Delete(ctx, rec.Name); err != nil && !errdefs.IsNotFound(err) {
				return nil, fmt.Errorf("remove staging image %s: %w", rec.Name, err)
			}
			rep.Staging = append(rep.Staging, rec.Name)
		case rec.Labels[LabelSkillID] == "":
			rep.KeptImages = append(rep.KeptImages, rec.Name)
		}
	}

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
	err = e.client.Prune(ctx, ch, popts...)
	close(ch)
	<-done
	if err != nil {
		return nil, fmt.Errorf("prune build cache: %w", err)
	}

	if err := collectGarbage(ctx, c); err != nil {
		return nil, err
	}
	if rep.After, err = Usage(ctx, c, e.opts.snapshotter); err != nil {
		return nil, err
	}
	rep.Freed = rep.Before.Sub(rep.After)
	return rep, nil
}

// collectGarbage runs containerd's garbage collector and waits for it: a
// lease deleted with SynchronousDelete triggers a collection.
func collectGarbage(ctx context.Context, c *ctd.Client) error {
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

// FormatSize renders a byte count for people, in binary units with one
// decimal below 10 ("0 B", "512 B", "1.5 KiB", "12 MiB", "3.2 GiB").
func FormatSize(n int64) string {
	if n < 0 {
		return "-" + FormatSize(-n)
	}
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v := float64(n)
	i := -1
	// Divide until the value shows below 1024 once rounded ("1.0 MiB",
	// never "1024 KiB").
	for (v >= unit-0.5 || i < 0) && i < 4 {
		v /= unit
		i++
	}
	suffix := []string{"KiB", "MiB", "GiB", "TiB", "PiB"}[i]
	if v < 10 {
		return fmt.Sprintf("%.1f %s", v, suffix)
	}
	return fmt.Sprintf("%.0f %s", v, suffix)
}
