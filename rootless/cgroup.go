package rootless

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/containerd/errdefs"
	"github.com/moby/sys/mountinfo"
)

// cgroupRoot is where cgroupfs is mounted.
const cgroupRoot = "/sys/fs/cgroup"

// LimitMode says how limits can be enforced for a rootless user.
type LimitMode struct {
	// Cgroups: a cgroup subtree is delegated to the user; runs and builds
	// put their cgroups under Parent and every limit holds.
	Cgroups bool `json:"cgroups"`
	// Parent is the delegated subtree, relative to each hierarchy's root
	// (cgroup v1), e.g. /skillbuild-u1000, or the cgroup of the user's
	// systemd unit (cgroup v2).
	Parent string `json:"parent,omitempty"`
	// Version is the host's cgroup version (1 or 2).
	Version int `json:"cgroup_version"`
	// Reason says why limits fall back to rlimits, when they do.
	Reason string `json:"reason,omitempty"`
}

// DelegatedName is the name of a user's cgroup v1 subtree in every
// hierarchy.
func DelegatedName(uid int) string { return "skillbuild-u" + strconv.Itoa(uid) }

// cgroupV2 reports whether the host runs the unified hierarchy only.
func cgroupV2() bool {
	_, err := os.Stat(filepath.Join(cgroupRoot, "cgroup.controllers"))
	return err == nil
}

// v1Hierarchies lists the mount points of the cgroup v1 hierarchies in
// mountinfo (runc joins a container to every one of them).
func v1Hierarchies(r io.Reader) ([]string, error) {
	ms, err := mountinfo.GetMountsFromReader(r, mountinfo.FSTypeFilter("cgroup"))
	if err != nil {
		return nil, err
	}
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Mountpoint
	}
	return out, nil
}

func hostV1Hierarchies() ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return v1Hierarchies(f)
}

// DetectLimits finds out how uid's limits can be enforced: in the
// delegated cgroup v1 subtree when every hierarchy has one owned by uid;
// on cgroup v2 in the cgroup of the user's systemd unit or the subtree
// root delegated with the daemon inside (detectV2); with rlimits otherwise (Reason says why and what to do). Inside the
// rootless namespaces, where the user is uid 0, uid is still the host's
// (ParentUID).
func DetectLimits(uid int) LimitMode {
	owner := uid
	if InNamespace() && uid == ParentUID() {
		owner = 0
	}
	if cgroupV2() {
		return detectV2(cgroupRoot, uid, owner)
	}
	hs, err := hostV1Hierarchies()
	if err != nil || len(hs) == 0 {
		return LimitMode{Version: 1, Reason: fmt.Sprintf("no cgroup v1 hierarchy found (%v)", err)}
	}
	name := DelegatedName(uid)
	for _, h := range hs {
		if err := ownedBy(filepath.Join(h, name), owner); err != nil {
			return LimitMode{Version: 1, Reason: fmt.Sprintf("no cgroup subtree is delegated to uid %d (%v)", uid, err)}
		}
	}
	return LimitMode{Cgroups: true, Version: 1, Parent: "/" + name}
}

func ownedBy(path string, uid int) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); !ok || int(sys.Uid) != uid {
		return fmt.Errorf("%s does not belong to uid %d", path, uid)
	}
	return nil
}

