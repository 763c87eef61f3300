package rootless

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Check is one prerequisite of rootless mode and whether it holds.
type Check struct {
	Name string `json:"name"`
	// OK: it holds. A check that does not hold with Required false only
	// weakens something (Detail says what).
	OK       bool   `json:"ok"`
	Required bool   `json:"required"`
	Detail   string `json:"detail"`
	// Fix says what to do when it does not hold.
	Fix string `json:"fix,omitempty"`
}

// User is the account a check is for.
type User struct {
	UID  int
	Name string
}

type checkOptions struct {
	subuid, subgid string
	kernel         string
}

// CheckOpt configures Checks.
type CheckOpt func(*checkOptions)

// WithSubIDFiles reads the subordinate id ranges from these files instead
// of /etc/subuid and /etc/subgid.
func WithSubIDFiles(subuid, subgid string) CheckOpt {
	return func(o *checkOptions) { o.subuid, o.subgid = subuid, subgid }
}

// WithKernelRelease checks this kernel release instead of the running one.
func WithKernelRelease(r string) CheckOpt {
	return func(o *checkOptions) { o.kernel = r }
}

// minSubIDs is how many subordinate ids a user needs: a container image's
// users (65532 for skill runs) must map.
const minSubIDs = 65536

// Checks reports every prerequisite of rootless mode for u: subordinate
// uid and gid ranges, newuidmap/newgidmap, user namespaces, the binaries,
// a kernel that mounts overlayfs in a user namespace, and how limits will
// be enforced.
func Checks(u User, opts ...CheckOpt) []Check {
	o := checkOptions{subuid: "/etc/subuid", subgid: "/etc/subgid"}
	for _, opt := range opts {
		opt(&o)
	}
	var cs []Check
	cs = append(cs, Check{Name: "user", Required: true, OK: u.UID != 0,
		Detail: fmt.Sprintf("uid %d (%s)", u.UID, u.Name),
		Fix:    "run rootless mode as the ordinary user; root uses the system containerd"})
	for _, f := range []struct{ name, file, flag string }{{"subuid", o.subuid, "--add-subuids"}, {"subgid", o.subgid, "--add-subgids"}} {
		n, err := subIDCount(f.file, u)
		c := Check{Name: f.name, Required: true, OK: err == nil && n >= minSubIDs,
			Fix: fmt.Sprintf("as root: usermod %s 100000-165535 %s (a range of %d ids no other user has)", f.flag, u.Name, minSubIDs)}
		switch {
		case err != nil:
			c.Detail = err.Error()
		default:
			c.Detail = fmt.Sprintf("%d subordinate ids for %s in %s (need %d)", n, u.Name, f.file, minSubIDs)
		}
		cs = append(cs, c)
	}
	for _, b := range []string{"newuidmap", "newgidmap"} {
		c := Check{Name: b, Required: true, Fix: "as root: apt-get install uidmap"}
		if p, err := exec.LookPath(b); err != nil {
			c.Detail = b + " not found in PATH"
		} else if ok, why := privileged(p); !ok {
			c.Detail = p + " " + why
			c.Fix = "as root: chmod u+s " + p + " (or reinstall uidmap)"
		} else {
			c.OK, c.Detail = true, p
		}
		cs = append(cs, c)
	}
	cs = append(cs, usernsCheck())
	for _, b := range []struct{ bin, pkg string }{{"rootlesskit", "rootlesskit"}, {"containerd", "containerd"}, {"runc", "runc"}, {"nsenter", "util-linux"}} {
		c := Check{Name: b.bin, Required: true, Fix: "as root: apt-get install " + b.pkg}
		if p, err := exec.LookPath(b.bin); err != nil {
			c.Detail = b.bin + " not found in PATH"
		} else {
			c.OK, c.Detail = true, p
		}
		cs = append(cs, c)
	}
	cs = append(cs, kernelCheck(o.kernel))
	lm := DetectLimits(u.UID)
	lc := Check{Name: "limits", OK: lm.Cgroups, Fix: "as root: skillbuild rootless setup --user " + u.Name}
	if lm.Version == 2 {
		lc.Fix = V2DelegationFix(u.Name)
	}
	switch {
	case lm.Cgroups && lm.Version == 2:
		lc.Detail = "memory, CPU and process limits of runs and build steps by cgroups under the delegated cgroup " + lm.Parent + " (cgroup v2)"
	case lm.Cgroups:
		lc.Detail = "memory, CPU and process limits by cgroups under " + lm.Parent
	default:
		lc.Detail = "limits fall back to rlimits (per process, not per container: runs RLIMIT_AS, RLIMIT_CPU, RLIMIT_NPROC; build steps RLIMIT_DATA, RLIMIT_CPU): " + lm.Reason
	}
	return append(cs, lc)
}

