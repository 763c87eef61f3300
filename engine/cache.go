package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
	dockerconfig "github.com/docker/cli/cli/config"
	bkclient "github.com/moby/buildkit/client"
	"github.com/moby/buildkit/client/llb"
	gateway "github.com/moby/buildkit/frontend/gateway/client"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/session/auth/authprovider"
	resolverconfig "github.com/moby/buildkit/util/resolver/config"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	sbllb "github.com/skillbuild/skillbuild/llb"
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

// withCacheAnchors makes the steps whose outputs the build reads but the
// image does not hold (the resolve step's report, the layer check's file
// lists) ancestors of root, so that the registry cache exporter, which
// exports only what the result was made from, exports them too: a runner
// with an empty --root then answers them from the registry instead of
// resolving against the index and unpacking the base to list the layers.
// Each is anchored as the diff of its output with itself, which BuildKit
// solves to nothing: root's files and layers are unchanged (a merge of
// merges is flattened).
func withCacheAnchors(root llb.State, outputs ...llb.State) llb.State {
	parts := []llb.State{root}
	for _, o := range outputs {
		if o.Output() == nil {
			continue
		}
		parts = append(parts, llb.Diff(o, o, llb.WithCustomName("keep in the build cache")))
	}
	if len(parts) == 1 {
		return root
	}
	return llb.Merge(parts, llb.WithCustomName("image root and the build cache's other steps"))
}

// withHistory gives the image config cfg a history entry for every layer
// the skill adds to the base, written from the install graph: the venv,
// each install layer (two when a layer also installs wheels built from
// source: one step each), and the lock file (its directory, then the
// file). Without them BuildKit describes each layer by how its result came
// to be ("mount / from exec ..." when a step ran, "imported sha256:..."
// when it came from the registry cache), so a build answered from the
// cache would make another image than the same build run cold. Base
// layers without history get blank entries, so that the skill's entries
// line up with the skill's layers. An entry too many is harmless (BuildKit
// marks the last ones as empty layers); one too few would let BuildKit's
// own description back in, so the graph's layers are counted generously.
func withHistory(cfg, baseCfg []byte, in sbllb.Installed) ([]byte, error) {
	var img, base ocispec.Image
	if err := json.Unmarshal(cfg, &img); err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	if err := json.Unmarshal(baseCfg, &base); err != nil {
		return nil, fmt.Errorf("base image config: %w", err)
	}
	epoch := time.Unix(0, 0).UTC()
	entry := func(by string) ocispec.History {
		return ocispec.History{Created: &epoch, CreatedBy: by, Comment: "skillbuild"}
	}
	var history []ocispec.History
	layers := 0
	for _, h := range base.History {
		if !h.EmptyLayer {
			if layers == len(base.RootFS.DiffIDs) {
				continue // more entries than layers: drop the extra ones
			}
			layers++
		}
		history = append(history, h)
	}
	for ; layers < len(base.RootFS.DiffIDs); layers++ {
		history = append(history, entry(""))
	}
	history = append(history, entry(sbllb.StepVenv+" "+sbllb.VenvDir))
	for _, l := range in.Locks {
		var wheels, sdists []string
		for _, d := range l {
			if d.Sdist {
				sdists = append(sdists, d.Name+"=="+d.Version)
			} else {
				wheels = append(wheels, d.Name+"=="+d.Version)
			}
		}
		if len(wheels) > 0 {
			history = append(history, entry(sbllb.StepInstall+strings.Join(wheels, " ")))
		}
		if len(sdists) > 0 {
			history = append(history, entry(sbllb.StepInstall+strings.Join(sdists, " ")+" (built from source)"))
		}
	}
	history = append(history, entry("mkdir "+sbllb.WorkDir), entry("write "+sbllb.LockFile))
	img.History = history
	return json.Marshal(img)
}

// cacheError explains a failed build whose registry cache was the cause,
// as the registry package explains a push: a cache registry that cannot
// be reached is temporary (errdefs.ErrUnavailable, exit 75); one that
// refuses the credentials names itself and the Docker config file to fix.
// BuildKit's errors arrive as text, so they are recognised by it; any
// other error is returned as it is.
func (e *Engine) cacheError(err error, c Cache) error {
	if err == nil || c.empty() {
		return err
	}
	msg := err.Error()
	for _, ref := range append([]string{c.To}, c.From...) {
		named, perr := reference.ParseNormalizedNamed(ref)
		if ref == "" || perr != nil {
			continue
		}
		host := reference.Domain(named)
		if !strings.Contains(msg, host) {
			continue
		}
		switch {
		case containsAny(msg, "connection refused", "no such host", "i/o timeout", "connection reset", "network is unreachable"):
			return fmt.Errorf("registry cache %s: registry %s is unreachable; try again later: %w: %w", ref, host, err, errdefs.ErrUnavailable)
		case containsAny(msg, "401 Unauthorized", "403 Forbidden", "unauthorized: ", "denied: "):
			cfg := e.opts.dockerConfigDir
			if cfg == "" {
				cfg = dockerconfig.Dir()
			}
			return fmt.Errorf("registry cache %s: registry %s refused the credentials for %s in %s (or there are none); run `docker login %s` or fix that entry: %w: %w",
				ref, host, host, filepath.Join(cfg, dockerconfig.ConfigFileName), host, err, errdefs.ErrPermissionDenied)
		}
	}
	return err
}

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// cacheImportVertex starts the name of the vertex in which BuildKit reads
// a registry cache's manifest.
const cacheImportVertex = "importing cache manifest from "

// noteCacheMiss turns the failure of a cache import whose reference does
// not exist yet (the first build that exports to it) into a note: the
// cache only accelerates, the build goes on without it, and an ERROR line
// in the progress would read like the build's failure.
func noteCacheMiss(st *bkclient.SolveStatus) *bkclient.SolveStatus {
	var out *bkclient.SolveStatus
	for i, v := range st.Vertexes {
		if !strings.HasPrefix(v.Name, cacheImportVertex) || !strings.Contains(v.Error, "not found") {
			continue
		}
		if out == nil {
			cp := *st
			cp.Vertexes = slices.Clone(st.Vertexes)
			out = &cp
		}
		nv := *v
		nv.Name = v.Name + " (none there yet: building without it)"
		nv.Error = ""
		out.Vertexes[i] = &nv
	}
	if out == nil {
		return st
	}
	return out
}
