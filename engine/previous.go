package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	ctd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
	gateway "github.com/moby/buildkit/frontend/gateway/client"
	digest "github.com/opencontainers/go-digest"
	"github.com/skillbuild/skillbuild/config"
	"github.com/skillbuild/skillbuild/labels"
	sbllb "github.com/skillbuild/skillbuild/llb"
	"github.com/skillbuild/skillbuild/lock"
	"github.com/skillbuild/skillbuild/spec"
)

// previous is an earlier image of the skill that resolution may start
// from: the image tagged for the skill, built by this state root from the
// same spec except for fewer requirement lines (each of its lines is
// still one of the skill's), on the same base reference. Its venv holds
// its lock; pip, resolving in that venv, keeps what satisfies the
// requirements and looks up only what is new, as `pip install` into an
// existing venv does. --refresh resolves from scratch.
type previous struct {
	ref        string // the image, pinned by digest
	baseDigest digest.Digest
	lock       lock.Lock // as resolved, with URLs and file names (lockStore)
}

// maxRequirementsLabel keeps the requirements label under containerd's
// limit on a label (4096 bytes for key and value).
const maxRequirementsLabel = 3072

// requirementsLabel is the skill's requirement lines as a label value, or
// "" when they do not fit.
func requirementsLabel(s config.Skill) string {
	var b strings.Builder
	for _, r := range s.Requirements {
		b.WriteString(r.Raw + "\n")
	}
	if b.Len() > maxRequirementsLabel {
		return ""
	}
	return b.String()
}

// findPrevious returns the skill's previous image when resolution can
// start from it, or nil and why not. Only the embedded builder's own
// containerd holds the image; layers written by pip (source
// distributions, the single-layer pipeline) are not resolved over.
func (e *Engine) findPrevious(ctx context.Context, req Request, name string) (*previous, string) {
	s := req.Skill
	switch {
	case req.Refresh:
		return nil, "refresh"
	case e.opts.builder != BuilderEmbedded || e.ctd == nil:
		return nil, "builder without an image store"
	case !sbllb.FixedTimes(s, req.Layers):
		return nil, "pip-written layers"
	}
	rec, err := e.ctd.ImageService().Get(ctx, name)
	if err != nil {
		return nil, "no image " + name
	}
	lines := rec.Labels[labels.Requirements]
	if lines == "" {
		return nil, "no requirements recorded"
	}
	old := s
	old.Requirements = nil
	for _, l := range strings.Split(strings.TrimSuffix(lines, "\n"), "\n") {
		if !slices.ContainsFunc(s.Requirements, func(r config.Requirement) bool { return r.Raw == l }) {
			return nil, "requirement " + l + " is gone"
		}
		old.Requirements = append(old.Requirements, config.Requirement{Raw: l})
	}
	want, err := spec.Digest(old, spec.Layering{MaxLayers: req.Layers.MaxLayers, SingleLayer: req.Layers.SingleLayer})
	if err != nil || rec.Labels[labels.SpecDigest] != want.String() {
		return nil, "built from another spec"
	}
	baseDigest, err := digest.Parse(rec.Labels[labels.BaseDigest])
	if err != nil {
		return nil, "no base digest recorded"
	}
	if ok, err := ctd.NewImage(e.ctd, rec).IsUnpacked(ctx, e.opts.snapshotter); err != nil || !ok {
		return nil, "image not unpacked"
	}
	lockDigest, err := digest.Parse(rec.Labels[labels.LockDigest])
	if err != nil {
		return nil, "no lock digest recorded"
	}
	l, err := e.locks().load(lockDigest)
	if err != nil {
		return nil, "lock not kept: " + err.Error()
	}
	// Name, tag and digest: BuildKit finds an image in containerd's store
	// by its tagged name and checks the digest.
	named, err := reference.ParseNormalizedNamed(name)
	if err != nil {
		return nil, err.Error()
	}
	ref, err := reference.WithDigest(named, rec.Target.Digest)
	if err != nil {
		return nil, err.Error()
	}
	return &previous{ref: ref.String(), baseDigest: baseDigest, lock: l}, ""
}

// resolveOver resolves the skill in the previous image's venv. ok is
// false when the result is not just additions to the previous lock (pip
// would change an installed distribution): the caller resolves from
// scratch then, so the lock holds exactly what the requirements need.
func resolveOver(ctx context.Context, c gateway.Client, ss *solveSession, prev *previous) (l lock.Lock, ok bool, err error) {
	over := sbllb.Previous(prev.ref)
	// Its errors are not the build's: a failure falls back to resolving
	// from scratch.
	keep := func(err error) error { return err }
	added, err := solveResolve(ctx, c, ss, over, sbllb.ResolveOpts{Trusted: ss.trusted, Over: &over}, keep)
	if err != nil {
		if ctx.Err() != nil {
			return nil, false, err
		}
		// The image was retagged or removed meanwhile, or pip refused:
		// resolve from scratch (which explains a refusal again).
		return nil, false, nil
	}
	merged := slices.Clone(prev.lock)
	for _, d := range added {
		if slices.ContainsFunc(prev.lock, func(p lock.Dist) bool { return p.Name == d.Name }) {
			return nil, false, nil
		}
		merged = append(merged, d)
	}
	slices.SortFunc(merged, func(a, b lock.Dist) int { return strings.Compare(a.Name, b.Name) })
	return merged, true, nil
}

// lockStore keeps the locks of the images this state root built, whole
// (the image's label and file hold names, versions and hashes only; a
// build resolving over an image needs where each file came from to fetch
// it, and the same URL to find its layers in the build cache). A lock is
// found by its digest, and checked against it.
type lockStore struct{ dir string }

func (e *Engine) locks() lockStore { return lockStore{dir: filepath.Join(e.opts.root, "locks")} }

func (ls lockStore) path(d digest.Digest) string {
	return filepath.Join(ls.dir, d.Algorithm().String()+"-"+d.Encoded()+".json")
}

// save writes l (atomically: a reader never sees half a lock).
func (ls lockStore) save(l lock.Lock) error {
	if err := os.MkdirAll(ls.dir, 0o700); err != nil {
		return err
	}
	b, err := json.Marshal(l)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(ls.dir, ".lock-*")
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), ls.path(l.Digest()))
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("keep the lock: %w", err)
	}
	return nil
}

// load reads the lock with digest d.
func (ls lockStore) load(d digest.Digest) (lock.Lock, error) {
	b, err := os.ReadFile(ls.path(d))
	if err != nil {
		return nil, err
	}
	var l lock.Lock
	if err := json.Unmarshal(b, &l); err != nil {
		return nil, err
	}
	if got := l.Digest(); got != d {
		return nil, fmt.Errorf("lock file %s holds lock %s: %w", ls.path(d), got, errdefs.ErrDataLoss)
	}
	return l, nil
}

// prune removes every kept lock (with the build cache: what the locks
// are for, finding layers in it, is gone).
func (ls lockStore) prune() error { return os.RemoveAll(ls.dir) }
