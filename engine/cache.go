package engine

import (
	"context"
	"fmt"

	"github.com/containerd/errdefs"
	dockerconfig "github.com/docker/cli/cli/config"
	bkclient "github.com/moby/buildkit/client"
	gateway "github.com/moby/buildkit/frontend/gateway/client"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/session/auth/authprovider"
	resolverconfig "github.com/moby/buildkit/util/resolver/config"
)

// Cache is a build's registry cache: BuildKit's registry cache exporter
// and importer (mode=max, so every step's result, each distribution's
// layer included, can be reused by a runner with an empty --root).
type Cache struct {
	// From are cache references to import from; To the one to export to.
	From []string
	To   string
}

func (c Cache) empty() bool { return len(c.From) == 0 && c.To == "" }

// WithRegistries configures how the engine reaches registries (for base
// images and the registry cache), by host: plain HTTP, extra CAs.
func WithRegistries(m map[string]resolverconfig.RegistryConfig) Opt {
	return func(o *options) error {
		o.registries = m
		return nil
	}
}

// WithDockerConfigDir reads registry credentials for the build cache from
// dir/config.json instead of docker's default directory.
func WithDockerConfigDir(dir string) Opt {
	return func(o *options) error {
		o.dockerConfigDir = dir
		return nil
	}
}

// cacheOptions are the solve's cache entries and the session's
// credentials provider (read from the Docker config file, through
// BuildKit's own provider), when the build uses a registry cache.
func (e *Engine) cacheOptions(c Cache) (exports, imports []bkclient.CacheOptionsEntry, attach []session.Attachable, err error) {
	if c.empty() {
		return nil, nil, nil, nil
	}
	if c.To != "" {
		exports = append(exports, bkclient.CacheOptionsEntry{Type: "registry", Attrs: map[string]string{"ref": c.To, "mode": "max"}})
	}
	for _, ref := range c.From {
		imports = append(imports, bkclient.CacheOptionsEntry{Type: "registry", Attrs: map[string]string{"ref": ref}})
	}
	cfg, err := dockerconfig.Load(e.opts.dockerConfigDir)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("docker config: %w: %w", err, errdefs.ErrInvalidArgument)
	}
	attach = append(attach, authprovider.NewDockerAuthProvider(authprovider.DockerAuthProviderConfig{
		AuthConfigProvider: authprovider.LoadAuthConfig(cfg),
	}))
	return exports, imports, attach, nil
}

// cacheImporting makes every solve of a build function import the
// registry cache: the top-level imports reach only a frontend's solves,
// and a build function solves by itself.
type cacheImporting struct {
	gateway.Client
	imports []gateway.CacheOptionsEntry
}

func (c cacheImporting) Solve(ctx context.Context, req gateway.SolveRequest) (*gateway.Result, error) {
	if len(req.CacheImports) == 0 {
		req.CacheImports = c.imports
	}
	return c.Client.Solve(ctx, req)
}

// withCacheImports wraps c when there are imports.
func withCacheImports(c gateway.Client, imports []bkclient.CacheOptionsEntry) gateway.Client {
	if len(imports) == 0 {
		return c
	}
	gw := make([]gateway.CacheOptionsEntry, len(imports))
	for i, im := range imports {
		gw[i] = gateway.CacheOptionsEntry{Type: im.Type, Attrs: im.Attrs}
	}
	return cacheImporting{Client: c, imports: gw}
}
