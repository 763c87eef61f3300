package rootless

import (
	"context"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
)

// SetupResult is what `rootless setup` found and did.
type SetupResult struct {
	User    string    `json:"user"`
	UID     int       `json:"uid"`
	Ready   bool      `json:"ready"`
	Checks  []Check   `json:"checks"`
	Limits  LimitMode `json:"limits"`
	Service *Service  `json:"service,omitempty"`
	Undone  bool      `json:"undone,omitempty"`
}

// Service says what runs the user's containerd.
type Service struct {
	// Manager is ManagerSystemd (Unit installed and enabled) or
	// ManagerProcess.
	Manager string `json:"manager"`
	Unit    string `json:"unit,omitempty"`
	// Reason says why there is no unit.
	Reason string `json:"reason,omitempty"`
}

// SetupUser is root's set-up of the user named name (or uid): it
// delegates a cgroup subtree to the user (with undo, removes it) and
// checks what the user's rootless mode needs. A result whose Ready is
// false comes with an error of class FailedPrecondition naming what is
// missing.
func SetupUser(name string, undo bool) (SetupResult, error) {
	if name == "" {
		return SetupResult{}, fmt.Errorf("as root, name the user to set up: rootless setup --user NAME: %w", errdefs.ErrInvalidArgument)
	}
	u, err := lookupUser(name)
	if err != nil {
		return SetupResult{}, err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	out := SetupResult{User: u.Username, UID: uid}
	if undo {
		if err := UndelegateCgroups(uid); err != nil {
			return out, err
		}
		out.Undone = true
		out.Limits = DetectLimits(uid)
	} else {
		lm, err := DelegateCgroups(uid, gid)
		if err != nil {
			return out, err
		}
		out.Limits = lm
	}
	out.Checks = Checks(User{UID: uid, Name: u.Username})
	// Root itself is no rootless user: the user check is about NAME.
	out.Checks[0] = Check{Name: "user", OK: uid != 0, Required: true, Detail: fmt.Sprintf("uid %d (%s)", uid, u.Username)}
	return out, readiness(&out)
}

// SelfSetup are a user's set-up choices.
type SelfSetup struct {
	// Undo removes the systemd unit.
	Undo bool
	// NoSystemd keeps the daemon a process of skillbuild's own even
	// where a user manager answers.
	NoSystemd bool
	// Executable is the skillbuild the unit starts; Env the environment
	// set-up saw (the unit keeps PATH, HOME and the XDG variables of it).
	Executable string
	Env        []string
}

// SetupSelf is a user's own set-up: it checks what rootless mode needs
// and, when everything is there and a systemd user manager answers,
// installs and enables the user unit (Delegate=yes) that runs the
// instance at p. A result whose Ready is false comes with an error of
// class FailedPrecondition naming what is missing.
func SetupSelf(ctx context.Context, u User, p Paths, o SelfSetup) (SetupResult, error) {
	out := SetupResult{User: u.Name, UID: u.UID, Checks: Checks(u), Limits: DetectLimits(u.UID)}
	var err error
	if len(Missing(out.Checks)) == 0 || o.Undo {
		out.Service, err = setupService(ctx, p, o)
	}
	if err != nil {
		return out, err
	}
	return out, readiness(&out)
}

// readiness sets out.Ready, and says what is missing when it is not.
func readiness(out *SetupResult) error {
	missing := Missing(out.Checks)
	out.Ready = len(missing) == 0
	if out.Ready {
		return nil
	}
	names := make([]string, len(missing))
	for i, m := range missing {
		names[i] = m.Name
	}
	return fmt.Errorf("rootless mode is not ready for %s: missing %s (see the fixes above): %w", out.User, strings.Join(names, ", "), errdefs.ErrFailedPrecondition)
}

// setupService installs the user's systemd unit where a user manager
// answers (and NoSystemd is not set), or with Undo removes it.
func setupService(ctx context.Context, p Paths, o SelfSetup) (*Service, error) {
	sd := Systemd{Env: o.Env}
	if o.Undo {
		if err := sd.Uninstall(ctx, p); err != nil {
			return nil, err
		}
		return &Service{Manager: ManagerProcess, Reason: "removed the systemd unit (--undo)"}, nil
	}
	if o.NoSystemd {
		return &Service{Manager: ManagerProcess, Reason: "--no-systemd"}, nil
	}
	if err := sd.Available(ctx); err != nil {
		return &Service{Manager: ManagerProcess, Reason: err.Error()}, nil
	}
	unit := Unit(o.Executable, []string{"rootless", "start", "--foreground"}, unitEnv(o.Env))
	path, err := sd.Install(ctx, p, unit)
	if err != nil {
		return nil, err
	}
	return &Service{Manager: ManagerSystemd, Unit: path}, nil
}

// unitEnv is the environment the unit gives skillbuild: PATH (to find
// rootlesskit, newuidmap, containerd, runc), HOME and the XDG variables
// that place the instance, as set-up saw them.
func unitEnv(env []string) []string {
	var out []string
	for _, k := range []string{"PATH", "HOME", "XDG_RUNTIME_DIR", "XDG_DATA_HOME", "XDG_CONFIG_HOME", "TMPDIR"} {
		for _, kv := range env {
			if strings.HasPrefix(kv, k+"=") {
				out = append(out, kv)
			}
		}
	}
	return out
}

// SystemdFor is the user's systemd when the unit of p is installed and a
// user manager answers (start, stop and status go through it then), or
// nil.
func SystemdFor(ctx context.Context, p Paths, env []string) *Systemd {
	u := p.UnitPath()
	if u == "" {
		return nil
	}
	if _, err := os.Stat(u); err != nil {
		return nil
	}
	sd := Systemd{Env: env}
	if sd.Available(ctx) != nil {
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
