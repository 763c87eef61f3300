package rootless

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/containerd/errdefs"
)

// cgroup v2 delegates a subtree to a user when the user owns its
// directory and the files the kernel lists in /sys/kernel/cgroup/delegate
// (cgroup.procs, cgroup.threads, cgroup.subtree_control, and on newer
// kernels memory.oom.group and memory.reclaim): the user may then create
// cgroups below it, enable controllers in them and move processes between
// them. Two rules of the kernel shape what follows (cgroup-v2.rst,
// "Delegation"):
//
//   - Containment: moving a process needs write access to cgroup.procs of
//     the common ancestor of its old and new cgroup, so only root can move
//     a process into a delegated subtree; the user's daemon must be inside
//     before its containers can be put in cgroups below it.
//   - No internal processes: a cgroup that enables controllers for its
//     children holds no process itself, so the daemon lives in a leaf,
//     supervisorCgroup, beside the containers' cgroups.
//
// There are two ways to get such a subtree:
//
// With systemd, Delegate=yes on skillbuild's user unit (Unit): systemd
// creates the unit's cgroup, starts the unit's main process in it and
// hands both over. On its way to becoming RootlessKit that process
// (Foreground) moves itself into the supervisorCgroup leaf and enables
// the controllers for containers (evacuateV2); containers then get
// cgroups as UNIT_CGROUP/NAMESPACE/ID.
//
// Without systemd, root runs `rootless setup --user NAME` (DelegateCgroups):
// it creates /DelegatedName(uid) and its supervisorCgroup leaf, enables
// v2Controllers down to it and in it, hands both over, and moves the
// user's running instance (RootlessKit and every process of its user
// namespace) into the leaf. An instance started later, from outside the
// subtree, cannot enter it by itself: setup --user moves it in again.
//
// Builds use the same subtree: BuildKit's steps are containerd tasks,
// started by the daemon's shims inside it, and the engine puts their
// cgroups below it (engine.WithCgroupBase).

// supervisorCgroup is the leaf of a delegated cgroup that RootlessKit and
// containerd live in.
const supervisorCgroup = "supervisor"

// v2Controllers are the controllers run and build limits need.
var v2Controllers = []string{"cpu", "memory", "pids"}

// defaultDelegateFiles are the files a delegatee owns besides the
// directory when the kernel does not list them (before Linux 5.x added
// /sys/kernel/cgroup/delegate).
var defaultDelegateFiles = []string{"cgroup.procs", "cgroup.threads", "cgroup.subtree_control"}

// kernelDelegateList is where the kernel lists the files of a cgroup a
// delegatee should own.
const kernelDelegateList = "/sys/kernel/cgroup/delegate"

// unitCgroups are where systemd puts the user unit's cgroup: below
// app.slice (systemd 247 and later, by the default slice of user units)
// or directly below user@UID.service.
func unitCgroups(uid int) []string {
	svc := fmt.Sprintf("/user.slice/user-%d.slice/user@%d.service", uid, uid)
	return []string{svc + "/app.slice/" + UnitName, svc + "/" + UnitName}
}

