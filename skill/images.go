package skill

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	ctd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/skillbuild/skillbuild/config"
	"github.com/skillbuild/skillbuild/engine"
	"github.com/skillbuild/skillbuild/internal/attest"
	"github.com/skillbuild/skillbuild/labels"
	"github.com/skillbuild/skillbuild/skill/api"
	"github.com/skillbuild/skillbuild/store"
)

// List lists the skill images in containerd (base images and build
// leftovers are not listed).
func (s *Service) List(ctx context.Context, req api.ListRequest) ([]api.SkillImage, error) {
	client, err := s.containerd(ctx, sweepFirst)
	if err != nil {
		return nil, err
	}
	var opts []store.ListOpt
	if req.Unpacked {
		opts = append(opts, store.WithUnpackedSize(snapshotter))
	}
	imgs, err := store.ListImages(ctx, client, opts...)
	return skillImages(imgs), err
}

func skillImages(imgs []store.SkillImage) []api.SkillImage {
	out := make([]api.SkillImage, len(imgs))
	for i, s := range imgs {
		out[i] = api.SkillImage{SkillID: s.ID, Version: s.Version, Tag: s.Tag, Name: s.Name, Digest: s.Digest, Packages: s.Packages,
			LockDigest: s.LockDigest, Size: s.Size, Unpacked: s.Unpacked, Created: s.Created, Updated: s.Updated}
	}
	return out
}

// Remove removes a skill's image tags (one version, or every version);
// the layers stay until Prune. Not finding any is ErrNotFound. The warm
// containers of a removed image are dropped.
func (s *Service) Remove(ctx context.Context, req api.RemoveRequest) (*api.RemoveResult, error) {
	client, err := s.containerd(ctx, sweepFirst)
	if err != nil {
		return nil, err
	}
	removed, err := store.RemoveImages(ctx, client, store.WithSkill(req.SkillID, req.Version))
	out := &api.RemoveResult{Removed: skillImages(removed)}
	if err != nil {
		out.Error = err.Error()
	}
	if pool := s.pool(); pool != nil {
		for _, r := range removed {
			if name, err := store.ImageName(r.Tag); err == nil {
				pool.Drop(name)
			}
		}
	}
	return out, err
}

// Inspect describes an image (its lock, labels, SBOM and scan verdict)
// from containerd, or from its registry when containerd does not have it
// and the request names a reference.
func (s *Service) Inspect(ctx context.Context, req api.InspectRequest) (*api.InspectResult, error) {
	name := req.Ref
	if name == "" {
		skill, err := s.load(config.Input{ID: req.SkillID, Version: orDefault(req.Version, "1"), Repo: req.Repo, Set: map[string]bool{}})
		if err != nil {
			return nil, err
		}
		name = skill.Tag()
	}
	full, err := store.ImageName(name)
	if err != nil {
		return nil, err
	}
	out := &api.InspectResult{Name: full, Source: "containerd"}
	client, err := s.containerd(ctx, sweepNone)
	if err != nil {
		return nil, err
	}
	var (
		target   ocispec.Descriptor
		provider content.Provider = client.ContentStore()
	)
	img, err := client.ImageService().Get(ctx, full)
	switch {
	case err == nil:
		target = img.Target
	case errdefs.IsNotFound(err) && req.Ref != "":
		rc, rerr := s.registryClient()
		if rerr != nil {
			return nil, rerr
		}
		out.Source = "registry"
		if target, provider, err = rc.Open(ctx, full); err != nil {
			return nil, err
		}
	case errdefs.IsNotFound(err):
		return nil, &notFoundError{msg: fmt.Sprintf("image %s not found in containerd; %s", store.Familiar(full),
			s.advise("run `skillbuild install` or `skillbuild pull` first, or give a registry REF", "install or pull it on the server first, or give a registry ref"))}
	default:
		return nil, err
	}
	desc, err := attest.Inspect(ctx, provider, target, platforms.Default())
	if err != nil {
		return nil, err
	}
	out.Digest, out.ManifestDigest, out.Labels = desc.Digest.String(), desc.Manifest.String(), desc.Labels
	out.Lock = desc.Labels[labels.Lock]
	out.Attestations = []string{}
	for _, st := range desc.Statements {
		out.Attestations = append(out.Attestations, st.PredicateType)
	}
	if st := attest.Find(desc.Statements, attest.PredicateSPDX); st != nil {
		out.SBOM = st.Predicate
	}
	if st := attest.Find(desc.Statements, attest.PredicateVerdict); st != nil {
		out.Verdict = st.Predicate
	}
	return out, nil
}

