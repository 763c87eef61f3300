package store

import (
	"context"
	"errors"
	"fmt"

	ctd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
)

type tagOptions struct {
	keep bool
}

// TagOpt configures SetTags.
type TagOpt func(*tagOptions) error

// WithoutMoving makes SetTags refuse (errdefs.ErrAlreadyExists) to move a
// name that points at another target; a name already at the same target
// is left as it is.
func WithoutMoving() TagOpt {
	return func(o *tagOptions) error { o.keep = true; return nil }
}

// Tags are the names one SetTags set, with what each was before, so that
// they can all be put back.
type Tags struct {
	c     *ctd.Client
	prior []priorName
}

type priorName struct {
	name string
	old  *images.Image // nil: the name did not exist
}

// SetTags creates or moves the image records imgs, in order, all or none:
// when one fails, the names set before it are put back as they were and
// its error is returned. Set names only once everything they point at is
// in the store (an import's Archive, an unpacked build). Rollback undoes
// the whole set later, e.g. when a step after the naming fails.
func SetTags(ctx context.Context, c *ctd.Client, imgs []images.Image, opts ...TagOpt) (_ *Tags, err error) {
	var o tagOptions
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	t := &Tags{c: c}
	defer func() {
		if err != nil {
			if rerr := t.Rollback(ctx); rerr != nil {
				err = errors.Join(err, rerr)
			}
		}
	}()
	is := c.ImageService()
	for _, img := range imgs {
		if img.Labels == nil {
			img.Labels = map[string]string{}
		}
		old, err := is.Get(ctx, img.Name)
		switch {
		case errdefs.IsNotFound(err):
			if _, err := is.Create(ctx, img); err != nil {
				return nil, fmt.Errorf("tag %s: %w", Familiar(img.Name), err)
			}
			t.prior = append(t.prior, priorName{name: img.Name})
			continue
		case err != nil:
			return nil, fmt.Errorf("tag %s: %w", Familiar(img.Name), err)
		}
		if o.keep && old.Target.Digest != img.Target.Digest {
			return nil, fmt.Errorf("%s already names %s, not %s: %w", Familiar(img.Name), old.Target.Digest, img.Target.Digest, errdefs.ErrAlreadyExists)
		}
		if o.keep {
			continue
		}
		if _, err := is.Update(ctx, img); err != nil {
			return nil, fmt.Errorf("tag %s: %w", Familiar(img.Name), err)
		}
		t.prior = append(t.prior, priorName{name: img.Name, old: &old})
	}
	return t, nil
}

// Rollback puts every name of the set back as it was before SetTags (gone
// if it did not exist), last first.
func (t *Tags) Rollback(ctx context.Context) error {
	if t == nil {
		return nil
	}
	ctx = context.WithoutCancel(ctx)
	is := t.c.ImageService()
	var errs []error
	for i := len(t.prior) - 1; i >= 0; i-- {
		p := t.prior[i]
		var err error
		if p.old != nil {
			_, err = is.Update(ctx, *p.old)
		} else {
			err = is.Delete(ctx, p.name)
		}
		if err != nil && !errdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("put back %s: %w", Familiar(p.name), err))
		}
	}
	t.prior = nil
	return errors.Join(errs...)
}
