package skill

import (
	"context"
	"fmt"

	ctd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/skillbuild/skillbuild/config"
	"github.com/skillbuild/skillbuild/labels"
	"github.com/skillbuild/skillbuild/registry"
	"github.com/skillbuild/skillbuild/signature"
	"github.com/skillbuild/skillbuild/skill/api"
	"github.com/skillbuild/skillbuild/store"
)

// LabelOrigin is the image record label of an image that came from
// elsewhere (a registry or an archive): such an image runs only once
// admitted.
const LabelOrigin = "org.skillbuild.origin"

// Pull pulls an image from a registry into containerd, unpacked, with its
// attestations. A skill image is also tagged as its skill (under the
// request's repository) from its labels. Names are set only after
// everything was fetched and unpacked.
func (s *Service) Pull(ctx context.Context, req api.PullRequest) (*api.PullResult, error) {
	ref := req.Ref
	if ref == "" {
		skill, err := s.load(config.Input{ID: req.SkillID, Version: orDefault(req.Version, "1"), Repo: req.Repo,
			Set: map[string]bool{config.FlagRepo: req.Repo != "", config.FlagVersion: true}})
		if err != nil {
			return nil, err
		}
		if !registry.NamesRegistry(skill.Tag()) {
			return nil, fmt.Errorf("pull %s: %s names no registry; give a full REF (HOST[:PORT]/PATH:TAG) or --repo HOST/PATH: %w", req.SkillID, skill.Tag(), errdefs.ErrInvalidArgument)
		}
		ref = skill.Tag()
	}
	client, err := s.containerd(ctx, sweepNone)
	if err != nil {
		return nil, err
	}
	origin := OriginRegistry
	if req.Base {
		origin = OriginBase
	}
	return s.pullImage(ctx, client, ref, req.Repo, origin, req.Replace)
}

// pullImage pulls ref, names a skill image also by its skill tag (under
// repo) and records where it came from. A name that points at another
// image moves only with replace, or when the same reference set it.
func (s *Service) pullImage(ctx context.Context, client *ctd.Client, ref, repo, origin string, replace bool) (*api.PullResult, error) {
	rc, err := s.registryClient()
	if err != nil {
		return nil, err
	}
	if repo == "" {
		repo = config.DefaultRepo
	}
	named, err := registry.ParseRef(ref)
	if err != nil {
		return nil, err
	}
	source := named.String()
	namer := func(target ocispec.Descriptor, cfgLabels map[string]string) ([]string, map[string]string, error) {
		names, rec, err := skillNames(cfgLabels, repo, origin)
		if err != nil {
			return nil, nil, err
		}
		rec[LabelSource] = source
		for _, n := range append([]string{source}, names...) {
			if err := s.mayName(ctx, client, n, target.Digest, source, replace); err != nil {
				return nil, nil, err
			}
		}
		return names, rec, nil
	}
	popts := []registry.PullOpt{registry.WithSnapshotter(snapshotter), registry.WithNamer(namer)}
	if s.opts.trusted != nil {
		// Verified before anything is fetched or named.
		popts = append(popts, registry.WithTrustedKeys(*s.opts.trusted))
	}
	res, err := rc.Pull(ctx, client, ref, popts...)
	if err != nil {
		return nil, err
	}
	out := &api.PullResult{Ref: res.Ref, Digest: res.Digest, Names: res.Names, Labels: res.Labels, BytesFetched: res.BytesFetched}
	if res.Signature != nil {
		out.SignedBy = res.Signature.Key
	}
	return out, nil
}

// skillNames names an image that came from elsewhere: its skill tag under
// repo when its config labels say it is a skill image, and the record
// labels `ls` and `run` read.
func skillNames(cfgLabels map[string]string, repo, origin string) ([]string, map[string]string, error) {
	rec := map[string]string{LabelOrigin: origin}
	id, version := cfgLabels[labels.SkillID], cfgLabels[labels.SkillVersion]
	if id == "" || version == "" {
		return nil, rec, nil
	}
	for _, k := range []string{labels.SkillID, labels.SkillVersion, labels.LockDigest, labels.Packages, labels.BaseDigest} {
		if v := cfgLabels[k]; v != "" {
			rec[k] = v
		}
	}
	skill, err := config.Load(config.Input{ID: id, Version: version, Repo: repo, Set: map[string]bool{config.FlagRepo: true, config.FlagVersion: true}})
	if err != nil {
		return nil, nil, fmt.Errorf("the image's skill labels (%s=%q, %s=%q): %w", labels.SkillID, id, labels.SkillVersion, version, err)
	}
	name, err := store.ImageName(skill.Tag())
	if err != nil {
		return nil, nil, err
	}
	return []string{name}, rec, nil
}