// Load imports every named image of an OCI or docker-save archive, or of
// an OCI layout, unpacked for the runtime; a skill image is also tagged as
// its skill (under the request's repository) from its labels. Loaded
// images are recorded as coming from elsewhere: they run once admitted.
func (s *Service) Load(ctx context.Context, req api.LoadRequest) (api.LoadResult, error) {
	st, err := os.Stat(req.Path)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w: %w", req.Path, err, errdefs.ErrInvalidArgument)
	}
	client, err := s.containerd(ctx, sweepNone)
	if err != nil {
		return nil, err
	}
	var arc *store.Archive
	if st.IsDir() {
		arc, err = store.ReadOCILayout(ctx, client, req.Path, snapshotter)
	} else {
		f, ferr := os.Open(req.Path)
		if ferr != nil {
			return nil, fmt.Errorf("load %s: %w: %w", req.Path, ferr, errdefs.ErrInvalidArgument)
		}
		defer f.Close()
		arc, err = store.ReadOCIArchive(ctx, client, f, snapshotter)
	}
	if err != nil {
		return nil, err
	}
	// Until the names are set the import's lease holds the content; what
	// no name references afterwards is collected.
	defer arc.Release(context.WithoutCancel(ctx)) //nolint:errcheck
	abs, err := filepath.Abs(req.Path)
	if err != nil {
		return nil, err
	}
	origin := OriginArchive + " " + filepath.Base(req.Path)
	// Every name is checked before any is set.
	var plans []loadPlan
	for _, img := range arc.Images {
		p, err := s.planLoaded(ctx, client, img, req.Repo, origin)
		if err != nil {
			return nil, err
		}
		p.labels[LabelSource] = abs
		for _, n := range p.names {
			if err := s.mayName(ctx, client, n, p.target.Digest, abs, req.Replace); err != nil {
				return nil, err
			}
		}
		plans = append(plans, p)
	}
	var recs []images.Image
	for _, p := range plans {
		for _, n := range p.names {
			recs = append(recs, images.Image{Name: n, Target: p.target, Labels: p.labels})
		}
	}
	if _, err := store.SetTags(ctx, client, recs); err != nil {
		return nil, err
	}
	// An archive may name one image several times (OCI and containerd
	// annotations): each image is listed once, each name once.
	out := api.LoadResult{}
	at := map[string]int{}
	for _, p := range plans {
		d := p.target.Digest.String()
		i, seen := at[d]
		if !seen {
			i, at[d] = len(out), len(out)
			out = append(out, api.LoadedImage{Digest: d, Names: []string{}})
		}
		for _, n := range p.names {
			if !slices.Contains(out[i].Names, n) {
				out[i].Names = append(out[i].Names, n)
			}
		}
	}
	return out, nil
}

// loadPlan is what a loaded image will be named and labelled.
type loadPlan struct {
	target ocispec.Descriptor
	names  []string
	labels map[string]string
}

