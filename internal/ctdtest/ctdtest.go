// Package ctdtest starts a private containerd for the integration suite
// and the benchmark harness: its own root, state, config and socket under
// one directory, never the host's daemon. The binaries (containerd, its
// runc shim, ctr) are the first in the PATH of the daemon's environment,
// so a lane can test another containerd by putting its directory first.
package ctdtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Daemon is a running private containerd.
type Daemon struct {
	// Socket is the daemon's gRPC socket.
	Socket string
	// Log is the file the daemon writes its log to.
	Log string
	// Binary is the containerd binary that runs, and Version what its
	// --version says (e.g. "1.6.20~ds1", "2.4.2").
	Binary, Version string
	cmd             *exec.Cmd
}

// readyTimeout bounds the wait for a new daemon's first answer: generous,
// as a loaded machine or an emulated one starts it slowly.
const readyTimeout = 2 * time.Minute

// LookPath finds bin in the PATH of env (a process environment), as the
// process started with env would.
func LookPath(bin string, env []string) (string, error) {
	path := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		p := filepath.Join(dir, bin)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in PATH=%s", bin, path)
}

// Major is the major version in a containerd version string (0 when it
// has none).
func Major(version string) int {
	n, _ := strconv.Atoi(strings.TrimPrefix(strings.SplitN(version, ".", 2)[0], "v"))
	return n
}

// config is the daemon's config.toml: version 2 for containerd 1.x;
// version 3 for 2.x, which converts it at start. (Version 4 moved the
// grpc and ttrpc addresses into plugin sections and ignores the top-level
// ones: a daemon given them there listens on the default socket.)
func config(major int, dir, socket string) string {
	version, disabled := 2, `"io.containerd.grpc.v1.cri"`
	if major >= 2 {
		version, disabled = 3, `"io.containerd.grpc.v1.cri", "io.containerd.cri.v1.images", "io.containerd.cri.v1.runtime"`
	}
	return fmt.Sprintf(`version = %d
root = %q
state = %q
disabled_plugins = [%s]
[grpc]
  address = %q
[ttrpc]
  address = %q
`, version, filepath.Join(dir, "root"), filepath.Join(dir, "state"), disabled, socket, socket+".ttrpc")
}

// Start runs containerd with everything under dir and waits until it
// answers. env is the daemon's whole environment; its PATH picks
// containerd, the shim and ctr.
func Start(dir string, env []string) (*Daemon, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	d := &Daemon{Socket: filepath.Join(dir, "containerd.sock"), Log: filepath.Join(dir, "containerd.log")}
	var err error
	if d.Binary, err = LookPath("containerd", env); err != nil {
		return nil, err
	}
	ctrBin, err := LookPath("ctr", env)
	if err != nil {
		return nil, err
	}
	out, err := exec.Command(d.Binary, "--version").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --version: %w", d.Binary, err)
	}
	// "containerd github.com/containerd/containerd[/v2] VERSION REVISION"
	if f := strings.Fields(string(out)); len(f) >= 3 {
		d.Version = strings.TrimPrefix(f[2], "v")
	}
	cfg := config(Major(d.Version), dir, d.Socket)
	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	logf, err := os.Create(d.Log)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	d.cmd = exec.Command(d.Binary, "--config", cfgPath)
	d.cmd.Env = env
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start containerd: %w", err)
	}
	deadline := time.Now().Add(readyTimeout)
	for {
		ctr := exec.Command(ctrBin, "--address", d.Socket, "version")
		ctr.Env = env
		if ctr.Run() == nil {
			return d, nil
		}
		if time.Now().After(deadline) {
			d.Stop()
			return nil, fmt.Errorf("containerd %s (%s) did not answer on %s within %s (log: %s)", d.Version, d.Binary, d.Socket, readyTimeout, d.Log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop ends the daemon (SIGTERM, then SIGKILL of its process group after
// 15 s). Safe on a nil Daemon.
func (d *Daemon) Stop() {
	if d == nil || d.cmd == nil || d.cmd.Process == nil {
		return
	}
	d.cmd.Process.Signal(syscall.SIGTERM) //nolint:errcheck
	done := make(chan struct{})
	go func() { d.cmd.Wait(); close(done) }() //nolint:errcheck
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL) //nolint:errcheck
	}
	d.cmd = nil
}

// Tail returns the last n lines of the daemon's log, for failure reports.
func (d *Daemon) Tail(n int) string {
	if d == nil {
		return ""
	}
	b, err := os.ReadFile(d.Log)
	if err != nil {
		return ""
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
