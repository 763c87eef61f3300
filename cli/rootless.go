package cli

import (
	"fmt"
	"os"
	"os/user"
	"slices"
	"strconv"

	"github.com/containerd/errdefs"
	"github.com/skillbuild/skillbuild/config"
	"github.com/skillbuild/skillbuild/rootless"
	"github.com/urfave/cli/v2"
)

// rootlessMode is how this process talks to containerd: as root to the
// system's, or as an ordinary user to the user's rootless instance.
type rootlessMode struct {
	enabled bool
	uid     int    // the user's uid on the host
	user    string // its name, for hints
	paths   rootless.Paths
	limits  rootless.LimitMode
}

// namespaceCommands need RootlessKit's namespaces: the embedded BuildKit
// worker mounts snapshots, the runtime reads task namespaces.
var namespaceCommands = []string{"install", "run", "scan", "base", "ls", "rm", "prune", "serve"}

// metaRootless is the app metadata key of the rootlessMode.
const metaRootless = "rootless"

// detectRootless decides the mode from --rootless (default: on for every
// user but root, and inside the namespaces) and the user's environment.
func detectRootless(args []string) (rootlessMode, error) {
	m := rootlessMode{enabled: os.Geteuid() != 0 || rootless.InNamespace()}
	if v, ok := globalBool(args, "rootless"); ok {
		m.enabled = v
	}
	if !m.enabled {
		return m, nil
	}
	if os.Geteuid() == 0 && !rootless.InNamespace() {
		return m, fmt.Errorf("--rootless is for ordinary users; as root skillbuild uses the system containerd: %w", errdefs.ErrInvalidArgument)
	}
	m.uid = rootless.ParentUID()
	m.user = strconv.Itoa(m.uid)
	if u, err := user.LookupId(m.user); err == nil {
		m.user = u.Username
	}
	p, err := rootless.PathsFor(rootless.Env{
		UID:        m.uid,
		Home:       os.Getenv("HOME"),
		DataHome:   os.Getenv("XDG_DATA_HOME"),
		ConfigHome: os.Getenv("XDG_CONFIG_HOME"),
		RuntimeDir: os.Getenv("XDG_RUNTIME_DIR"),
		TempDir:    os.TempDir(),
	})
	if err != nil {
		return m, err
	}
	m.paths = p
	m.limits = rootless.DetectLimits(m.uid)
	return m, nil
}

// globalBool reads a boolean global flag (--name, --name=BOOL) from the
// arguments before the command.
func globalBool(args []string, name string) (value, set bool) {
	for _, a := range args[1:] {
		if len(a) < 2 || a[0] != '-' || a == "--" {
			break
		}
		switch f, v, hasV := cutFlag(a); {
		case f != name:
		case !hasV:
			value, set = true, true
		default:
			b, err := strconv.ParseBool(v)
			value, set = b && err == nil, true
		}
	}
	return value, set
}

func cutFlag(a string) (name, value string, hasValue bool) {
	for len(a) > 0 && a[0] == '-' {
		a = a[1:]
	}
	for i := 0; i < len(a); i++ {
		if a[i] == '=' {
			return a[:i], a[i+1:], true
		}
	}
	return a, "", false
}

// enterNamespaces re-executes the process inside the user's rootless
// namespaces when its command needs them, before anything else runs (no
// goroutine, file or daemon connection may exist on both sides). It
// returns nil when nothing is to be done, and never returns otherwise
// unless re-executing failed.
func enterNamespaces(app *cli.App, m rootlessMode, args []string) error {
	if !m.enabled || rootless.InNamespace() || !needsNamespaces(app.Flags, args) {
		return nil
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable: %w", err)
	}
	wd, _ := os.Getwd()
	return rootless.Reexec(m.paths, exe, args[1:], os.Environ(), wd)
}

// needsNamespaces reports whether the command line args (args[0] the
// program, then the global flags, of which flags are the app's) runs a
// command that needs RootlessKit's namespaces (namespaceCommands), and
// not only to print its help.
func needsNamespaces(flags []cli.Flag, args []string) bool {
	var skip []string
	i := takeFlags(flags, args, 1, &skip)
	if i >= len(args) || !slices.Contains(namespaceCommands, args[i]) {
		return false
	}
	for _, a := range args[i:] {
		if a == "-h" || a == "--help" || a == "--generate-bash-completion" {
			return false
		}
		if a == "--" {
			break
		}
	}
	return true
}

// appDefaults are the global flags' defaults: the system's as root, the
// user's rootless instance's otherwise.
type appDefaults struct {
	address, root string
}

func (m rootlessMode) defaults() appDefaults {
	if !m.enabled {
		return appDefaults{address: config.DefaultAddress, root: config.DefaultRoot}
	}
	return appDefaults{address: m.paths.Socket(), root: m.paths.StateRoot()}
}

func modeOf(c *cli.Context) rootlessMode {
	m, _ := c.App.Metadata[metaRootless].(rootlessMode)
	return m
}
