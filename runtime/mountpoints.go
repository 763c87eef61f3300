package runtime

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// LabelMountpoints marks the layer that holds the mountpoints of InDir
// and OutDir on top of an image's root filesystem (its value is "1").
const LabelMountpoints = "org.skillbuild.run.mountpoints"

// mountpointsPrefix starts the name of every mountpoints layer.
const mountpointsPrefix = "sbmounts-"

// A run's root filesystem is a read-only view of the image (see
// sharedView), where runc cannot create the mountpoints of InDir and
// OutDir when the image lacks them. So the root of every run is one layer
// above the image's: a committed snapshot, made like an image layer (a
// tar of the empty directories applied by containerd's diff service),
// whose parent is the image's root filesystem. Being a snapshot of the
// same snapshotter keeps every layer of the root in the snapshotter's
// directory, where containerd's overlay mount can shorten the options of
// an image of many layers (an overlay's options fit in a page).
//
// The layer carries no gc.root label: the snapshots on top of it (the
// shared views, which have one, and the root filesystems of gVisor runs,
// under a lease) keep it, and so does a lease that expires mountpointsKeep
// after its creation; containerd's garbage collector takes it after the
// last of them (and with it the image's layers, when the image is gone).
// A snapshot is made on it by name, in one step the collector cannot come
// between; only when that step finds it missing is it made (onRootParent).

// mountpointsKeep is how long a mountpoints layer is kept after its
// creation when no run's root is on it.
const mountpointsKeep = 10 * time.Minute

// mountpointsName is the name of the mountpoints layer on chainID. It
// depends on nothing else: every state directory of a namespace shares it.
func mountpointsName(chainID digest.Digest) string {
	h := sha256.Sum256([]byte(chainID.String()))
	return mountpointsPrefix + hex.EncodeToString(h[:16])
}

// mountpointsTar is the layer's content: InDir and OutDir, mode 0755
// with /data, except OutDir, 1777 (runc gives a tmpfs the mode of its
// mountpoint, and OutDir is the code's, whoever it runs as).
var mountpointsTar = func() []byte {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, d := range []struct {
		name string
		mode int64
	}{{"data/", 0o755}, {"data/in/", 0o755}, {"data/out/", 0o1777}} {
		// The content is fixed: a failure here is a bug of this file.
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d.name, Mode: d.mode, ModTime: time.Unix(0, 0), Format: tar.FormatPAX}); err != nil {
			panic(err)
		}
	}
	if err := tw.Close(); err != nil {
		panic(err)
	}
	return b.Bytes()
}()

// onRootParent makes a run's root filesystem with mk on the mountpoints
// layer of p's image, making the layer first (and unpacking the image
// when its layers are not there) when mk finds it missing. A layer that
// exists costs nothing more than mk: the snapshot made on it holds it from
// then on. Its making needs a lease: ctx's, or one of its own for the
// time it takes.
func (r *Runner) onRootParent(ctx context.Context, p *Prepared, mk func(ctx context.Context, parent string) ([]mount.Mount, error)) (_ []mount.Mount, err error) {
	parent := mountpointsName(p.chainID)
	mounts, err := mk(ctx, parent)
	if !errdefs.IsNotFound(err) {
		return mounts, err
	}
	if _, ok := leases.FromContext(ctx); !ok {
		ls := r.client.LeasesService()
		l, err := ls.Create(ctx, leases.WithRandomID(), leases.WithExpiration(ownRootLease))
		if err != nil {
			return nil, fmt.Errorf("lease for the mountpoints layer of image %s: %w", p.req.Image, err)
		}
		defer func() {
			if derr := ls.Delete(context.WithoutCancel(ctx), l); derr != nil && !errdefs.IsNotFound(derr) {
				err = errors.Join(err, fmt.Errorf("delete the lease of the mountpoints layer of image %s: %w", p.req.Image, derr))
			}
		}()
		ctx = leases.WithLease(ctx, l.ID)
	}
	// Made by another run meanwhile (AlreadyExists), its keeping lease
	// holds it.
	if err := r.makeMountpoints(ctx, p, parent); err != nil && !errdefs.IsAlreadyExists(err) {
		return nil, fmt.Errorf("mountpoints layer of image %s: %w", p.req.Image, err)
	}
	return mk(ctx, parent)
}

// makeMountpoints makes the mountpoints layer name on p's image; an
// AlreadyExists error says another run made it first.
func (r *Runner) makeMountpoints(ctx context.Context, p *Prepared, name string) (err error) {
	sn := r.client.SnapshotService(r.opts.snapshotter)
	key := name + "-prepare-" + newID()
	mounts, err := sn.Prepare(ctx, key, p.chainID.String())
	if errdefs.IsNotFound(err) {
		if err := p.image.Unpack(ctx, r.opts.snapshotter); err != nil {
			return fmt.Errorf("unpack image %s: %w", p.req.Image, err)
		}
		mounts, err = sn.Prepare(ctx, key, p.chainID.String())
	}
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			if rerr := sn.Remove(context.WithoutCancel(ctx), key); rerr != nil && !errdefs.IsNotFound(rerr) {
				err = errors.Join(err, rerr)
			}
		}
	}()
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromBytes(mountpointsTar), Size: int64(len(mountpointsTar))}
	if err := content.WriteBlob(ctx, r.client.ContentStore(), "skillbuild-"+key, bytes.NewReader(mountpointsTar), desc); err != nil {
		return fmt.Errorf("write its content: %w", err)
	}
	if _, err := r.client.DiffService().Apply(ctx, desc, mounts); err != nil {
		return fmt.Errorf("apply its content: %w", err)
	}
	if err := sn.Commit(ctx, name, key, snapshots.WithLabels(map[string]string{LabelMountpoints: "1"})); err != nil {
		return err
	}
	return r.keepMountpoints(ctx, name)
}

// keepMountpoints holds the layer name for mountpointsKeep after its
// creation with a lease of its own, which containerd's garbage collector
// deletes once expired: runs that follow one another without overlapping
// (each removes its shared view at its end) do not make it again each.
func (r *Runner) keepMountpoints(ctx context.Context, name string) error {
	ls := r.client.LeasesService()
	l, err := ls.Create(context.WithoutCancel(ctx), leases.WithRandomID(), leases.WithExpiration(mountpointsKeep), leases.WithLabels(map[string]string{LabelMountpoints: name}))
	if err != nil {
		return fmt.Errorf("lease to keep it: %w", err)
	}
	if err := ls.AddResource(ctx, l, leases.Resource{ID: name, Type: "snapshots/" + r.opts.snapshotter}); err != nil {
		return errors.Join(fmt.Errorf("lease to keep it: %w", err), ls.Delete(context.WithoutCancel(ctx), l))
	}
	return nil
}
