package cli

import (
	"fmt"
	"io"
	"os"
	"os/user"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/skillbuild/skillbuild/rootless"
	"github.com/urfave/cli/v2"
)

func rootlessCommand() *cli.Command {
	jsonFlag := &cli.BoolFlag{Name: "json", Usage: "print one JSON document on stdout"}
	return &cli.Command{
		Name:  "rootless",
		Usage: "run skillbuild as an ordinary user: containerd inside RootlessKit, state under $XDG_DATA_HOME",
		Description: `As an ordinary user every command that needs containerd enters the
namespaces of the user's own containerd (run inside RootlessKit) before it
starts; --address and --root default to that instance's socket
($XDG_RUNTIME_DIR/skillbuild/containerd.sock) and state
($XDG_DATA_HOME/skillbuild/state, the vulnerability database included).

Limits: a rootless runc can create cgroups only where the user owns them.
On cgroup v1 root runs "skillbuild rootless setup --user NAME" once to give
the user a cgroup subtree. On cgroup v2 with systemd the user's unit gets
one (Delegate=yes); without systemd root runs "skillbuild rootless setup
--user NAME" after the user's "rootless start" (only root may move the
daemon into it). Without one memory, CPU and process limits fall back to
per-process rlimits, "run" refuses that unless --require-limits=false, and
builds and runs report in limits_enforced how each limit was held.`,
		Subcommands: []*cli.Command{
			{
				Name:  "setup",
				Usage: "check what rootless mode needs and say what is missing; as root with --user, delegate a cgroup subtree to the user",
				Description: `As an ordinary user: checks subordinate uid/gid ranges, newuidmap and
newgidmap, user namespaces, rootlesskit, containerd, runc, nsenter, the
kernel, and how limits will be enforced; exits 1 when a required piece is
missing, printing how to add it.
When everything is there and a systemd user manager answers (systemctl
--user), it also installs and enables the user unit
$XDG_CONFIG_HOME/systemd/user/skillbuild-containerd.service (Delegate=yes,
KillMode=mixed); start, stop and status then go through systemctl. Without
systemd the daemon is a plain background process of skillbuild's own.
As root with --user NAME: creates a cgroup subtree for the user and hands it
over, so runs and builds get cgroup limits: in every hierarchy on cgroup v1;
on cgroup v2 without systemd /sys/fs/cgroup/skillbuild-uUID, into which it
moves the user's running instance (refused where systemd runs: there the
user's unit has the subtree). With --undo removes it again (as the user,
--undo removes the unit).`,
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "user", Usage: "as root: the `NAME` (or uid) to delegate a cgroup subtree to"},
					&cli.BoolFlag{Name: "undo", Usage: "as root: remove the user's delegated cgroup subtree; as the user: remove the systemd unit"},
					&cli.BoolFlag{Name: "no-systemd", Usage: "do not install the systemd user unit, even where systemd runs"},
					jsonFlag,
				},
				Action: rootlessSetup,
			},
			{
				Name: "start", Usage: "start the user's rootless containerd: its systemd unit, or a background process (idempotent)",
				Flags:  []cli.Flag{jsonFlag, &cli.BoolFlag{Name: "foreground", Usage: "become RootlessKit in the foreground (the systemd unit's ExecStart)"}},
				Action: rootlessStart,
			},
			{Name: "stop", Usage: "stop it, and every shim, container and mount of it; images and cache stay", Flags: []cli.Flag{jsonFlag}, Action: rootlessStop},
			{Name: "status", Usage: "whether it runs, where its socket and state are, how limits are enforced", Flags: []cli.Flag{jsonFlag}, Action: rootlessStatus},
			{
				// RootlessKit runs this inside the namespaces; see
				// rootless.ChildMain.
				Name: "child", Hidden: true, SkipFlagParsing: true,
				Action: func(c *cli.Context) error {
					args := c.Args().Slice()
					if len(args) > 0 && args[0] == "--" {
						args = args[1:]
					}
					if len(args) < 2 {
						return fmt.Errorf("usage: rootless child -- SHIM_DIR CONTAINERD_ARGV...: %w", errdefs.ErrInvalidArgument)
					}
					return rootless.ChildMain(args[0], args[1:])
				},
			},
		},
	}
}

// setupOutput is the --json document of `rootless setup`.
type setupOutput struct {
	User    string             `json:"user"`
	UID     int                `json:"uid"`
	Ready   bool               `json:"ready"`
	Checks  []rootless.Check   `json:"checks"`
	Limits  rootless.LimitMode `json:"limits"`
	Service *serviceSetup      `json:"service,omitempty"`
	Undone  bool               `json:"undone,omitempty"`
}

// serviceSetup says what will run the user's containerd.
type serviceSetup struct {
	// Manager is "systemd" (Unit installed and enabled) or "process".
	Manager string `json:"manager"`
	Unit    string `json:"unit,omitempty"`
	// Reason says why there is no unit.
	Reason string `json:"reason,omitempty"`
}

