package cli

import (
	"context"
	"fmt"
	"io"
	"runtime/debug"
	"time"

	"github.com/urfave/cli/v2"
)

// versionInfo is what `skillbuild version` reports: this binary's module
// version and VCS revision, the BuildKit and containerd client libraries
// it embeds, and the containerd daemon it talks to (when reachable).
type versionInfo struct {
	Version    string         `json:"version"`
	Revision   string         `json:"revision,omitempty"`
	Modified   bool           `json:"modified,omitempty"`
	GoVersion  string         `json:"go_version"`
	BuildKit   string         `json:"buildkit"`
	Containerd string         `json:"containerd_client"`
	Daemon     *daemonVersion `json:"containerd_daemon,omitempty"`
	DaemonErr  string         `json:"containerd_daemon_error,omitempty"`
}

type daemonVersion struct {
	Address  string `json:"address"`
	Version  string `json:"version"`
	Revision string `json:"revision"`
}

// buildVersion reads the module versions from the binary's build info.
func buildVersion() versionInfo {
	v := versionInfo{Version: "(devel)", BuildKit: "unknown", Containerd: "unknown"}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	v.GoVersion = bi.GoVersion
	if bi.Main.Version != "" {
		v.Version = bi.Main.Version
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Revision = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	for _, d := range bi.Deps {
		switch d.Path {
		case "github.com/moby/buildkit":
			v.BuildKit = d.Version
		case "github.com/containerd/containerd/v2":
			v.Containerd = d.Version
		}
	}
	return v
}

// shortVersion is the one-line version urfave/cli shows in --help.
func shortVersion() string {
	v := buildVersion()
	if v.Revision != "" {
		rev := v.Revision
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if v.Modified {
			rev += "-dirty"
		}
		return v.Version + " (" + rev + ")"
	}
	return v.Version
}

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "show the versions of skillbuild, its embedded BuildKit and containerd client, and the containerd daemon",
		Flags: []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print the versions as JSON"}},
		Action: func(c *cli.Context) error {
			return printVersion(c, c.Bool("json"))
		},
	}
}

// printVersion asks the daemon for its version (briefly: an unreachable
// daemon is reported, not an error) and prints everything.
func printVersion(c *cli.Context, asJSON bool) error {
	v := buildVersion()
	ctx, cancel := context.WithTimeout(c.Context, 3*time.Second)
	defer cancel()
	svc, err := newService(c)
	if err == nil {
		var version, revision string
		if version, revision, err = svc.DaemonVersion(ctx); err == nil {
			v.Daemon = &daemonVersion{Address: svc.Address(), Version: version, Revision: revision}
		}
	}
	if err != nil {
		v.DaemonErr = err.Error()
	}
	if asJSON {
		return writeJSON(c.App.Writer, v)
	}
	writeVersion(c.App.Writer, v)
	return nil
}

func writeVersion(w io.Writer, v versionInfo) {
	fmt.Fprintf(w, "skillbuild:\n  Version:   %s\n", v.Version)
	if v.Revision != "" {
		mod := ""
		if v.Modified {
			mod = " (modified)"
		}
		fmt.Fprintf(w, "  Revision:  %s%s\n", v.Revision, mod)
	}
	fmt.Fprintf(w, "  Go:        %s\n  BuildKit:  %s (embedded)\n  containerd client: %s\n", v.GoVersion, v.BuildKit, v.Containerd)
	fmt.Fprintln(w, "containerd daemon:")
	if v.Daemon != nil {
		fmt.Fprintf(w, "  Address:   %s\n  Version:   %s\n  Revision:  %s\n", v.Daemon.Address, v.Daemon.Version, v.Daemon.Revision)
	} else {
		fmt.Fprintf(w, "  not reachable: %s\n", v.DaemonErr)
	}
}
