package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
	digest "github.com/opencontainers/go-digest"
	"github.com/skillbuild/skillbuild/config"
	"github.com/skillbuild/skillbuild/internal/indexproxy"
	sbllb "github.com/skillbuild/skillbuild/llb"
	"github.com/skillbuild/skillbuild/lock"
	"github.com/skillbuild/skillbuild/resolver"
	"github.com/skillbuild/skillbuild/store"
)

// ResolveWithoutBuilder resolves s's requirements with the builtin
// resolver without starting BuildKit, when it can give the answer Resolve
// would: the embedded builder, the base image in containerd (one manifest,
// not an index), and the base's python environment kept in the state root
// by an earlier build or Resolve. The index is read through an index
// proxy as Build reads it, the lock checked as Build checks it; nothing
// is fetched beyond what resolving reads. ok is false (with a nil error)
// when it cannot answer so (pip asked for, source distributions allowed,
// the base or its environment not known yet, something the builtin
// resolver leaves to pip): the caller then starts an Engine and calls
// Resolve. A refusal (a conflict, no matching version) is explained as
// Resolve explains it.
//
// It takes the same options as New (address, namespace, root, builder,
// resolver); it does not take the root's lock.
func ResolveWithoutBuilder(ctx context.Context, s config.Skill, opts ...Opt) (locked lock.Lock, ok bool, err error) {
	o := defaultOptions()
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, false, err
		}
	}
	mode := s.Resolver
	if mode == "" {
		mode = o.resolver
	}
	if mode == config.ResolverPip || s.Index.AllowSdist || o.builder != BuilderEmbedded || o.base.set() {
		return nil, false, nil
	}
	if len(s.Requirements) == 0 {
		return lock.Lock{}, true, nil
	}
	base, ok, err := localManifest(ctx, o, s.Base)
	if err != nil || !ok {
		return nil, false, err
	}
	env, envErr, ok := cachedEnvironment(environmentFile(o.root, base))
	if !ok || envErr != nil {
		return nil, false, nil
	}
	var sources lock.Sources
	ss := s
	var ia *indexAccess
	if sbllb.UsesIndex(s.Index) {
		if ia, err = newIndexAccess(s.Index); err != nil {
			return nil, false, err
		}
		defer ia.proxy.Close()
		ss.Index.URL, ss.Index.ExtraURLs = ia.step[0], ia.step[1:]
		sources.Origins = ia.origins
	}
	for i := range s.Index.FindLinks {
		sources.FindLinks = append(sources.FindLinks, sbllb.FindLinksPath(i))
	}
	if err := os.MkdirAll(filepath.Join(o.root, resolverDir), 0o700); err != nil {
		return nil, false, err
	}
	wheels, err := os.MkdirTemp(filepath.Join(o.root, resolverDir), "wheels-")
	if err != nil {
		return nil, false, err
	}
	defer os.RemoveAll(wheels)
	var trusted []string
	var proxy *indexproxy.Proxy
	if ia != nil {
		trusted, proxy = ia.proxy.TrustedHosts(), ia.proxy
	}
	rs, err := newBuiltinResolver(ss, proxy, trusted, env, wheels)
	if err != nil {
		return nil, false, nil
	}
	lines := make([]string, len(s.Requirements))
	for i, q := range s.Requirements {
		lines[i] = q.Raw
	}
	res, err := rs.Resolve(ctx, lines, nil)
	switch {
	case errors.Is(err, resolver.ErrUnsupported):
		return nil, false, nil
	case err != nil:
		var index []string
		if ia != nil {
			index = ia.urls
		}
		return nil, false, explainBuiltin(ctx, err, s, index)
	}
	if err := res.Lock.Check(sources); err != nil {
		return nil, false, err
	}
	return res.Lock, true, nil
}

// localManifest is the manifest digest of ref in containerd's image
// store, as the build resolves it (PreferLocal); ok is false when the
// image is not there or is an index.
func localManifest(ctx context.Context, o options, ref string) (d digest.Digest, ok bool, err error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return "", false, fmt.Errorf("base image %s: %w: %w", ref, err, errdefs.ErrInvalidArgument)
	}
	c, err := store.Dial(ctx, o.address, o.namespace)
	if err != nil {
		return "", false, nil
	}
	defer c.Close()
	img, err := c.ImageService().Get(ctx, reference.TagNameOnly(named).String())
	if err != nil {
		return "", false, nil
	}
	if !images.IsManifestType(img.Target.MediaType) {
		return "", false, nil
	}
	return img.Target.Digest, true, nil
}
