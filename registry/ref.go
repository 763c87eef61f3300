package registry

import (
	"fmt"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
)

// ParseRef checks that ref is a full image reference for a push or pull:
// HOST[:PORT]/PATH with a tag or a digest. It returns the normalized form.
// A reference without a tag or digest is refused rather than defaulted to
// "latest": a CI job that forgets the tag must not overwrite latest.
func ParseRef(ref string) (reference.Named, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return nil, fmt.Errorf("image reference %q: %v (expected HOST[:PORT]/PATH:TAG): %w", ref, err, errdefs.ErrInvalidArgument)
	}
	_, tagged := named.(reference.Tagged)
	_, digested := named.(reference.Digested)
	if !tagged && !digested {
		return nil, fmt.Errorf("image reference %q has no tag or digest (expected HOST[:PORT]/PATH:TAG, e.g. %s:v1): %w", ref, ref, errdefs.ErrInvalidArgument)
	}
	return named, nil
}

// NamesRegistry tells whether ref names a registry a skill image can be
// pushed to or pulled from by default: anything but a short name such as
// atom-skill:x-v1, which means docker.io/library/atom-skill (Docker Hub's
// official images, which nobody pushes skills to).
func NamesRegistry(ref string) bool {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return false
	}
	return reference.Domain(named) != "docker.io" || !strings.HasPrefix(reference.Path(named), "library/")
}

// ExpandRef fills a reference template: {id} is the skill id and
// {version} its version, so one --push flag serves every skill of a CI job
// (registry.example.com/skills/{id}:v{version}). The result must be a full
// reference (see ParseRef).
func ExpandRef(tmpl, id, version string) (reference.Named, error) {
	r := strings.NewReplacer("{id}", id, "{version}", version).Replace(tmpl)
	if strings.ContainsAny(r, "{}") {
		return nil, fmt.Errorf("image reference template %q: only {id} and {version} can be filled in: %w", tmpl, errdefs.ErrInvalidArgument)
	}
	return ParseRef(r)
}
