package engine

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/opencontainers/go-digest"
)

// cgroupRoot is where cgroupfs is mounted.
const cgroupRoot = "/sys/fs/cgroup"

// buildCgroup is the parent cgroup of every build step of one state root.
// BuildKit's per-step resources carry memory and CPU; the process limit
// has no per-step field, so it sits on this parent, which all steps of
// the (single, locked) build share.
type buildCgroup struct {
	name string // relative to the hierarchy root, e.g. skillbuild-1a2b3c4d
	v2   bool
}

// newBuildCgroup creates the build cgroup of root below base ("" for the
// hierarchy's root).
func newBuildCgroup(base, root string) (*buildCgroup, error) {
	cg := buildCgroupOf(base, root)
	if err := os.MkdirAll(cg.pidsDir(), 0o755); err != nil {
		return nil, fmt.Errorf("create build cgroup %s (needed for the build process limit; skillbuild builds need root): %w", cg.pidsDir(), err)
	}
	if cg.v2 {
		// The build cgroup needs the pids controller from its parent: the
		// hierarchy's root, or a rootless user's delegated cgroup (which
		// has it enabled already; the user may not write the root's).
		os.WriteFile(filepath.Join(cgroupRoot, base, "cgroup.subtree_control"), []byte("+pids"), 0o644) //nolint:errcheck
	}
	return cg, nil
}

// buildCgroupOf names the build cgroup of root below base.
func buildCgroupOf(base, root string) *buildCgroup {
	name := path.Join(base, "skillbuild-"+digest.FromString(root).Encoded()[:12])
	cg := &buildCgroup{name: strings.TrimPrefix(name, "/")}
	_, err := os.Stat(filepath.Join(cgroupRoot, "cgroup.controllers"))
	cg.v2 = err == nil
	return cg
}

func (cg *buildCgroup) pidsDir() string {
	if cg.v2 {
		return filepath.Join(cgroupRoot, cg.name)
	}
	return filepath.Join(cgroupRoot, "pids", cg.name)
}

// setPids bounds the number of processes of all build steps together.
func (cg *buildCgroup) setPids(n int64) error {
	if cg == nil {
		return nil
	}
	v := "max"
	if n > 0 {
		v = strconv.FormatInt(n, 10)
	}
	if err := os.WriteFile(filepath.Join(cg.pidsDir(), "pids.max"), []byte(v), 0o644); err != nil {
		return fmt.Errorf("set build process limit: %w", err)
	}
	return nil
}

// remove deletes the parent and whatever empty step cgroups runc left
// under it, in every hierarchy.
func (cg *buildCgroup) remove() {
	if cg == nil {
		return
	}
	dirs := []string{filepath.Join(cgroupRoot, cg.name)}
	if !cg.v2 {
		entries, _ := os.ReadDir(cgroupRoot)
		dirs = dirs[:0]
		for _, e := range entries {
			dirs = append(dirs, filepath.Join(cgroupRoot, e.Name(), cg.name))
		}
	}
	for _, d := range dirs {
		removeTree(d)
	}
}

// removeTree rmdirs a cgroup directory bottom-up (cgroupfs only allows
// rmdir of empty groups; files inside are virtual).
func removeTree(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if e.IsDir() {
			removeTree(filepath.Join(dir, e.Name()))
		}
	}
	os.Remove(dir) //nolint:errcheck
}
