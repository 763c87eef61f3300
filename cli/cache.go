package cli

import (
	"github.com/distribution/reference"
	resolverconfig "github.com/moby/buildkit/util/resolver/config"
	"github.com/skillbuild/skillbuild/config"
	"github.com/skillbuild/skillbuild/engine"
	"github.com/skillbuild/skillbuild/registry"
	"github.com/urfave/cli/v2"
)

// cacheFlags are the flags of a build's registry cache.
type cacheFlags struct {
	from          []string
	to            string
	insecure, cas []string
	dockerConfig  string
}

func cacheFlagsOf(c *cli.Context) cacheFlags {
	return cacheFlags{from: c.StringSlice("cache-from"), to: c.String("cache-to"),
		insecure: c.StringSlice("insecure-registry"), cas: c.StringSlice("registry-ca"), dockerConfig: c.String("docker-config")}
}

// buildCache turns --cache-from/--cache-to (templates with {id} and
// {version}) into the build's registry cache, and the registry flags into
// the engine's registry configuration for the cache's hosts.
func buildCache(f cacheFlags, skill config.Skill) (engine.Cache, []engine.Opt, error) {
	var cache engine.Cache
	var hosts []string
	add := func(tmpl string) (string, error) {
		named, err := registry.ExpandRef(tmpl, skill.ID, skill.Version)
		if err != nil {
			return "", err
		}
		hosts = append(hosts, reference.Domain(named))
		return named.String(), nil
	}
	for _, t := range f.from {
		ref, err := add(t)
		if err != nil {
			return cache, nil, err
		}
		cache.From = append(cache.From, ref)
	}
	if t := f.to; t != "" {
		ref, err := add(t)
		if err != nil {
			return cache, nil, err
		}
		cache.To = ref
	}
	if len(hosts) == 0 {
		return cache, nil, nil
	}
	insecure := map[string]bool{}
	for _, h := range f.insecure {
		insecure[h] = true
	}
	m := map[string]resolverconfig.RegistryConfig{}
	for _, h := range hosts {
		// Explicit: BuildKit would otherwise use plain HTTP for every
		// loopback host.
		plain := insecure[h]
		m[h] = resolverconfig.RegistryConfig{RootCAs: f.cas, PlainHTTP: &plain}
	}
	return cache, []engine.Opt{engine.WithRegistries(m), engine.WithDockerConfigDir(f.dockerConfig)}, nil
}