func rootlessSetup(c *cli.Context) error {
	out := setupOutput{}
	if os.Geteuid() == 0 {
		name := c.String("user")
		if name == "" {
			return fmt.Errorf("as root, name the user to set up: rootless setup --user NAME: %w", errdefs.ErrInvalidArgument)
		}
		u, err := lookupUser(name)
		if err != nil {
			return err
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		out.User, out.UID = u.Username, uid
		if c.Bool("undo") {
			if err := rootless.UndelegateCgroups(uid); err != nil {
				return err
			}
			out.Undone = true
			out.Limits = rootless.DetectLimits(uid)
		} else {
			lm, err := rootless.DelegateCgroups(uid, gid)
			if err != nil {
				return err
			}
			out.Limits = lm
		}
		out.Checks = rootless.Checks(rootless.User{UID: uid, Name: u.Username})
		// Root itself is no rootless user: the user check is about NAME.
		out.Checks[0] = rootless.Check{Name: "user", OK: uid != 0, Required: true, Detail: fmt.Sprintf("uid %d (%s)", uid, u.Username)}
	} else {
		m := modeOf(c)
		out.User, out.UID = m.user, m.uid
		if out.User == "" {
			out.User, out.UID = strconv.Itoa(os.Geteuid()), os.Geteuid()
		}
		out.Checks = rootless.Checks(rootless.User{UID: out.UID, Name: out.User})
		out.Limits = rootless.DetectLimits(out.UID)
	}
	missing := rootless.Missing(out.Checks)
	out.Ready = len(missing) == 0
	var err error
	if os.Geteuid() != 0 && (out.Ready || c.Bool("undo")) {
		out.Service, err = setupService(c)
	}
	if err == nil && !out.Ready {
		names := make([]string, len(missing))
		for i, m := range missing {
			names[i] = m.Name
		}
		err = fmt.Errorf("rootless mode is not ready for %s: missing %s (see the fixes above): %w", out.User, strings.Join(names, ", "), errdefs.ErrFailedPrecondition)
	}
	if c.Bool("json") {
		if err != nil {
			fmt.Fprintln(c.App.ErrWriter, "skillbuild:", err)
		}
		return jsonResult(c.App.Writer, out, err, exitCode)
	}
	printChecks(c.App.Writer, out)
	return err
}

// setupService installs the user's systemd unit where a user manager
// answers (and --no-systemd is not given), or with --undo removes it.
func setupService(c *cli.Context) (*serviceSetup, error) {
	m := modeOf(c)
	sd := rootless.Systemd{Env: os.Environ()}
	if c.Bool("undo") {
		if err := sd.Uninstall(c.Context, m.paths); err != nil {
			return nil, err
		}
		return &serviceSetup{Manager: rootless.ManagerProcess, Reason: "removed the systemd unit (--undo)"}, nil
	}
	if c.Bool("no-systemd") {
		return &serviceSetup{Manager: rootless.ManagerProcess, Reason: "--no-systemd"}, nil
	}
	if err := sd.Available(c.Context); err != nil {
		return &serviceSetup{Manager: rootless.ManagerProcess, Reason: err.Error()}, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own executable: %w", err)
	}
	unit := rootless.Unit(exe, []string{"rootless", "start", "--foreground"}, unitEnv())
	path, err := sd.Install(c.Context, m.paths, unit)
	if err != nil {
		return nil, err
	}
	return &serviceSetup{Manager: rootless.ManagerSystemd, Unit: path}, nil
}

// unitEnv is the environment the unit gives skillbuild: PATH (to find
// rootlesskit, newuidmap, containerd, runc), HOME and the XDG variables
// that place the instance, as setup saw them.
func unitEnv() []string {
	var env []string
	for _, k := range []string{"PATH", "HOME", "XDG_RUNTIME_DIR", "XDG_DATA_HOME", "XDG_CONFIG_HOME", "TMPDIR"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// systemdFor is the user's systemd when the unit is installed and a user
// manager answers: start, stop and status go through it then.
func systemdFor(c *cli.Context, p rootless.Paths) *rootless.Systemd {
	if u := p.UnitPath(); u == "" {
		return nil
	} else if _, err := os.Stat(u); err != nil {
		return nil
	}
	sd := rootless.Systemd{Env: os.Environ()}
	if sd.Available(c.Context) != nil {
		return nil
	}
	return &sd
}

func lookupUser(name string) (*user.User, error) {
	u, err := user.Lookup(name)
	if err != nil {
		if u2, err2 := user.LookupId(name); err2 == nil {
			return u2, nil
		}
		return nil, fmt.Errorf("user %q: %v: %w", name, err, errdefs.ErrNotFound)
	}
	return u, nil
}

func printChecks(w io.Writer, out setupOutput) {
	if out.Undone {
		fmt.Fprintf(w, "removed the cgroup subtree delegated to %s\n", out.User)
	}
	for _, ch := range out.Checks {
		mark := "ok"
		switch {
		case ch.OK:
		case ch.Required:
			mark = "MISSING"
		default:
			mark = "note"
		}
		fmt.Fprintf(w, "%-8s %-12s %s\n", mark, ch.Name, ch.Detail)
		if !ch.OK && ch.Fix != "" {
			fmt.Fprintf(w, "%-8s %-12s fix: %s\n", "", "", ch.Fix)
		}
	}
	if sv := out.Service; sv != nil {
		switch {
		case sv.Unit != "":
			fmt.Fprintf(w, "%-8s %-12s systemd user unit %s installed and enabled\n", "ok", "service", sv.Unit)
		default:
			fmt.Fprintf(w, "%-8s %-12s a background process of skillbuild's own (%s)\n", "note", "service", sv.Reason)
		}
	}
	if out.Ready {
		fmt.Fprintf(w, "ready: `skillbuild rootless start` as %s\n", out.User)
	}
}

func rootlessStart(c *cli.Context) error {
	m := modeOf(c)
	if !m.enabled || rootless.InNamespace() {
		return fmt.Errorf("rootless start is for ordinary users, outside the rootless namespaces: %w", errdefs.ErrFailedPrecondition)
	}
	if missing := rootless.Missing(rootless.Checks(rootless.User{UID: m.uid, Name: m.user})); len(missing) > 0 {
		var b strings.Builder
		for _, ch := range missing {
			fmt.Fprintf(&b, "\n  %s: %s; fix: %s", ch.Name, ch.Detail, ch.Fix)
		}
		return fmt.Errorf("rootless mode is not ready (run `skillbuild rootless setup` for the full report):%s: %w", b.String(), errdefs.ErrFailedPrecondition)
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable: %w", err)
	}
	opts := []rootless.StartOpt{rootless.WithChild(exe, "rootless", "child", "--"), rootless.WithEnv(os.Environ())}
	if c.Bool("foreground") {
		return rootless.Foreground(m.paths, c.App.ErrWriter, opts...)
	}
	if sd := systemdFor(c, m.paths); sd != nil {
		opts = append(opts, rootless.WithSystemd(*sd))
	}
	st, err := rootless.Start(c.Context, m.paths, opts...)
	if err != nil {
		return err
	}
	return printStatus(c, st)
}

func rootlessStop(c *cli.Context) error {
	m := modeOf(c)
	if !m.enabled || rootless.InNamespace() {
		return fmt.Errorf("rootless stop is for ordinary users, outside the rootless namespaces: %w", errdefs.ErrFailedPrecondition)
	}
	var opts []rootless.StopOpt
	if sd := systemdFor(c, m.paths); sd != nil {
		opts = append(opts, rootless.StopSystemd(*sd))
	}
	res, err := rootless.Stop(c.Context, m.paths, 30*time.Second, opts...)
	if c.Bool("json") {
		if err != nil {
			fmt.Fprintln(c.App.ErrWriter, "skillbuild:", err)
		}
		return jsonResult(c.App.Writer, res, err, exitCode)
	}
	if err != nil {
		return err
	}
	switch {
	case !res.Stopped:
		fmt.Fprintln(c.App.Writer, "rootless containerd was not running")
	case res.Leftovers > 0:
		fmt.Fprintf(c.App.Writer, "stopped rootless containerd (and %d processes it left: shims, containers)\n", res.Leftovers)
	default:
		fmt.Fprintln(c.App.Writer, "stopped rootless containerd")
	}
	return nil
}

func rootlessStatus(c *cli.Context) error {
	m := modeOf(c)
	if !m.enabled {
		return fmt.Errorf("rootless status is for ordinary users (or --rootless): %w", errdefs.ErrFailedPrecondition)
	}
	st := rootless.StatusOf(c.Context, m.paths)
	if st.Running {
		st.Manager = rootless.ManagerProcess
		if sd := systemdFor(c, m.paths); sd != nil {
			if out, err := sd.IsActive(c.Context); err == nil && out {
				st.Manager = rootless.ManagerSystemd
			}
		}
	}
	return printStatus(c, st)
}

func printStatus(c *cli.Context, st rootless.Status) error {
	if c.Bool("json") {
		return writeJSON(c.App.Writer, st)
	}
	w := c.App.Writer
	if st.Running {
		fmt.Fprintf(w, "running: containerd %s, rootlesskit pid %d, child pid %d, run by %s\n", st.ContainerdVersion, st.Pid, st.ChildPid, st.Manager)
	} else {
		fmt.Fprintln(w, "not running (skillbuild rootless start)")
	}
	fmt.Fprintf(w, "socket:  %s\nstate:   %s\ndata:    %s\nlog:     %s\n", st.Socket, st.StateRoot, st.Data, st.Log)
	if st.Unit != "" {
		fmt.Fprintf(w, "unit:    %s (journalctl --user -u %s)\n", st.Unit, rootless.UnitName)
	}
	if st.Limits.Cgroups {
		fmt.Fprintf(w, "limits:  cgroups under %s\n", st.Limits.Parent)
	} else {
		fmt.Fprintf(w, "limits:  rlimits per process (%s)\n", st.Limits.Reason)
	}
	return nil
}
