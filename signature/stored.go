package signature

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// recordPrefix starts the content label, on an image's top document (its
// index or manifest), that records a signature artifact fetched for it:
// the rest of the key is the repository it was fetched from, the value
// the artifact's manifest digest. containerd's garbage collector follows
// labels under containerd.io/gc.ref.content., so the artifact lives as
// long as the image.
const recordPrefix = "containerd.io/gc.ref.content.cosign-signature/"

// RecordLabel is the content label key under which a signature artifact
// from repo's repository is recorded on the image it signs.
func RecordLabel(repo reference.Named) string {
	return recordPrefix + reference.TrimNamed(repo).Name()
}

// Record notes, on the image document in cs, that the signature artifact
// (already in cs with its layers) was fetched for it from repo's
// repository, replacing what an earlier pull from there recorded.
func Record(ctx context.Context, cs content.Store, image ocispec.Descriptor, repo reference.Named, artifact ocispec.Descriptor) error {
	key := RecordLabel(repo)
	info := content.Info{Digest: image.Digest, Labels: map[string]string{key: artifact.Digest.String()}}
	if _, err := cs.Update(ctx, info, "labels."+key); err != nil {
		return fmt.Errorf("record signature artifact %s on %s: %w", artifact.Digest, image.Digest, err)
	}
	return nil
}

// VerifyStored verifies the image from what a pull stored in cs: each
// signature artifact recorded on it (see Record), against the repository
// it was fetched from, until one verifies (see KeySet.Verify). An image
// with no recorded artifact fails with errdefs.ErrFailedPrecondition: it
// was pulled without trusted keys, or built here.
func VerifyStored(ctx context.Context, cs content.Store, image ocispec.Descriptor, keys KeySet) (Verified, error) {
	info, err := cs.Info(ctx, image.Digest)
	if err != nil {
		return Verified{}, fmt.Errorf("image %s: %w", image.Digest, err)
	}
	var repos []string
	for k := range info.Labels {
		if strings.HasPrefix(k, recordPrefix) {
			repos = append(repos, strings.TrimPrefix(k, recordPrefix))
		}
	}
	if len(repos) == 0 {
		return Verified{}, fmt.Errorf("image %s has no signature stored with it: it was not pulled with trusted keys; pull it again with them (the signature artifact %s is fetched and checked with the image): %w",
			image.Digest, Tag(image.Digest), errdefs.ErrFailedPrecondition)
	}
	sort.Strings(repos)
	var reasons []string
	for _, r := range repos {
		v, err := verifyRecorded(ctx, cs, image, keys, r, info.Labels[recordPrefix+r])
		if err == nil {
			return v, nil
		}
		reasons = append(reasons, err.Error())
	}
	return Verified{}, fmt.Errorf("image %s: %s: %w", image.Digest, strings.Join(reasons, "; "), errdefs.ErrFailedPrecondition)
}

func verifyRecorded(ctx context.Context, cs content.Store, image ocispec.Descriptor, keys KeySet, repoName, artifact string) (Verified, error) {
	repo, err := reference.ParseNormalizedNamed(repoName)
	if err != nil {
		return Verified{}, fmt.Errorf("recorded repository %q: %w", repoName, err)
	}
	d, err := digest.Parse(artifact)
	if err != nil {
		return Verified{}, fmt.Errorf("signature artifact recorded from %s: %q: %w", repoName, artifact, err)
	}
	ai, err := cs.Info(ctx, d)
	if err != nil {
		return Verified{}, fmt.Errorf("signature artifact %s from %s: %w", d, repoName, err)
	}
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: d, Size: ai.Size}
	return keys.Verify(ctx, cs, desc, repo, image.Digest)
}
