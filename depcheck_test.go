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
		"config": {mod + "engine", mod + "llb", mod + "runtime", mod + "scan", mod + "store", mod + "indexproxy", bk, ctd},
		// lock is a value: the resolved set, parsed and rendered.
		"lock": {mod + "config", mod + "engine", mod + "llb", mod + "runtime", mod + "scan", mod + "store", bk, ctd},
		// labels are names only.
		"labels": {mod, bk, ctd},
		// llb is pure: value in, llb.State out; no daemon, no containerd.
		"llb": {mod + "engine", mod + "runtime", mod + "scan", mod + "store", mod + "indexproxy", ctdC, solver, control},
		// scan knows OSV, versions and verdicts, never the engine or the runtime.
		"scan": {mod + "engine", mod + "llb", mod + "runtime", mod + "store", mod + "indexproxy", bk, ctd},
		// runtime knows containerd tasks and OCI specs, never the build pipeline.
		"runtime": {mod + "engine", mod + "llb", mod + "scan", mod + "store", mod + "indexproxy", bk},
		// store is containerd's image store: no BuildKit at all, so run, ls,
		// rm and base never link the solver.
		"store": {mod + "engine", mod + "llb", mod + "runtime", mod + "scan", mod + "indexproxy", bk},
		// the index proxy is the allow-list; it knows no build or image.
		"indexproxy": {mod + "config", mod + "engine", mod + "llb", mod + "runtime", mod + "scan", mod + "store", ctdC, solver, control, workerBK},
		// spec digests a skill's build inputs: a value, no daemon.
		"spec": {mod + "engine", mod + "llb", mod + "runtime", mod + "scan", mod + "store", bk, ctd},
		// reuse answers an unchanged skill from containerd alone: no BuildKit,
		// so it can run before (instead of) starting an engine.
		"reuse": {mod + "engine", mod + "llb", mod + "runtime", mod + "indexproxy", bk},
		// registry moves images between containerd and registries: no
		// BuildKit, so pull and run on a host that only runs skills never
		// link the solver.
		"registry": {mod + "engine", mod + "llb", mod + "runtime", mod + "scan", mod + "indexproxy", mod + "cli", bk},
		// attest writes and reads statements in a content store.
		"attest": {mod + "engine", mod + "llb", mod + "runtime", mod + "scan", mod + "store", mod + "indexproxy", mod + "registry", bk, ctdC},
		// server is the HTTP side of the API only: the operations come from
		// its caller (the CLI), so it links neither engine nor containerd.
		"server": {mod + "config", mod + "engine", mod + "llb", mod + "runtime", mod + "scan", mod + "store", mod + "cli", bk, ctd},
		// pep440 is versions and specifiers: a leaf every other package may use.
		"pep440": {mod, bk, ctd},
		// pep508 is requirements and markers over pep440 only.
		"pep508": {mod + "config", mod + "engine", mod + "llb", mod + "lock", mod + "runtime", mod + "scan", mod + "store",
			mod + "indexproxy", mod + "resolver", mod + "pydist", bk, ctd},
		// pydist reads what an index serves (pages, wheels, metadata): bytes in,
		// values out, no network of its own.
		"pydist": {mod + "config", mod + "engine", mod + "llb", mod + "runtime", mod + "scan", mod + "store", mod + "indexproxy",
			mod + "resolver", bk, ctd, "net/http"},
		// the builtin resolver reaches the network only through the transport
		// its caller gives it (the build's index proxy), and knows no engine,
		// graph, image or configuration file.
		"resolver": {mod + "config", mod + "engine", mod + "llb", mod + "runtime", mod + "scan", mod + "store", mod + "indexproxy",
			mod + "cli", mod + "server", bk, ctd},
		// engine owns BuildKit, not runs or verdicts.
		"engine": {mod + "runtime", mod + "scan", mod + "cli"},
	}
	for pkg, banned := range rules {
		t.Run(pkg, func(t *testing.T) {
			t.Parallel()
			out, err := exec.Command("go", "list", "-deps", "./"+pkg).Output()
			require.NoError(t, err)
			for _, dep := range strings.Fields(string(out)) {
				for _, b := range banned {
					assert.False(t, dep == b || strings.HasPrefix(dep, b+"/"), "%s depends on %s", pkg, dep)
				}
			}
		})
	}
}
