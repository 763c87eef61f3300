package cli

import (
	"fmt"
	"io"

	"github.com/skillbuild/skillbuild/rootless"
	"github.com/urfave/cli/v2"
)

// printChecks renders `rootless setup` for people.
func printChecks(w io.Writer, out rootless.SetupResult) {
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

// printStatus renders `rootless start` and `status`.
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
