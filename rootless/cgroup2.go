package rootless

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// cgroup v2. systemd delegates by Delegate=yes: the unit's cgroup (and its
// cgroup.procs, cgroup.subtree_control, cgroup.threads) belongs to the
// user, who may create cgroups below it and enable controllers in them.
// skillbuild's unit (Unit) asks for it. On its way to becoming RootlessKit
// the unit's main process (Foreground) moves itself into a leaf,
// supervisorCgroup, and enables the controllers limits need in the unit's
// cgroup (cgroup v2 allows no process in a cgroup whose children have
// controllers); containers then get cgroups beside that leaf, as
// UNIT_CGROUP/NAMESPACE/ID.
//
// Builds do not use it: the embedded BuildKit's runc starts build steps
// from the skillbuild process, which lives outside the unit's cgroup, and
// cgroup v2 lets a process move only between cgroups whose common
// ancestor the mover may write (user@UID.service's parent is root's).
// Build steps keep the rlimit fallback on cgroup v2 and say so.

// supervisorCgroup is the leaf of the unit's cgroup that RootlessKit and
// containerd live in.
const supervisorCgroup = "supervisor"

// v2Controllers are the controllers run limits need.
var v2Controllers = []string{"cpu", "memory", "pids"}

// unitCgroups are where systemd puts the user unit's cgroup: below
// app.slice (systemd 247 and later, by the default slice of user units)
// or directly below user@UID.service.
func unitCgroups(uid int) []string {
	svc := fmt.Sprintf("/user.slice/user-%d.slice/user@%d.service", uid, uid)
	return []string{svc + "/app.slice/" + UnitName, svc + "/" + UnitName}
}

// detectV2 finds the delegated cgroup of uid's unit under the cgroup2
// mount root: owned by owner, with every controller of v2Controllers
// enabled for its children.
func detectV2(root string, uid, owner int) LimitMode {
	var why []string
	for _, cg := range unitCgroups(uid) {
		dir := filepath.Join(root, cg)
		if _, err := os.Stat(dir); err != nil {
			why = append(why, err.Error())
			continue
		}
		if err := ownedBy(dir, owner); err != nil {
			return LimitMode{Version: 2, Reason: fmt.Sprintf("%v: the unit's cgroup is not delegated (Delegate=yes; rerun `skillbuild rootless setup` to rewrite the unit)", err)}
		}
		b, err := os.ReadFile(filepath.Join(dir, "cgroup.subtree_control"))
		if err != nil {
			return LimitMode{Version: 2, Reason: err.Error()}
		}
		on := strings.Fields(string(b))
		for _, c := range v2Controllers {
			if !slices.Contains(on, c) {
				return LimitMode{Version: 2, Reason: fmt.Sprintf("controller %s is not enabled in %s (systemd delegates only the controllers user@.service has: see systemd's cgroup delegation docs)", c, dir)}
			}
		}
		return LimitMode{Cgroups: true, Version: 2, Parent: cg}
	}
	return LimitMode{Version: 2, Reason: "no systemd unit of skillbuild's rootless containerd runs with a delegated cgroup (" + strings.Join(why, "; ") +
		"): `skillbuild rootless setup` installs it where a systemd user manager runs"}
}

// ownCgroupV2 is the calling process's cgroup v2 path in /proc/self/cgroup
// ("0::PATH").
func ownCgroupV2(r io.Reader) (string, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if p, ok := strings.CutPrefix(sc.Text(), "0::"); ok {
			return p, nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", fmt.Errorf("no cgroup v2 entry")
}

// evacuateV2 moves pid from the unit's cgroup cg (under root) into its
// supervisorCgroup leaf, then enables v2Controllers (those cg has) for
// cg's children. It does nothing outside skillbuild's unit.
func evacuateV2(root, cg string, pid int) error {
	if filepath.Base(cg) != UnitName {
		return nil
	}
	dir := filepath.Join(root, cg)
	leaf := filepath.Join(dir, supervisorCgroup)
	if err := os.MkdirAll(leaf, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", leaf, err)
	}
	if err := os.WriteFile(filepath.Join(leaf, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
		return fmt.Errorf("move pid %d to %s: %w", pid, leaf, err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.controllers"))
	if err != nil {
		return err
	}
	have := strings.Fields(string(b))
	var enable []string
	for _, c := range v2Controllers {
		if slices.Contains(have, c) {
			enable = append(enable, "+"+c)
		}
	}
	if len(enable) == 0 {
		return fmt.Errorf("%s has none of the controllers %v (systemd delegated none)", dir, v2Controllers)
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte(strings.Join(enable, " ")), 0); err != nil {
		return fmt.Errorf("enable %v in %s: %w", enable, dir, err)
	}
	return nil
}

// enterUnitCgroupV2 is evacuateV2 for the calling process on a cgroup v2
// host (a no-op elsewhere).
func enterUnitCgroupV2() error {
	if !cgroupV2() {
		return nil
	}
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return err
	}
	defer f.Close()
	cg, err := ownCgroupV2(f)
	if err != nil {
		return err
	}
	return evacuateV2(cgroupRoot, cg, os.Getpid())
}
