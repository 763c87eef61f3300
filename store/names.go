package store

import (
	"fmt"

	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
)

// ImageName is the name a tag is stored under in containerd (fully
// qualified, as BuildKit and nerdctl store it).
func ImageName(tag string) (string, error) {
	named, err := reference.ParseNormalizedNamed(tag)
	if err != nil {
		return "", fmt.Errorf("image tag %q: %v: %w", tag, err, errdefs.ErrInvalidArgument)
	}
	return named.String(), nil
}

// Familiar is the short form of an image name (atom-skill:x-v1).
func Familiar(name string) string {
	named, err := reference.ParseNormalizedNamed(name)
	if err != nil {
		return name
	}
	return reference.FamiliarString(named)
}

// StagingPrefix names the images a build exports before it tags them;
// they are never skill images, and prune removes leftovers.
const StagingPrefix = "localhost/skillbuild-staging/"