// detectV2 finds uid's delegated cgroup under the cgroup2 mount root: the
// cgroup of uid's systemd unit, else the subtree `setup --user` made with
// the daemon inside it. Either must be owned by owner and enable every
// controller of v2Controllers for its children.
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
		if err := controllersOn(dir); err != nil {
			return LimitMode{Version: 2, Reason: err.Error() + " (systemd delegates only the controllers user@.service has: see systemd's cgroup delegation docs)"}
		}
		return LimitMode{Cgroups: true, Version: 2, Parent: cg}
	}
	cg := "/" + DelegatedName(uid)
	dir := filepath.Join(root, cg)
	if _, err := os.Stat(dir); err != nil {
		return LimitMode{Version: 2, Reason: "no cgroup is delegated to uid " + strconv.Itoa(uid) + ": neither a systemd unit of skillbuild's rootless containerd runs with Delegate=yes (" + strings.Join(why, "; ") +
			") nor did root delegate " + cg + ": where a systemd user manager runs, `skillbuild rootless setup` as the user installs the unit; without systemd, root runs `skillbuild rootless setup --user USER`"}
	}
	leaf := filepath.Join(dir, supervisorCgroup)
	for _, d := range []string{dir, leaf} {
		if err := ownedBy(d, owner); err != nil {
			return LimitMode{Version: 2, Reason: fmt.Sprintf("%v: rerun `skillbuild rootless setup --user USER` as root", err)}
		}
	}
	if err := controllersOn(dir); err != nil {
		return LimitMode{Version: 2, Reason: err.Error() + ": rerun `skillbuild rootless setup --user USER` as root"}
	}
	if procs, err := os.ReadFile(filepath.Join(leaf, "cgroup.procs")); err != nil || len(bytes.TrimSpace(procs)) == 0 {
		return LimitMode{Version: 2, Reason: fmt.Sprintf("%s is delegated to uid %d, but its rootless containerd does not run in it, and cgroup v2 lets only root move a process into a delegated cgroup: "+
			"start it (`skillbuild rootless start`), then as root `skillbuild rootless setup --user USER` moves it in (again after every start)", cg, uid)}
	}
	return LimitMode{Cgroups: true, Version: 2, Parent: cg}
}

// controllersOn checks that dir enables every controller of v2Controllers
// for its children.
func controllersOn(dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.subtree_control"))
	if err != nil {
		return err
	}
	on := strings.Fields(string(b))
	for _, c := range v2Controllers {
		if !slices.Contains(on, c) {
			return fmt.Errorf("controller %s is not enabled in %s", c, dir)
		}
	}
	return nil
}

// delegateFiles parses the kernel's list of a delegatee's files (one
// name per line); an empty or missing list gives defaultDelegateFiles.
func delegateFiles(list []byte) []string {
	names := strings.Fields(string(list))
	if len(names) == 0 {
		return defaultDelegateFiles
	}
	return names
}

// enableControllers enables cs in dir's cgroup.subtree_control, those that
// are not enabled yet, and fails unless all of them are then.
func enableControllers(dir string, cs []string) error {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.subtree_control"))
	if err != nil {
		return err
	}
	on := strings.Fields(string(b))
	var add []string
	for _, c := range cs {
		if !slices.Contains(on, c) {
			add = append(add, "+"+c)
		}
	}
	if len(add) == 0 {
		return nil
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte(strings.Join(add, " ")), 0); err != nil {
		return fmt.Errorf("enable %s in %s: %w", strings.Join(add, " "), dir, err)
	}
	return nil
}

// delegateV2 creates uid's subtree DelegatedName(uid) under the cgroup2
// root and its supervisorCgroup leaf, enables v2Controllers in the root
// (so the subtree has them) and in the subtree (so containers below it
// do), and hands both cgroups to uid:gid: each directory and, of the
// files, those in files that it has. It is idempotent.
func delegateV2(root string, uid, gid int, files []string) error {
	b, err := os.ReadFile(filepath.Join(root, "cgroup.controllers"))
	if err != nil {
		return fmt.Errorf("read the cgroup controllers: %w", err)
	}
	have := strings.Fields(string(b))
	for _, c := range v2Controllers {
		if !slices.Contains(have, c) {
			return fmt.Errorf("the kernel offers no %s controller (cgroup.controllers: %s): limits need %v: %w", c, strings.TrimSpace(string(b)), v2Controllers, errdefs.ErrFailedPrecondition)
		}
	}
	if err := enableControllers(root, v2Controllers); err != nil {
		return err
	}
	dir := filepath.Join(root, DelegatedName(uid))
	leaf := filepath.Join(dir, supervisorCgroup)
	if err := os.MkdirAll(leaf, 0o755); err != nil {
		return fmt.Errorf("create cgroup %s: %w", leaf, err)
	}
	if err := enableControllers(dir, v2Controllers); err != nil {
		return err
	}
	for _, d := range []string{dir, leaf} {
		if err := os.Chown(d, uid, gid); err != nil {
			return fmt.Errorf("hand %s to uid %d: %w", d, uid, err)
		}
		for _, f := range files {
			p := filepath.Join(d, f)
			if err := os.Chown(p, uid, gid); err != nil && !os.IsNotExist(err) {
				return fmt.Errorf("hand %s to uid %d: %w", p, uid, err)
			}
		}
	}
	return nil
}

