package skill

import (
	"context"
	"fmt"

	ctd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	"github.com/skillbuild/skillbuild/store"
)

// Where an image came from, as its record's LabelOrigin says. An image
// built here carries none (its record has the build's labels instead).
const (
	// OriginBase: imported (base import) or pulled (pull --base) to build
	// on; install builds only on such an image.
	OriginBase = "base"
	// OriginRegistry: pulled.
	OriginRegistry = "registry"
	// OriginArchive starts the origin of a loaded image ("archive FILE").
	OriginArchive = "archive"
)

// LabelSource is the image record label naming what an image came from:
// the reference pulled, the archive loaded. Pulling the same reference
// again may move the names it set before.
const LabelSource = "org.skillbuild.origin.source"

// mayName refuses to point name at target when it already names another
// image, unless replace, or the name was set from the same source (a
// reference pulled again). The base's name is refused even then, unless
// replace: a name moves only when the user asked for that name.
func (s *Service) mayName(ctx context.Context, client *ctd.Client, name string, target digest.Digest, source string, replace bool) error {
	rec, err := client.ImageService().Get(ctx, name)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if rec.Target.Digest == target || replace {
		return nil
	}
	what := "another image"
	switch origin := rec.Labels[LabelOrigin]; {
	case origin == OriginBase:
		what = "the base image imported as " + store.Familiar(name)
	case rec.Labels[LabelSource] == source && source != "":
		return nil
	case origin != "":
		what = "an image from " + originPhrase(origin)
	default:
		what = "an image built here"
	}
	return fmt.Errorf("%s already names %s (%s); it would be moved to %s: %s: %w", store.Familiar(name), what, rec.Target.Digest,
		target, s.advise("pass --replace to move it, or remove it first", "remove it first"), errdefs.ErrAlreadyExists)
}

// originPhrase says where an image came from, after "from".
func originPhrase(origin string) string {
	if origin == OriginRegistry {
		return "a registry"
	}
	return origin
}