// Push pushes a skill's local image (its index with the SBOM and verdict
// attestations) to the request's reference, only the blobs the registry
// lacks; the tag moves last.
func (s *Service) Push(ctx context.Context, req api.PushRequest) (*api.PushResult, error) {
	in := config.Input{ID: req.SkillID, Version: orDefault(req.Version, "1"), Repo: req.Repo, Set: map[string]bool{}}
	if req.Local.Input != nil {
		in = *req.Local.Input
	}
	skill, err := s.load(in)
	if err != nil {
		return nil, err
	}
	var signer *signature.Signer
	if req.Local.SignKey != "" {
		if signer, err = loadSigner(req.Local.SignKey, req.Local.SignPassword); err != nil {
			return nil, err
		}
	}
	out, err := s.pushSkill(ctx, skill, req.Ref, signer)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// pushSkill pushes the skill's local image to ref (a template; empty: the
// image's own name) and signs what it pushed when signer is set.
func (s *Service) pushSkill(ctx context.Context, skill config.Skill, ref string, signer *signature.Signer) (api.PushResult, error) {
	name, err := store.ImageName(skill.Tag())
	if err != nil {
		return api.PushResult{}, err
	}
	out := api.PushResult{SkillID: skill.ID, Version: skill.Version, ImageTag: store.Familiar(name)}
	if ref == "" {
		if !registry.NamesRegistry(skill.Tag()) {
			return out, fmt.Errorf("push %s: give REF (HOST[:PORT]/PATH:TAG, or a template with {id} and {version}); the image's name names no registry: %w",
				out.ImageTag, errdefs.ErrInvalidArgument)
		}
		ref = name
	}
	target, err := registry.ExpandRef(ref, skill.ID, skill.Version)
	if err != nil {
		return out, err
	}
	rc, err := s.registryClient()
	if err != nil {
		return out, err
	}
	client, err := s.containerd(ctx, sweepNone)
	if err != nil {
		return out, err
	}
	img, err := client.ImageService().Get(ctx, name)
	if errdefs.IsNotFound(err) {
		return out, &notFoundError{msg: fmt.Sprintf("image %s not found, run `skillbuild install %s` first", out.ImageTag, skill.ID)}
	}
	if err != nil {
		return out, err
	}
	lctx, done, err := client.WithLease(ctx)
	if err != nil {
		return out, err
	}
	defer done(context.WithoutCancel(lctx)) //nolint:errcheck
	res, err := rc.Push(lctx, client.ContentStore(), img.Target, target.String())
	out.Pushed = api.Pushed{Ref: res.Ref, Digest: res.Digest, MediaType: res.MediaType, BytesPushed: res.BytesPushed, Uploaded: res.Uploaded, Skipped: res.Skipped}
	if err != nil || signer == nil {
		return out, err
	}
	out.Signed, err = s.sign(ctx, rc, out.Pushed, signer)
	return out, err
}

// reportPush logs what a push moved.
func reportPush(s *Service, r api.Pushed) {
	fmt.Fprintf(s.opts.log, "pushed %s: %s uploaded in %d blobs, %d already there\n", r.Ref, config.FormatSize(r.BytesPushed), r.Uploaded, r.Skipped)
	if r.Signed != nil {
		fmt.Fprintf(s.opts.log, "signed %s@%s: %s (key %.12s, %d signatures)\n", r.Ref, r.Digest, r.Signed.Artifact, r.Signed.KeyID, r.Signed.Signatures)
	}
}

// notFoundError is a not-found error that says only what to do.
type notFoundError struct{ msg string }

func (e *notFoundError) Error() string { return e.msg }
func (e *notFoundError) Unwrap() error { return errdefs.ErrNotFound }

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
