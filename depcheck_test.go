package main

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestArchitectureBoundaries keeps the package boundaries of
// ARCHITECTURE.md honest (like go-containerregistry's depcheck): each
// package lists what it must never depend on, directly or not.
func TestArchitectureBoundaries(t *testing.T) {
	t.Parallel()
	const mod = "github.com/skillbuild/skillbuild/"
	const (
		bk       = "github.com/moby/buildkit"
		ctd      = "github.com/containerd/containerd"
		ctdC     = "github.com/containerd/containerd/v2/client"
		solver   = "github.com/moby/buildkit/solver/llbsolver"
		control  = "github.com/moby/buildkit/control"
		workerBK = "github.com/moby/buildkit/worker"
	)
	rules := map[string][]string{
		// config turns input into values; it knows no engine.
		"config": {mod + "engine", mod + "llb", mod + "runtime", mod + "scan", mod + "store", mod + "internal/indexproxy", bk, ctd},
		// lock is a value: the resolved set, parsed and rendered.
		"lock": {mod + "config", mod + "engine", mod + "llb", mod + "runtime", mod + "scan", mod + "store", bk, ctd},
		// labels are names only.
		"labels": {mod, bk, ctd},
		// llb is pure: value in, llb.State out; no daemon, no containerd.
		"llb": {mod + "engine", mod + "runtime", mod + "scan", mod + "store", mod + "internal/indexproxy", ctdC, solver, control},
		// scan knows OSV, versions and verdicts, never the engine or the runtime.
		"scan": {mod + "engine", mod + "llb", mod + "runtime", mod + "store", mod + "internal/indexproxy", bk, ctd},
		// runtime knows containerd tasks and OCI specs, never the build pipeline.
		"runtime": {mod + "engine", mod + "llb", mod + "scan", mod + "store", mod + "internal/indexproxy", bk},
		// store is containerd's image store: no BuildKit at all, so run, ls,
		// rm and base never link the solver.
		"store": {mod + "engine", mod + "llb", mod + "runtime", mod + "scan", mod + "internal/indexproxy", bk},
		// the index proxy is the allow-list; it knows no build or image.
		"internal/indexproxy": {mod + "config", mod + "engine", mod + "llb", mod + "runtime", mod + "scan", mod + "store", ctdC, solver, control, workerBK},
		// spec digests a skill's build inputs: a value, no daemon.
		"spec": {mod + "engine", mod + "llb", mod + "runtime", mod + "scan", mod + "store", bk, ctd},
		// reuse answers an unchanged skill from containerd alone: no BuildKit,
		// so it can run before (instead of) starting an engine.
		"reuse": {mod + "engine", mod + "llb", mod + "runtime", mod + "internal/indexproxy", bk},
		// registry moves images between containerd and registries: no
		// BuildKit, so pull and run on a host that only runs skills never
		// link the solver.
		"registry": {mod + "engine", mod + "llb", mod + "runtime", mod + "scan", mod + "internal/indexproxy", mod + "cli", bk},
		// signature is the format, the keys and the checks: a content
		// store, no registry client, no daemon client.
		"signature": {mod + "engine", mod + "llb", mod + "runtime", mod + "scan", mod + "store", mod + "internal/indexproxy", mod + "registry", mod + "cli", mod + "server", bk, ctdC},
		// attest writes and reads statements in a content store.
		"internal/attest": {mod + "engine", mod + "llb", mod + "runtime", mod + "scan", mod + "store", mod + "internal/indexproxy", mod + "registry", bk, ctdC},
		// server is the HTTP side of the API only: the operations are the
		// service's, given by its caller, and the documents skill/api's, so
		// it links neither engine, runtime nor containerd.
		"server": {mod + "engine", mod + "llb", mod + "runtime", mod + "store", mod + "registry", mod + "reuse", mod + "internal/attest", mod + "internal/indexproxy", mod + "skill$", mod + "cli", bk, ctd},
		// skill/api holds the documents: values that both faces and the
		// service share, light enough for the server.
		"skill/api": {mod + "engine", mod + "llb", mod + "runtime", mod + "store", mod + "registry", mod + "reuse", mod + "internal/attest", mod + "internal/indexproxy", mod + "skill$", mod + "cli", mod + "server", bk, ctd},
		// skill/client is the API's Go client (the CLI's --host): HTTP and
		// the documents, nothing that builds, runs or stores.
		"skill/client": {mod + "engine", mod + "llb", mod + "runtime", mod + "store", mod + "registry", mod + "reuse", mod + "internal/attest", mod + "internal/indexproxy", mod + "layers", mod + "signature", mod + "skill$", mod + "cli", mod + "server", bk, ctd},
		// layers checks images from their blobs: the build before it tags
		// and admission before a run share it, so it links no BuildKit.
		"layers": {mod + "config", mod + "engine", mod + "llb", mod + "runtime", mod + "scan", mod + "store", mod + "skill", bk, ctdC},
		// the service is below both faces.
		"skill": {mod + "cli", mod + "server"},
		// pep440 is versions and specifiers: a leaf every other package may use.
		"pep440": {mod, bk, ctd},
		// pep508 is requirements and markers over pep440 only.
		"pep508": {mod + "config", mod + "engine", mod + "llb", mod + "lock", mod + "runtime", mod + "scan", mod + "store",
			mod + "internal/indexproxy", mod + "resolver", mod + "pydist", bk, ctd},
		// pydist reads what an index serves (pages, wheels, metadata): bytes in,
		// values out, no network of its own.
		"pydist": {mod + "config", mod + "engine", mod + "llb", mod + "runtime", mod + "scan", mod + "store", mod + "internal/indexproxy",
			mod + "resolver", bk, ctd, "net/http"},
		// the builtin resolver reaches the network only through the transport
		// its caller gives it (the build's index proxy), and knows no engine,
		// graph, image or configuration file.
		"resolver": {mod + "config", mod + "engine", mod + "llb", mod + "runtime", mod + "scan", mod + "store", mod + "internal/indexproxy",
			mod + "cli", mod + "server", mod + "skill", bk, ctd},
		// engine owns BuildKit, not runs or verdicts.
		"engine": {mod + "runtime", mod + "scan", mod + "cli"},
	}
	// A rule naming a package of this module that does not exist (moved,
	// renamed) would hold for nothing.
	out, err := exec.Command("go", "list", "./...").Output()
	require.NoError(t, err)
	ours := map[string]bool{}
	for _, p := range strings.Fields(string(out)) {
		ours[p] = true
	}
	for pkg, banned := range rules {
		for _, b := range banned {
			if p, isOurs := strings.CutPrefix(strings.TrimSuffix(b, "$"), mod); isOurs && p != "" {
				assert.True(t, ours[mod+p], "rule %s bans %s, which is no package of this module", pkg, b)
			}
		}
	}
	for pkg, banned := range rules {
		t.Run(pkg, func(t *testing.T) {
			t.Parallel()
			out, err := exec.Command("go", "list", "-deps", "./"+pkg).Output()
			require.NoError(t, err)
			for _, dep := range strings.Fields(string(out)) {
				for _, b := range banned {
					// A trailing $ bans the package itself, not those below it.
					exact, isExact := strings.CutSuffix(b, "$")
					hit := dep == exact || (!isExact && strings.HasPrefix(dep, b+"/"))
					assert.False(t, hit, "%s depends on %s", pkg, dep)
				}
			}
		})
	}
}

// TestFacesAreThin: the command line imports, of this module, only the
// service, its documents, the server it starts, the configuration it
// parses and the rootless set-up it performs; the pipeline is the
// service's.
func TestFacesAreThin(t *testing.T) {
	t.Parallel()
	const mod = "github.com/skillbuild/skillbuild/"
	allowed := map[string][]string{
		"cli":    {"config", "rootless", "server", "skill", "skill/api", "skill/client"},
		"server": {"skill/api"},
		// The client speaks HTTP and the documents, nothing else of ours.
		"skill/client": {"skill/api"},
	}
	for pkg, ok := range allowed {
		out, err := exec.Command("go", "list", "-f", `{{join .Imports "\n"}}`, "./"+pkg).Output()
		require.NoError(t, err)
		for _, imp := range strings.Fields(string(out)) {
			rel, ours := strings.CutPrefix(imp, mod)
			if !ours {
				continue
			}
			assert.Contains(t, ok, rel, "%s imports %s: a face calls the service (package skill), nothing below it", pkg, imp)
		}
	}
}