// DelegateCgroups, run as root, gives uid:gid a cgroup subtree named
// DelegatedName(uid); containers and build steps of the user's rootless
// containerd then get cgroups, and limits, below it. It is idempotent.
//
// On cgroup v1 the subtree is made in every hierarchy: the directory and
// its tasks and cgroup.procs files change owner (cgroup v1 delegates by
// ownership), and the cpuset hierarchy's copy gets its parent's CPUs and
// memory nodes.
//
// On cgroup v2 without systemd it is /sys/fs/cgroup/DelegatedName(uid)
// with a leaf for the daemon (see cgroup2.go): cpu, memory and pids are
// enabled in the root's and the subtree's cgroup.subtree_control; the two
// directories and, in each, the files the kernel lists in
// /sys/kernel/cgroup/delegate (cgroup.procs, cgroup.threads,
// cgroup.subtree_control; memory.oom.group and memory.reclaim where the
// kernel has them) change owner; then the user's running instance moves
// into the leaf, as only root may. The limits hold once it is there
// (LimitMode.Cgroups; Reason says what is missing otherwise). A cgroup v2
// host run by systemd is refused: there the user's unit gets its subtree
// from systemd (Delegate=yes).
func DelegateCgroups(uid, gid int) (LimitMode, error) {
	if cgroupV2() {
		return delegateCgroupsV2(uid, gid)
	}
	hs, err := hostV1Hierarchies()
	if err != nil {
		return LimitMode{}, fmt.Errorf("list cgroup hierarchies: %w", err)
	}
	if len(hs) == 0 {
		return LimitMode{}, fmt.Errorf("no cgroup v1 hierarchy is mounted: %w", errdefs.ErrFailedPrecondition)
	}
	name := DelegatedName(uid)
	for _, h := range hs {
		dir := filepath.Join(h, name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return LimitMode{}, fmt.Errorf("create cgroup %s: %w", dir, err)
		}
		if filepath.Base(h) == "cpuset" || strings.Contains(filepath.Base(h), "cpuset") {
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				v, err := os.ReadFile(filepath.Join(h, f))
				if err != nil {
					return LimitMode{}, fmt.Errorf("read %s: %w", f, err)
				}
				if err := os.WriteFile(filepath.Join(dir, f), v, 0o644); err != nil {
					return LimitMode{}, fmt.Errorf("write %s of %s: %w", f, dir, err)
				}
			}
		}
		for _, p := range []string{dir, filepath.Join(dir, "tasks"), filepath.Join(dir, "cgroup.procs")} {
			if err := os.Chown(p, uid, gid); err != nil {
				return LimitMode{}, fmt.Errorf("hand %s to uid %d: %w", p, uid, err)
			}
		}
	}
	return LimitMode{Cgroups: true, Version: 1, Parent: "/" + name}, nil
}

// delegateCgroupsV2 is DelegateCgroups on a cgroup v2 host.
func delegateCgroupsV2(uid, gid int) (LimitMode, error) {
	if systemdBooted() {
		return LimitMode{}, fmt.Errorf("systemd manages this host's cgroups (cgroup v2), and a subtree made beside its own is not delegated by it: "+
			"give uid %d a systemd user manager (as root: loginctl enable-linger USER), then as the user `skillbuild rootless setup` installs a unit with Delegate=yes: %w", uid, errdefs.ErrFailedPrecondition)
	}
	list, _ := os.ReadFile(kernelDelegateList)
	if err := delegateV2(cgroupRoot, uid, gid, delegateFiles(list)); err != nil {
		return LimitMode{}, err
	}
	if _, err := adoptV2(cgroupRoot, uid); err != nil {
		return LimitMode{}, err
	}
	return detectV2(cgroupRoot, uid, uid), nil
}

// UndelegateCgroups removes uid's delegated subtree from every hierarchy
// (cgroup v1) or from the unified one (cgroup v2). It fails while a
// process still lives in it.
func UndelegateCgroups(uid int) error {
	if cgroupV2() {
		if err := removeCgroupTree(filepath.Join(cgroupRoot, DelegatedName(uid))); err != nil {
			return fmt.Errorf("remove delegated cgroup (stop the user's rootless containerd first): %w: %w", err, errdefs.ErrFailedPrecondition)
		}
		return nil
	}
	hs, err := hostV1Hierarchies()
	if err != nil {
		return fmt.Errorf("list cgroup hierarchies: %w", err)
	}
	var errs []string
	for _, h := range hs {
		if err := removeCgroupTree(filepath.Join(h, DelegatedName(uid))); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("remove delegated cgroups: %s: %w", strings.Join(errs, "; "), errdefs.ErrFailedPrecondition)
	}
	return nil
}

// removeCgroupTree rmdirs a cgroup bottom-up (cgroupfs only removes empty
// groups; the files inside are virtual).
func removeCgroupTree(dir string) error {
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := removeCgroupTree(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	if err := os.Remove(dir); err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
}
