package cli

import (
	"fmt"
	"os"
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

func rootlessSetup(c *cli.Context) error {
	var out rootless.SetupResult
	var err error
	if os.Geteuid() == 0 {
		out, err = rootless.SetupUser(c.String("user"), c.Bool("undo"))
	} else {
		m := modeOf(c)
		u := rootless.User{UID: m.uid, Name: m.user}
		if u.Name == "" {
			u = rootless.User{UID: os.Geteuid(), Name: strconv.Itoa(os.Geteuid())}
		}
		exe, xerr := os.Executable()
		if xerr != nil {
			return fmt.Errorf("find own executable: %w", xerr)
		}
		out, err = rootless.SetupSelf(c.Context, u, m.paths, rootless.SelfSetup{Undo: c.Bool("undo"), NoSystemd: c.Bool("no-systemd"), Executable: exe, Env: os.Environ()})
	}
	if out.User == "" {
		return err // refused before it had anything to report
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
	if sd := rootless.SystemdFor(c.Context, m.paths, os.Environ()); sd != nil {
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
	if sd := rootless.SystemdFor(c.Context, m.paths, os.Environ()); sd != nil {
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
		if sd := rootless.SystemdFor(c.Context, m.paths, os.Environ()); sd != nil {
			if out, err := sd.IsActive(c.Context); err == nil && out {
				st.Manager = rootless.ManagerSystemd
			}
		}
	}
	return printStatus(c, st)
}