// procCgroup is a process's cgroup v2 path, from /proc/PID/cgroup.
func procCgroup(pid int) (string, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return "", err
	}
	defer f.Close()
	return ownCgroupV2(f)
}

// instanceProcesses lists the processes of uid's rootless instances on
// this host: each RootlessKit of skillbuild's (its state directory ends
// in skillbuild/rootlesskit) run by uid, and every process of the user
// namespace of its children (containerd, shims, containers).
func instanceProcesses(uid int) []int {
	entries, _ := os.ReadDir("/proc")
	parents := map[int]bool{}
	ppid := map[int]int{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || processDead(pid) {
			continue
		}
		if p, ok := parentPid(pid); ok {
			ppid[pid] = p
		}
		st, err := os.Stat(filepath.Join("/proc", e.Name()))
		if err != nil || int(st.Sys().(*syscall.Stat_t).Uid) != uid {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := bytes.Split(cmd, []byte{0})
		if filepath.Base(string(args[0])) == "rootlesskit" && bytes.Contains(cmd, []byte(string(filepath.Separator)+filepath.Join("skillbuild", "rootlesskit")+"\x00")) {
			parents[pid] = true
		}
	}
	seen := map[int]bool{}
	var out []int
	add := func(pid int) {
		if !seen[pid] {
			seen[pid] = true
			out = append(out, pid)
		}
	}
	for pid, p := range ppid {
		if !parents[p] {
			continue
		}
		add(p)
		if ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/user", pid)); err == nil {
			for _, q := range NamespaceProcesses(ns) {
				add(q)
			}
		}
	}
	for p := range parents {
		add(p)
	}
	slices.Sort(out)
	return out
}

// parentPid reads a process's parent from /proc/PID/stat.
func parentPid(pid int) (int, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0, false
	}
	n, err := strconv.Atoi(f[1])
	return n, err == nil
}

// adoptV2 moves uid's running instances into the supervisorCgroup leaf of
// its delegated subtree (only root may: see the containment rule above):
// every process of them that is outside the subtree. A process forked
// while they move is caught by the next round. It returns how many
// processes moved.
func adoptV2(root string, uid int) (int, error) {
	cg := "/" + DelegatedName(uid)
	procs := filepath.Join(root, cg, supervisorCgroup, "cgroup.procs")
	moved := map[int]bool{}
	for range 10 {
		var move []int
		for _, pid := range instanceProcesses(uid) {
			if c, err := procCgroup(pid); err == nil && !strings.HasPrefix(c+"/", cg+"/") {
				move = append(move, pid)
			}
		}
		if len(move) == 0 {
			break
		}
		for _, pid := range move {
			if err := os.WriteFile(procs, []byte(strconv.Itoa(pid)), 0); err != nil {
				if errors.Is(err, syscall.ESRCH) {
					continue // it exited
				}
				return len(moved), fmt.Errorf("move pid %d into %s: %w", pid, filepath.Dir(procs), err)
			}
			moved[pid] = true
		}
	}
	return len(moved), nil
}

// systemdBooted reports whether systemd is the init system
// (sd_booted(3)).
func systemdBooted() bool {
	st, err := os.Lstat("/run/systemd/system")
	return err == nil && st.IsDir()
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
