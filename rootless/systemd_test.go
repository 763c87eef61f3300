package rootless

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// unitLines parses a unit file into section → key → values.
func unitLines(t *testing.T, unit string) map[string]map[string][]string {
	t.Helper()
	out := map[string]map[string][]string{}
	section := ""
	for _, l := range strings.Split(unit, "\n") {
		switch {
		case l == "" || strings.HasPrefix(l, "#"):
		case strings.HasPrefix(l, "[") && strings.HasSuffix(l, "]"):
			section = l[1 : len(l)-1]
			out[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(l, "=")
			require.True(t, ok, "line %q is KEY=VALUE", l)
			require.NotEmpty(t, section, "line %q before any section", l)
			out[section][k] = append(out[section][k], v)
		}
	}
	return out
}

func TestUnit(t *testing.T) {
	t.Parallel()
	u := unitLines(t, string(Unit("/home/al ice/bin/skillbuild",
		[]string{"rootless", "start", "--foreground"},
		[]string{"PATH=/usr/bin:/bin", "HOME=/home/al ice", "XDG_RUNTIME_DIR=/run/user/1000", "XDG_DATA_HOME=/data/100%"})))
	svc := u["Service"]
	require.NotNil(t, svc, "a [Service] section")
	assert.Equal(t, []string{`"/home/al ice/bin/skillbuild" rootless start --foreground`}, svc["ExecStart"],
		"the binary that ran setup, quoted, in the foreground (RootlessKit becomes the main process)")
	assert.Equal(t, []string{"PATH=/usr/bin:/bin", `"HOME=/home/al ice"`, "XDG_RUNTIME_DIR=/run/user/1000", "XDG_DATA_HOME=/data/100%%"}, svc["Environment"],
		"the environment that places the instance, quoted, with % escaped")
	assert.Equal(t, []string{"simple"}, svc["Type"])
	assert.Equal(t, []string{"yes"}, svc["Delegate"], "the unit's cgroup subtree belongs to the user (cgroup v2 limits)")
	assert.Equal(t, []string{"mixed"}, svc["KillMode"], "SIGTERM to RootlessKit, SIGKILL to the rest")
	assert.Equal(t, []string{"on-failure"}, svc["Restart"])
	for _, k := range []string{"LimitNOFILE", "LimitNPROC", "TasksMax"} {
		assert.Equal(t, []string{"infinity"}, svc[k], k)
	}
	assert.Equal(t, []string{"default.target"}, u["Install"]["WantedBy"], "enabled: starts with the user's manager")
	assert.NotEmpty(t, u["Unit"]["Description"])
}

func TestSystemdQuote(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in         string
		exec, want string
	}{
		{"/usr/bin/skillbuild", "/usr/bin/skillbuild", "/usr/bin/skillbuild"},
		{"a b", `"a b"`, `"a b"`},
		{`say "hi"\`, `"say \"hi\"\\"`, `"say \"hi\"\\"`},
		{"50%", "50%%", "50%%"},
		{"$HOME", "$$HOME", "$HOME"},
		{"a;b", `"a;b"`, `"a;b"`},
		{"", `""`, `""`},
	} {
		assert.Equal(t, tc.exec, systemdQuote(tc.in, true), "ExecStart word %q", tc.in)
		assert.Equal(t, tc.want, systemdQuote(tc.in, false), "Environment value %q", tc.in)
	}
}

// fakeSystemctl is a systemctl that logs its arguments to log and answers
// "show-environment" with code.
func fakeSystemctl(t *testing.T, showEnvExit int) (bin, log string) {
	t.Helper()
	dir := t.TempDir()
	bin, log = filepath.Join(dir, "systemctl"), filepath.Join(dir, "log")
	script := fmt.Sprintf("#!/bin/sh\necho \"$*\" >> %s\ncase \"$2\" in show-environment) exit %d;; esac\nexit 0\n", log, showEnvExit)
	require.NoError(t, os.WriteFile(bin, []byte(script), 0o755))
	return bin, log
}

func TestSystemdAvailable(t *testing.T) {
	t.Parallel()
	bin, _ := fakeSystemctl(t, 1)
	err := Systemd{Bin: bin}.Available(context.Background())
	assert.True(t, errdefs.IsUnavailable(err), "systemctl --user fails: no user manager: %v", err)
	bin, log := fakeSystemctl(t, 0)
	require.NoError(t, Systemd{Bin: bin}.Available(context.Background()))
	b, err := os.ReadFile(log)
	require.NoError(t, err)
	assert.Equal(t, "--user show-environment\n", string(b), "asked the user's manager, as nerdctl's setup tool does")
}

func TestSystemdInstallAndUninstall(t *testing.T) {
	t.Parallel()
	bin, log := fakeSystemctl(t, 0)
	sd := Systemd{Bin: bin}
	p := Paths{Data: t.TempDir(), Run: t.TempDir(), UnitDir: filepath.Join(t.TempDir(), "systemd", "user")}
	path, err := sd.Install(context.Background(), p, []byte("[Unit]\n"))
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(p.UnitDir, UnitName), path)
	assert.FileExists(t, path)
	_, err = sd.Install(context.Background(), p, []byte("[Unit]\nDescription=new\n"))
	require.NoError(t, err, "a second setup rewrites the unit")
	b, _ := os.ReadFile(path)
	assert.Contains(t, string(b), "Description=new")
	require.NoError(t, sd.Uninstall(context.Background(), p))
	assert.NoFileExists(t, path)
	require.NoError(t, sd.Uninstall(context.Background(), p), "nothing installed is no error")
	b, err = os.ReadFile(log)
	require.NoError(t, err)
	assert.Equal(t, strings.Join([]string{
		"--user daemon-reload", "--user enable " + UnitName,
		"--user daemon-reload", "--user enable " + UnitName,
		"--user stop " + UnitName, "--user disable " + UnitName, "--user daemon-reload",
	}, "\n")+"\n", string(b))

	_, err = sd.Install(context.Background(), Paths{}, nil)
	assert.True(t, errdefs.IsInvalidArgument(err), "no unit directory: %v", err)
}

func TestPathsUnitDir(t *testing.T) {
	t.Parallel()
	p, err := PathsFor(Env{UID: 1000, Home: "/home/u", RuntimeDir: "/r"})
	require.NoError(t, err)
	assert.Equal(t, "/home/u/.config/systemd/user/"+UnitName, p.UnitPath())
	p, err = PathsFor(Env{UID: 1000, Home: "/home/u", ConfigHome: "/cfg", RuntimeDir: "/r"})
	require.NoError(t, err)
	assert.Equal(t, "/cfg/systemd/user/"+UnitName, p.UnitPath())
}

func TestStopThroughSystemd(t *testing.T) {
	t.Parallel()
	bin, log := fakeSystemctl(t, 0)
	p := Paths{Data: t.TempDir(), Run: filepath.Join(t.TempDir(), "skillbuild"), UnitDir: t.TempDir()}
	res, err := Stop(context.Background(), p, time.Second, StopSystemd(Systemd{Bin: bin}))
	require.NoError(t, err)
	assert.False(t, res.Stopped, "nothing ran")
	b, err := os.ReadFile(log)
	require.NoError(t, err)
	assert.Equal(t, "--user stop "+UnitName+"\n", string(b), "systemd stops the unit first, so it does not restart it")
}
