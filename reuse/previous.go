package reuse

import (
	"context"
	"fmt"
	"sort"
	"strconv"

	ctd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/platforms"
	"github.com/skillbuild/skillbuild/config"
	"github.com/skillbuild/skillbuild/internal/attest"
	"github.com/skillbuild/skillbuild/labels"
	"github.com/skillbuild/skillbuild/lock"
	"github.com/skillbuild/skillbuild/spec"
	"github.com/skillbuild/skillbuild/store"
)

// maxPrevious bounds how many earlier images of a skill Previous reads.
const maxPrevious = 8

// Previous is the lock document of an earlier image of s that a build of
// s may extend rather than resolve everything again (engine.Request's
// Previous): an image of the same skill id (the one tagged for s first,
// then its other versions, newest first) that this store's builds made
// (its record carries the spec digest, which pulls and imports do not
// write), resolved with the same index settings (labels.IndexDigest) on
// the base s.Base names now, whose lock document is whole (its lock has
// the image's lock digest) and whose requirements s's only add to. image
// names it; with none, Previous returns nil and why (the first
// candidate's reason).
//
// The document is data skillbuild wrote after a build: its distributions
// are checked again (sources) and scanned with the rest of the new lock,
// and their metadata only ever becomes METADATA files of a view in which
// no package code exists (llb.ResolveAdded).
func Previous(ctx context.Context, c *ctd.Client, s config.Skill) (doc *lock.Document, image, why string, err error) {
	wantIndex, err := spec.IndexDigest(s)
	if err != nil {
		return nil, "", "index settings: " + err.Error(), nil
	}
	tagged, err := store.ImageName(s.Tag())
	if err != nil {
		return nil, "", "", err
	}
	recs, err := c.ImageService().List(ctx, fmt.Sprintf("labels.%q==%s", labels.SkillID, strconv.Quote(s.ID)))
	if err != nil {
		return nil, "", "", fmt.Errorf("list the images of skill %s: %w", s.ID, err)
	}
	sort.SliceStable(recs, func(i, j int) bool {
		if (recs[i].Name == tagged) != (recs[j].Name == tagged) {
			return recs[i].Name == tagged
		}
		return recs[i].UpdatedAt.After(recs[j].UpdatedAt)
	})
	if len(recs) > maxPrevious {
		recs = recs[:maxPrevious]
	}
	reqs := make([]string, len(s.Requirements))
	for i, r := range s.Requirements {
		reqs[i] = r.Raw
	}
	why = "no earlier image of skill " + s.ID
	for i, rec := range recs {
		d, w, err := previousDoc(ctx, c, s, rec, wantIndex.String(), reqs)
		if err != nil {
			return nil, "", "", err
		}
		if d != nil {
			return d, rec.Name, "", nil
		}
		if i == 0 {
			// The most relevant reason: the tagged image's, or the newest's.
			why = store.Familiar(rec.Name) + ": " + w
		}
	}
	return nil, "", why, nil
}

// previousDoc is rec's lock document when a build of s with requirement
// lines reqs may extend it, else why not.
func previousDoc(ctx context.Context, c *ctd.Client, s config.Skill, rec images.Image, wantIndex string, reqs []string) (*lock.Document, string, error) {
	if rec.Labels[labels.SpecDigest] == "" {
		return nil, "not built here", nil
	}
	if rec.Labels[labels.IndexDigest] != wantIndex {
		return nil, "resolved with other index settings", nil
	}
	if why, err := sameBase(ctx, c.ImageService(), s.Base, rec.Labels[labels.BaseDigest]); why != "" || err != nil {
		return nil, why, err
	}
	sts, _, err := attest.Read(ctx, c.ContentStore(), rec.Target, platforms.Default())
	if err != nil {
		return nil, "attestations: " + err.Error(), nil
	}
	st := attest.Find(sts, lock.DocumentPredicate)
	if st == nil {
		return nil, "no lock document (built by an older skillbuild)", nil
	}
	doc, err := lock.ParseDocument(st.Predicate)
	if err != nil {
		return nil, err.Error(), nil
	}
	if doc.BaseDigest != rec.Labels[labels.BaseDigest] || doc.Lock().Digest().String() != rec.Labels[labels.LockDigest] {
		return nil, "lock document does not match the image's lock", nil
	}
	if ok, why := doc.Incremental(reqs); !ok {
		return nil, why, nil
	}
	return &doc, "", nil
}
