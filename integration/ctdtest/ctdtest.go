// Package ctdtest starts a private containerd for the integration suite
// and the benchmark harness: its own root, state, config and socket under
// one directory, never the host's daemon.
package ctdtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
	cmd *exec.Cmd
}

// Start runs containerd with everything under dir and waits (up to 20 s)
// until it answers. env is the daemon's whole environment.
func Start(dir string, env []string) (*Daemon, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	d := &Daemon{Socket: filepath.Join(dir, "containerd.sock"), Log: filepath.Join(dir, "containerd.log")}
	cfg := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = %q
[ttrpc]
  address = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), d.Socket, d.Socket+".ttrpc")
	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	logf, err := os.Create(d.Log)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	d.cmd = exec.Command("containerd", "--config", cfgPath)
	d.cmd.Env = env
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start containerd: %w", err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctr := exec.Command("ctr", "--address", d.Socket, "version")
		ctr.Env = env
		if ctr.Run() == nil {
			return d, nil
		}
		if time.Now().After(deadline) {
			d.Stop()
			return nil, fmt.Errorf("containerd did not answer on %s within 20s (log: %s)", d.Socket, d.Log)
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
