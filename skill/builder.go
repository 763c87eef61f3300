package skill

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/containerd/errdefs"
	"github.com/skillbuild/skillbuild/engine"
	"github.com/skillbuild/skillbuild/registry"
)

// Builder says where builds run.
type Builder struct {
	// Name is engine.BuilderEmbedded (BuildKit in-process with
	// containerd's worker; the default), engine.BuilderEmbeddedOCI
	// (in-process, runc, no containerd), or a buildkitd address
	// (tcp://HOST:PORT, unix:///PATH).
	Name string
	// CA, Cert and Key are the TLS files of a tcp:// builder.
	CA, Cert, Key string
	// BaseArchive or BaseLayout give the base image to builders without
	// containerd.
	BaseArchive, BaseLayout string
}

// embedded reports whether builds run on the default builder, whose image
// store is the local containerd.
func (b Builder) embedded() bool {
	return b.Name == "" || b.Name == engine.BuilderEmbedded
}

// engineOpts converts the builder into engine options.
func (b Builder) engineOpts() []engine.Opt {
	opts := []engine.Opt{engine.WithBuilder(b.Name), engine.WithBuilderTLS(b.CA, b.Cert, b.Key)}
	switch {
	case b.BaseArchive != "":
		opts = append(opts, engine.WithBaseArchive(b.BaseArchive))
	case b.BaseLayout != "":
		opts = append(opts, engine.WithBaseLayout(b.BaseLayout))
	}
	return opts
}

// Registry says how registries are reached.
type Registry struct {
	// DockerConfig is the directory of the Docker config.json with
	// credentials (default ~/.docker).
	DockerConfig string
	// CAFiles are PEM CA certificates trusted besides the system's.
	CAFiles []string
	// Insecure are HOST[:PORT]s reached over plain HTTP.
	Insecure []string
}

// registryClient is the registry client of the service's settings.
func (s *Service) registryClient() (*registry.Client, error) {
	r := s.opts.registry
	opts := []registry.Opt{registry.WithDockerConfigDir(r.DockerConfig), registry.WithInsecureHosts(r.Insecure...)}
	for _, f := range r.CAFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("--registry-ca: %w: %w", err, errdefs.ErrInvalidArgument)
		}
		opts = append(opts, registry.WithRootCAs(b))
	}
	return registry.New(opts...)
}

// newEngine starts a builder for the service's settings. The embedded
// builder shares the service's containerd connection (whose first use
// sweeps what dead runs left behind).
func (s *Service) newEngine(ctx context.Context, extra ...engine.Opt) (*engine.Engine, error) {
	opts := []engine.Opt{engine.WithAddress(s.opts.address), engine.WithNamespace(s.opts.namespace),
		engine.WithRoot(s.opts.root), engine.WithLockWait(10*time.Minute, func() {
			fmt.Fprintf(s.opts.log, "waiting for another skillbuild process using %s (up to 10m)...\n", s.opts.root)
		})}
	if s.opts.builder.embedded() {
		client, err := s.containerd(ctx, sweepFirst)
		if err != nil {
			return nil, err
		}
		opts = append(opts, engine.WithContainerd(client))
	}
	opts = append(append(opts, s.opts.builder.engineOpts()...), extra...)
	return engine.New(ctx, append(opts, s.engineRootlessOpts()...)...)
}

// Builder names (Builder.Name).
const (
	BuilderEmbedded    = engine.BuilderEmbedded
	BuilderEmbeddedOCI = engine.BuilderEmbeddedOCI
)
