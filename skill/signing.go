package skill

import (
	"context"
	"fmt"

	ctd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/skillbuild/skillbuild/registry"
	"github.com/skillbuild/skillbuild/signature"
	"github.com/skillbuild/skillbuild/skill/api"
)

// WithTrustedKeys makes the service require, of every image from
// elsewhere it pulls or runs, a signature by one of the public keys in
// paths (PEM files, or directories of *.pub files), in cosign's format.
// Images this root built need none.
func WithTrustedKeys(paths ...string) Opt {
	return func(o *options) error {
		if len(paths) == 0 {
			return nil
		}
		keys, err := signature.LoadKeySet(paths...)
		if err != nil {
			return fmt.Errorf("--trusted-key: %w", err)
		}
		o.trusted = &keys
		return nil
	}
}

// loadSigner reads a signing key (cosign.key, or a plain PEM private key)
// with its password.
func loadSigner(path string, password []byte) (*signature.Signer, error) {
	s, err := signature.LoadPrivateKey(path, password)
	if err != nil {
		return nil, fmt.Errorf("--sign-key %s: %w", path, err)
	}
	return s, nil
}

// sign signs what a push pushed, by digest.
func (s *Service) sign(ctx context.Context, rc *registry.Client, pushed api.Pushed, signer *signature.Signer) (*api.Signed, error) {
	res, err := rc.Sign(ctx, pushed.Ref+"@"+pushed.Digest.String(), signer)
	if err != nil {
		return nil, fmt.Errorf("sign %s: %w", pushed.Ref, err)
	}
	return &api.Signed{Artifact: res.Artifact, KeyID: res.KeyID, Signatures: res.Signatures, AlreadySigned: res.AlreadySigned}, nil
}

// checkSignature requires a trusted signature of an image from elsewhere,
// from what its pull stored, or fetched from the registry it came from.
func (s *Service) checkSignature(ctx context.Context, client *ctd.Client, rec images.Image, a *api.Admission) error {
	keys := s.opts.trusted
	if keys == nil {
		return nil
	}
	v, err := signature.VerifyStored(ctx, client.ContentStore(), rec.Target, *keys)
	if err != nil {
		src := rec.Labels[LabelSource]
		if rc, rerr := s.registryClient(); rerr == nil && src != "" && registry.NamesRegistry(src) {
			v, err = rc.FetchSignature(ctx, client, src, rec.Target, *keys)
		}
	}
	if err != nil {
		return fmt.Errorf("image %s has no valid signature by a trusted key: %w", api.Familiar(rec.Name), err)
	}
	a.SignedBy = v.Key
	return nil
}