// planLoaded names a loaded image: its name in the archive and, for a
// skill image, its skill tag; its record says where it came from.
func (s *Service) planLoaded(ctx context.Context, client *ctd.Client, img store.ArchiveImage, repo, origin string) (loadPlan, error) {
	desc, err := attest.Inspect(ctx, client.ContentStore(), img.Target, platforms.Default())
	if err != nil {
		return loadPlan{}, fmt.Errorf("loaded image %s: %w", orDefault(img.Name, img.Target.Digest.String()), err)
	}
	extra, recLabels, err := skillNames(desc.Labels, orDefault(repo, config.DefaultRepo), origin)
	if err != nil {
		return loadPlan{}, err
	}
	var names []string
	if img.Name != "" {
		names = append(names, img.Name)
	}
	for _, n := range extra {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return loadPlan{}, fmt.Errorf("image %s of the archive has no name and no skill labels to name it by: %w", img.Target.Digest, errdefs.ErrInvalidArgument)
	}
	return loadPlan{target: img.Target, names: names, labels: recLabels}, nil
}

// ImportBase imports a base image offline from exactly one of an OCI
// layout, an archive or a root filesystem (which must contain python3).
func (s *Service) ImportBase(ctx context.Context, req api.BaseImportRequest) ([]api.ImportedImage, error) {
	n := 0
	for _, p := range []string{req.OCILayout, req.OCIArchive, req.Rootfs} {
		if p != "" {
			n++
		}
	}
	if n != 1 {
		return nil, fmt.Errorf("give exactly one of --oci-layout, --oci-archive, --rootfs: %w", errdefs.ErrInvalidArgument)
	}
	if req.Rootfs != "" && req.Name == "" {
		return nil, fmt.Errorf("--rootfs needs --name REF: %w", errdefs.ErrInvalidArgument)
	}
	client, err := s.containerd(ctx, sweepFirst)
	if err != nil {
		return nil, err
	}
	var imgs []store.ImportedImage
	switch {
	case req.Rootfs != "":
		var img store.ImportedImage
		img, err = store.ImportRootfs(ctx, client, req.Rootfs, req.Name, snapshotter)
		imgs = append(imgs, img)
	case req.OCILayout != "":
		imgs, err = store.ImportOCILayout(ctx, client, req.OCILayout, req.Name, snapshotter)
	default:
		f, ferr := config.OpenInput(req.OCIArchive, 0)
		if ferr != nil {
			return nil, fmt.Errorf("--oci-archive: %w", ferr)
		}
		defer f.Close()
		imgs, err = store.ImportOCIArchive(ctx, client, f, req.Name, snapshotter)
	}
	if err != nil {
		return nil, err
	}
	out := make([]api.ImportedImage, len(imgs))
	for i, img := range imgs {
		// Recorded as a base: install builds only on such an image.
		rec, err := client.ImageService().Get(ctx, img.Name)
		if err != nil {
			return nil, err
		}
		rec.Labels = map[string]string{LabelOrigin: OriginBase}
		if err := store.SetTag(ctx, client, rec); err != nil {
			return nil, err
		}
		out[i] = api.ImportedImage{Name: img.Name, Digest: img.Digest}
	}
	return out, nil
}

// Prune frees build cache, leftover staging images of interrupted builds,
// and the content and snapshots no image uses; base and skill images are
// never removed.
func (s *Service) Prune(ctx context.Context, req api.PruneRequest) (*api.PruneResult, error) {
	var opts []engine.PruneOpt
	if req.All {
		opts = append(opts, engine.WithPruneAll())
	}
	if req.KeepStorage > 0 {
		opts = append(opts, engine.WithKeepStorage(req.KeepStorage))
	}
	eng, err := s.newEngine(ctx)
	if err != nil {
		return nil, err
	}
	defer eng.Close()
	rep, err := eng.Prune(ctx, opts...)
	if err != nil {
		return nil, err
	}
	usage := func(u store.Usage) api.Usage {
		return api.Usage{Blobs: u.Blobs, ContentBytes: u.ContentBytes, Snapshots: u.Snapshots, SnapshotBytes: u.SnapshotBytes}
	}
	return &api.PruneResult{CacheRecords: rep.CacheRecords, CacheBytes: rep.CacheBytes, HistoryRecords: rep.HistoryRecords,
		Staging: rep.Staging, KeptImages: rep.KeptImages, Before: usage(rep.Before), After: usage(rep.After), Freed: usage(rep.Freed)}, nil
}
