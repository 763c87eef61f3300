package reuse

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	ctd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/skillbuild/skillbuild/config"
	"github.com/skillbuild/skillbuild/labels"
	"github.com/skillbuild/skillbuild/lock"
	"github.com/skillbuild/skillbuild/scan"
	"github.com/skillbuild/skillbuild/spec"
	"github.com/skillbuild/skillbuild/store"
)

// Image is a skill image found unchanged.
type Image struct {
	// Name is the image's name in containerd; Tag its short form.
	Name string `json:"image_name"`
	Tag  string `json:"image_tag"`
	// Digest is the image manifest's digest.
	Digest digest.Digest `json:"digest"`
	// Lock is the recorded lock (names, versions and, when the whole lock
	// fitted in its label, hashes).
	Lock lock.Lock `json:"lock"`
	// Verdict is the database's verdict on Lock now (zero with NoScan).
	Verdict scan.Verdict `json:"verdict"`
}

// Opt configures Find.
type Opt func(*options) error

type options struct {
	layering    spec.Layering
	openDB      func() (*scan.DB, error)
	snapshotter string
	now         func() time.Time
}

// WithLayering sets the layering the build would use (default: zero).
func WithLayering(l spec.Layering) Opt {
	return func(o *options) error {
		if l.MaxLayers < 0 {
			return fmt.Errorf("max layers %d: %w", l.MaxLayers, errdefs.ErrInvalidArgument)
		}
		o.layering = l
		return nil
	}
}

// WithDB sets how to get the vulnerability database the recorded lock is
// checked against. Required unless the skill's policy disables the scan.
func WithDB(open func() (*scan.DB, error)) Opt {
	return func(o *options) error {
		if open == nil {
			return fmt.Errorf("nil database opener: %w", errdefs.ErrInvalidArgument)
		}
		o.openDB = open
		return nil
	}
}

// WithSnapshotter sets the snapshotter the image must be unpacked for
// (default overlayfs).
func WithSnapshotter(name string) Opt {
	return func(o *options) error {
		if name == "" {
			return fmt.Errorf("snapshotter is empty: %w", errdefs.ErrInvalidArgument)
		}
		o.snapshotter = name
		return nil
	}
}

// Find returns the image tagged for s when it can stand for a new build of
// s: it carries the same spec digest, its recorded base digest is the base
// reference's digest in the store now, it is unpacked, and its recorded
// lock passes the database under s.Policy with the verdict recorded in the
// image. With no such image, Find returns a nil image and why (for logs).
// A lock the database now refuses is a *scan.VulnerableError, whatever
// image exists: the image is not an answer.
func Find(ctx context.Context, c *ctd.Client, s config.Skill, opts ...Opt) (img *Image, why string, err error) {
	o := options{snapshotter: "overlayfs", now: time.Now}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, "", err
		}
	}
	if !s.Policy.NoScan && o.openDB == nil {
		return nil, "", fmt.Errorf("reuse.Find with the scan on needs WithDB: %w", errdefs.ErrInvalidArgument)
	}
	name, err := store.ImageName(s.Tag())
	if err != nil {
		return nil, "", err
	}
	want, err := spec.Digest(s, o.layering)
	if err != nil {
		return nil, "spec: " + err.Error(), nil
	}
	is := c.ImageService()
	rec, err := is.Get(ctx, name)
	if errdefs.IsNotFound(err) {
		return nil, "no image " + name, nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("look up %s: %w", name, err)
	}
	if got := rec.Labels[labels.SpecDigest]; got != want.String() {
		return nil, "spec changed", nil
	}
	if why, err := sameBase(ctx, is, s.Base, rec.Labels[labels.BaseDigest]); why != "" || err != nil {
		return nil, why, err
	}
	if ok, err := ctd.NewImage(c, rec).IsUnpacked(ctx, o.snapshotter); err != nil || !ok {
		return nil, "image not unpacked", nil
	}
	cfg, err := imageConfig(ctx, c, rec)
	if err != nil {
		return nil, "image config: " + err.Error(), nil
	}
	locked, why := recordedLock(cfg.Config.Labels, rec.Labels)
	if locked == nil {
		return nil, why, nil
	}
	img = &Image{Name: name, Tag: store.Familiar(name), Digest: rec.Target.Digest, Lock: locked}
	recorded := cfg.Config.Labels[scan.LabelScan]
	if s.Policy.NoScan {
		if recorded != "disabled" {
			return nil, "scan was on when the image was built", nil
		}
		img.Verdict = scan.Verdict{Skipped: true, Safe: true}
		return img, "", nil
	}
	if recorded == "disabled" {
		return nil, "image was built with the scan off", nil
	}
	db, err := o.openDB()
	if err != nil {
		return nil, "", err
	}
	v, err := scan.Check(db, scan.Packages(locked), s.Policy, o.now())
	img.Verdict = v
	if err != nil {
		return img, "", err
	}
	now := scan.Labels(v)
	for _, k := range []string{scan.LabelScan, scan.LabelScanAllowed} {
		if now[k] != cfg.Config.Labels[k] {
			return nil, "verdict changed (" + k + ")", nil
		}
	}
	return img, "", nil
}

