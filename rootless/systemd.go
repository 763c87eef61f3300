package rootless

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/containerd/errdefs"
)

// UnitName is the systemd user unit of a user's rootless containerd.
const UnitName = "skillbuild-containerd.service"

// UnitPath is where Install writes the unit ("" without a unit directory).
func (p Paths) UnitPath() string {
	if p.UnitDir == "" {
		return ""
	}
	return filepath.Join(p.UnitDir, UnitName)
}

// Systemd is the calling user's service manager, driven with
// `systemctl --user`.
type Systemd struct {
	// Bin is systemctl (default: found in PATH).
	Bin string
	// Env is systemctl's environment: it finds the user's manager through
	// XDG_RUNTIME_DIR (or DBUS_SESSION_BUS_ADDRESS).
	Env []string
}

func (s Systemd) run(ctx context.Context, args ...string) ([]byte, error) {
	bin := s.Bin
	if bin == "" {
		bin = "systemctl"
	}
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"--user"}, args...)...)
	cmd.Env = s.Env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.Bytes(), fmt.Errorf("systemctl --user %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.Bytes(), nil
}

// Available reports whether a systemd user manager answers (nil), or why
// not: no systemctl, or no manager for this user (no systemd as init, no
// login session, inside a container). nerdctl's setup tool asks the same
// way.
func (s Systemd) Available(ctx context.Context) error {
	if s.Bin == "" {
		if _, err := exec.LookPath("systemctl"); err != nil {
			return fmt.Errorf("systemctl not found: %w", errdefs.ErrNotFound)
		}
	}
	if _, err := s.run(ctx, "show-environment"); err != nil {
		return fmt.Errorf("no systemd user manager: %w: %w", err, errdefs.ErrUnavailable)
	}
	return nil
}

// Install writes unit to p.UnitPath() (replacing an older one: it names
// the binary and environment of the setup that wrote it), reloads the
// user's manager and enables the unit, so it starts with the user's
// manager (at login, or at boot with `loginctl enable-linger`). It does
// not start it. It returns the unit's path.
func (s Systemd) Install(ctx context.Context, p Paths, unit []byte) (string, error) {
	path := p.UnitPath()
	if path == "" {
		return "", fmt.Errorf("no directory for systemd user units (set HOME or XDG_CONFIG_HOME): %w", errdefs.ErrInvalidArgument)
	}
	if err := os.MkdirAll(p.UnitDir, 0o755); err != nil {
		return "", fmt.Errorf("create %s: %w", p.UnitDir, err)
	}
	if err := os.WriteFile(path, unit, 0o644); err != nil {
		return "", fmt.Errorf("write unit: %w", err)
	}
	for _, args := range [][]string{{"daemon-reload"}, {"enable", UnitName}} {
		if _, err := s.run(ctx, args...); err != nil {
			return path, err
		}
	}
	return path, nil
}

// IsActive reports whether the unit runs.
func (s Systemd) IsActive(ctx context.Context) (bool, error) {
	out, err := s.run(ctx, "is-active", UnitName)
	if strings.TrimSpace(string(out)) == "active" {
		return true, nil
	}
	if err != nil && len(out) > 0 {
		return false, nil // is-active exits non-zero for an inactive unit
	}
	return false, err
}

// Uninstall stops and disables the unit and removes its file; a unit that
// is not installed is no error.
func (s Systemd) Uninstall(ctx context.Context, p Paths) error {
	path := p.UnitPath()
	if path == "" {
		return nil
	}
	if _, err := os.Stat(path); os.IsNotExist(err) {
		return nil
	}
	s.run(ctx, "stop", UnitName)    //nolint:errcheck // it may not run
	s.run(ctx, "disable", UnitName) //nolint:errcheck
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("remove unit: %w", err)
	}
	_, err := s.run(ctx, "daemon-reload")
	return err
}

// Unit is the systemd user unit that runs p's instance: ExecStart is the
// skillbuild binary exe with args (`rootless start --foreground`), which
// becomes RootlessKit; env is its whole environment (PATH must find
// rootlesskit, newuidmap, containerd and runc; the XDG variables and HOME
// fix where the instance lives, the same as for the setup that wrote it).
//
// Delegate=yes hands the unit's cgroup subtree to the user on cgroup v2
// (containers then get cgroups, and limits, below it), KillMode=mixed
// lets RootlessKit stop containerd on SIGTERM before the rest of the
// cgroup (shims, containers) gets SIGKILL, and the process and file
// limits are lifted to what the containers ask for, as nerdctl's unit
// does.
func Unit(exe string, args, env []string) []byte {
	var b strings.Builder
	b.WriteString(`# Written by skillbuild rootless setup; rewritten by every setup.
[Unit]
Description=skillbuild's rootless containerd (RootlessKit)

[Service]
Type=simple
`)
	for _, kv := range env {
		fmt.Fprintf(&b, "Environment=%s\n", systemdQuote(kv, false))
	}
	words := []string{systemdQuote(exe, true)}
	for _, a := range args {
		words = append(words, systemdQuote(a, true))
	}
	fmt.Fprintf(&b, "ExecStart=%s\n", strings.Join(words, " "))
	b.WriteString(`TimeoutStartSec=120
TimeoutStopSec=60
Restart=on-failure
RestartSec=2
StartLimitBurst=3
StartLimitIntervalSec=60
LimitNOFILE=infinity
LimitNPROC=infinity
LimitCORE=infinity
TasksMax=infinity
Delegate=yes
KillMode=mixed

[Install]
WantedBy=default.target
`)
	return []byte(b.String())
}

// systemdQuote quotes s as one word of a unit's ExecStart (exec) or
// Environment line: % doubled (systemd expands %-specifiers in both), $
// doubled in ExecStart (which expands variables), and double quotes
// around a word with a space, quote, backslash or semicolon.
func systemdQuote(s string, exec bool) string {
	s = strings.ReplaceAll(s, "%", "%%")
	if exec {
		s = strings.ReplaceAll(s, "$", "$$")
	}
	if s != "" && !strings.ContainsAny(s, " \t\"'\\;") {
		return s
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + r.Replace(s) + `"`
}