// LimitsFix says what gives user cgroup limits on this host, for a
// message that refuses or weakens limits.
func LimitsFix(lm LimitMode, user string) string {
	if lm.Version == 2 {
		return V2DelegationFix(user)
	}
	return "as root run `skillbuild rootless setup --user " + user + "` once (it delegates a cgroup subtree to the user)"
}

// V2DelegationFix says how user gets a delegated cgroup on this cgroup v2
// host: through the user's systemd unit where systemd is the init system,
// through root's `rootless setup --user` elsewhere.
func V2DelegationFix(user string) string {
	if systemdBooted() {
		return "as " + user + ", where the user's systemd manager runs: `skillbuild rootless setup` (installs a unit with Delegate=yes; as root `loginctl enable-linger " + user +
			"` gives the user a manager without a login), then `skillbuild rootless start`"
	}
	return "cgroup v2 without systemd: as " + user + " `skillbuild rootless start`, then as root `skillbuild rootless setup --user " + user +
		"` (delegates a cgroup subtree and moves the running daemon into it; only root may)"
}

// subIDCount sums the subordinate ids u has in file (lines NAME|UID:START:COUNT).
func subIDCount(file string, u User) (int, error) {
	f, err := os.Open(file)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", file, err)
	}
	defer f.Close()
	total := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.Split(strings.TrimSpace(sc.Text()), ":")
		if len(parts) != 3 || (parts[0] != u.Name && parts[0] != strconv.Itoa(u.UID)) {
			continue
		}
		if n, err := strconv.Atoi(parts[2]); err == nil && n > 0 {
			total += n
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("read %s: %w", file, err)
	}
	if total == 0 {
		return 0, fmt.Errorf("no range for %s (uid %d) in %s", u.Name, u.UID, file)
	}
	return total, nil
}

// privileged reports whether the id-mapping helper at p can map ranges:
// setuid root, or file capabilities.
func privileged(p string) (bool, string) {
	st, err := os.Stat(p)
	if err != nil {
		return false, err.Error()
	}
	if st.Mode()&os.ModeSetuid != 0 {
		return true, ""
	}
	if sz, err := unix.Getxattr(p, "security.capability", nil); err == nil && sz > 0 {
		return true, ""
	}
	return false, "is neither setuid nor has file capabilities"
}

func usernsCheck() Check {
	c := Check{Name: "userns", Required: true}
	if b, err := os.ReadFile("/proc/sys/kernel/unprivileged_userns_clone"); err == nil && strings.TrimSpace(string(b)) == "0" {
		c.Detail = "kernel.unprivileged_userns_clone is 0"
		c.Fix = "as root: sysctl -w kernel.unprivileged_userns_clone=1 (and in /etc/sysctl.d to keep it)"
		return c
	}
	b, err := os.ReadFile("/proc/sys/user/max_user_namespaces")
	if err != nil {
		c.Detail = "user namespaces unavailable: " + err.Error()
		c.Fix = "use a kernel built with CONFIG_USER_NS"
		return c
	}
	if n, _ := strconv.Atoi(strings.TrimSpace(string(b))); n == 0 {
		c.Detail = "user.max_user_namespaces is 0"
		c.Fix = "as root: sysctl -w user.max_user_namespaces=28633 (and in /etc/sysctl.d to keep it)"
		return c
	}
	c.OK, c.Detail = true, "user.max_user_namespaces="+strings.TrimSpace(string(b))
	return c
}

// kernelCheck: overlayfs mounts inside a user namespace since Linux 5.11;
// skillbuild's images and runs use the overlayfs snapshotter.
func kernelCheck(release string) Check {
	if release == "" {
		var u unix.Utsname
		if err := unix.Uname(&u); err == nil {
			release = unix.ByteSliceToString(u.Release[:])
		}
	}
	c := Check{Name: "kernel", Required: true, Detail: release,
		Fix: "use Linux 5.11 or later (overlayfs in user namespaces); skillbuild's snapshots need it"}
	var major, minor int
	if _, err := fmt.Sscanf(release, "%d.%d", &major, &minor); err != nil {
		c.Detail = fmt.Sprintf("kernel release %q not understood", release)
		return c
	}
	c.OK = major > 5 || (major == 5 && minor >= 11)
	if !c.OK {
		c.Detail = release + ": overlayfs cannot be mounted in a user namespace before 5.11"
	}
	return c
}

// Missing returns the required checks that do not hold.
func Missing(cs []Check) []Check {
	var out []Check
	for _, c := range cs {
		if c.Required && !c.OK {
			out = append(out, c)
		}
	}
	return out
}
