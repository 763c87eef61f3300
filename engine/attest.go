package engine

import (
	"context"
	"fmt"

	"github.com/containerd/containerd/v2/core/content"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/skillbuild/skillbuild/config"
	"github.com/skillbuild/skillbuild/internal/attest"
	"github.com/skillbuild/skillbuild/lock"
)

// Attestations returns in-toto predicates about the image of locked
// beyond its SBOM (the scan verdict); Build attaches them next to the SBOM
// it writes.
type Attestations func(locked lock.Lock) ([]attest.Predicate, error)

// attach writes the SBOM of the build's lock and base, and the request's
// other predicates, as attestations of the exported image manifest, and
// returns the index to tag (BuildKit's attestation-manifest layout). The
// caller holds a lease until the index is tagged.
func attach(ctx context.Context, cs content.Store, s config.Skill, r *resolved, manifest ocispec.Descriptor, name string, more Attestations) (ocispec.Descriptor, error) {
	pkgs := make([]attest.Package, len(r.lock))
	for i, d := range r.lock {
		pkgs[i] = attest.Package{Name: d.Name, Version: d.Version, Filename: d.Filename, SHA256: d.SHA256}
	}
	sbom, err := attest.SBOM(attest.SBOMInput{
		SkillID: s.ID, SkillVersion: s.Version, LockDigest: r.lock.Digest(), Packages: pkgs,
		Base: s.Base, BaseDigest: r.baseDgst,
	})
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	reqs := make([]string, len(s.Requirements))
	for i, q := range s.Requirements {
		reqs[i] = q.Raw
	}
	// The lock document: what a later build of the skill extends when its
	// requirements only add to these (reuse.Previous).
	doc, err := lock.NewDocument(reqs, r.lock, r.baseDgst.String()).Marshal()
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	preds := []attest.Predicate{{Type: attest.PredicateSPDX, Body: sbom}, {Type: lock.DocumentPredicate, Body: doc}}
	if more != nil {
		extra, err := more(r.lock)
		if err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("attestations: %w", err)
		}
		preds = append(preds, extra...)
	}
	return attest.Attach(ctx, cs, manifest, name, preds...)
}
