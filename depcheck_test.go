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
	rules := map[string][]string{
		// config turns input into values; it knows no engine.
		"config": {mod + "build", mod + "llb", mod + "runtime", mod + "scan", "github.com/moby/buildkit", "github.com/containerd/containerd"},
		// llb is pure: value in, llb.State out; no daemon, no containerd.
		"llb": {mod + "build", mod + "runtime", mod + "scan", "github.com/containerd/containerd/v2/client"},
		// scan knows OSV and versions, never the engine or the runtime.
		"scan": {mod + "build", mod + "llb", mod + "runtime", "github.com/moby/buildkit", "github.com/containerd/containerd"},
		// runtime knows containerd and OCI specs, never the build pipeline.
		"runtime": {mod + "build", mod + "llb", mod + "scan", "github.com/moby/buildkit"},
		// build owns BuildKit and the image store, not runs or verdicts.
		"build": {mod + "runtime", mod + "scan"},
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