// sameBase reports why not when the base reference no longer names the
// base the image was built on.
func sameBase(ctx context.Context, is images.Store, base, recorded string) (string, error) {
	baseName, err := store.ImageName(base)
	if err != nil {
		return "", err
	}
	b, err := is.Get(ctx, baseName)
	if errdefs.IsNotFound(err) {
		return "base " + base + " not in the store", nil
	}
	if err != nil {
		return "", fmt.Errorf("look up base %s: %w", base, err)
	}
	if b.Target.Digest.String() != recorded {
		return "base " + base + " changed", nil
	}
	return "", nil
}

func imageConfig(ctx context.Context, c *ctd.Client, rec images.Image) (ocispec.Image, error) {
	var cfg ocispec.Image
	desc, err := images.Config(ctx, c.ContentStore(), rec.Target, platforms.Default())
	if err != nil {
		return cfg, err
	}
	b, err := content(ctx, c, desc)
	if err != nil {
		return cfg, err
	}
	return cfg, json.Unmarshal(b, &cfg)
}

func content(ctx context.Context, c *ctd.Client, desc ocispec.Descriptor) ([]byte, error) {
	ra, err := c.ContentStore().ReaderAt(ctx, desc)
	if err != nil {
		return nil, err
	}
	defer ra.Close()
	b := make([]byte, ra.Size())
	if _, err := ra.ReadAt(b, 0); err != nil {
		return nil, err
	}
	if desc.Digest.Algorithm().FromBytes(b) != desc.Digest {
		return nil, fmt.Errorf("content %s does not match its digest: %w", desc.Digest, errdefs.ErrDataLoss)
	}
	return b, nil
}

// recordedLock is the lock from the image config's label, checked against
// the record's lock digest (whole lock) or package count (pins only).
func recordedLock(cfgLabels, recLabels map[string]string) (lock.Lock, string) {
	text := cfgLabels[labels.Lock]
	if text == "" && recLabels[labels.Packages] == "0" {
		return lock.Lock{}, ""
	}
	if text == "" {
		return nil, "lock too long for its label"
	}
	l, err := lock.ParseText(text)
	if err != nil {
		return nil, "recorded lock: " + err.Error()
	}
	if recLabels[labels.Packages] != strconv.Itoa(len(l)) {
		return nil, "recorded lock does not match the package count"
	}
	whole := true
	for _, d := range l {
		whole = whole && d.SHA256 != ""
	}
	if whole && l.Digest().String() != recLabels[labels.LockDigest] {
		return nil, "recorded lock does not match its digest"
	}
	return l, ""
}
