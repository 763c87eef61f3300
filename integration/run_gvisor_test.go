package integration

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	sbruntime "github.com/skillbuild/skillbuild/runtime"
	"github.com/skillbuild/skillbuild/skill/api"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// requireRunsc skips a gVisor test on a host without Debian's runsc,
// saying so; where the suite is required (SKILLBUILD_INTEGRATION=1, as
// `make test` sets after hack/deps.sh installed runsc) that is a failure.
func requireRunsc(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(sbruntime.DefaultRunsc); err != nil {
		if os.Getenv(requireEnv) == "1" {
			t.Fatalf("gVisor runs need runsc at %s (apt-get install runsc; hack/deps.sh installs it): %v", sbruntime.DefaultRunsc, err)
		}
		t.Skipf("gVisor runs need runsc at %s (apt-get install runsc; hack/deps.sh installs it): %v", sbruntime.DefaultRunsc, err)
	}
}

// kernelCode reports the kernel the code sees and what it can do
// there: the kernel's version line, and whether the root, the network
// and a big allocation get anywhere.
const kernelCode = `import errno, os, socket
def attempt(f):
    try:
        f()
        return "ok"
    except OSError as e:
        return errno.errorcode[e.errno]
def connect():
    s = socket.socket()
    s.settimeout(5)
    s.connect(("1.1.1.1", 80))
ifaces = sorted(n for _, n in socket.if_nameindex())
result = {
    "version": open("/proc/version").read().strip(),
    "release": os.uname().release,
    "write_root": attempt(lambda: open("/evil", "w")),
    "evil": os.path.exists("/evil"),
    "connect": attempt(connect),
    "ifaces": ifaces,
}`

// TestRunGVisor runs code under gVisor through the command line: it
// runs in gVisor's kernel, not the host's (the default runtime runs on
// the host's), with a read-only root and no network; the memory limit
// and the deadline hold; a run under a runsc that is not there is
// refused as bad input naming what to install; nothing is left.
func TestRunGVisor(t *testing.T) {
	requireRunsc(t)
	host, err := os.ReadFile("/proc/version")
	require.NoError(t, err)
	type kernel struct {
		Version   string   `json:"version"`
		Release   string   `json:"release"`
		WriteRoot string   `json:"write_root"`
		Evil      bool     `json:"evil"`
		Connect   string   `json:"connect"`
		Ifaces    []string `json:"ifaces"`
	}

	t.Run("runs in gVisor's kernel", func(t *testing.T) {
		d := runCode(t, kernelCode, "--runtime", "gvisor")
		requireClean(t, d)
		k := resultAs[kernel](t, d)
		assert.NotEqual(t, strings.TrimSpace(string(host)), k.Version, "the code sees gVisor's kernel, not the host's")
		assert.Contains(t, k.Version, "#1 SMP Sun Jan 10 15:06:54 PST 2016", "gVisor's /proc/version")
		// gVisor checks the permission before the read-only mount: an
		// unprivileged write is EACCES where Linux says EROFS.
		assert.Contains(t, []string{"EROFS", "EACCES"}, k.WriteRoot, "no write to the root")
		assert.False(t, k.Evil, "nothing written")
		// As root, which the permission does not stop, the mount does.
		d = runCode(t, kernelCode, "--runtime", "gvisor", "--user", "0")
		requireClean(t, d)
		k = resultAs[kernel](t, d)
		assert.Equal(t, "EROFS", k.WriteRoot, "the root is mounted read-only")
		assert.False(t, k.Evil, "nothing written")
		assert.Contains(t, []string{"ENETUNREACH", "EHOSTUNREACH"}, k.Connect, "no network")
		assert.Equal(t, []string{"lo"}, k.Ifaces, "only gVisor's own loopback")
		assert.Equal(t, "cgroup", d.LimitsEnforced["memory"])
	})

	t.Run("runc by default, on the host's kernel", func(t *testing.T) {
		d := runCode(t, kernelCode)
		requireClean(t, d)
		k := resultAs[kernel](t, d)
		assert.Equal(t, strings.TrimSpace(string(host)), k.Version)
	})

	t.Run("skill.yaml says gvisor, the flag says runc", func(t *testing.T) {
		f := filepath.Join(t.TempDir(), "skill.yaml")
		require.NoError(t, os.WriteFile(f, []byte("id: hostile\nversion: 1\nrun: {runtime: gvisor}\n"), 0o600))
		k := resultAs[kernel](t, runCode(t, kernelCode, "-f", f))
		assert.NotEqual(t, strings.TrimSpace(string(host)), k.Version, "skill.yaml's runtime")
		k = resultAs[kernel](t, runCode(t, kernelCode, "-f", f, "--runtime", "runc"))
		assert.Equal(t, strings.TrimSpace(string(host)), k.Version, "the flag over skill.yaml")
	})

	// gVisor names a message's sender when the init reads it, not when
	// the runner sends it: a runner that exited before the init read its
	// report's end lost that end (runner.py's _send waits for the init).
	t.Run("a large result comes whole", func(t *testing.T) {
		for range 2 {
			d := runCode(t, "result = 'x' * (10 << 20)", "--runtime", "gvisor")
			requireClean(t, d)
			assert.Len(t, resultAs[string](t, d), 10<<20, "the whole result")
		}
	})

	t.Run("the memory limit holds", func(t *testing.T) {
		d := runCode(t, "b = []\nwhile True:\n    b.append(bytearray(8 << 20))", "--runtime", "gvisor", "--memory", "96m")
		require.True(t, d.OOMKilled, "error: %+v stderr: %s", d.Error, d.Stderr)
		require.NotNil(t, d.Error)
		assert.Equal(t, "OutOfMemory", d.Error.Type)
		assert.False(t, d.TimedOut)
	})

	t.Run("the deadline holds", func(t *testing.T) {
		requireTimedOut(t, runCode(t, "import time\nprint('sleeping', flush=True)\ntime.sleep(3600)", "--runtime", "gvisor", "--timeout", "3s"))
	})

	t.Run("an unknown runtime is bad input", func(t *testing.T) {
		r := sb(t, "run", "--json", "--image", env.base, "--runtime", "kata", "-c", "pass", "hostile")
		assert.Equal(t, api.ExitBadInput, r.code, "stderr: %s", r.stderr)
		assert.Contains(t, r.stdout+r.stderr, `runtime "kata" is invalid: use one of runc, gvisor`)
	})

	t.Run("without runsc the run is refused, naming what to install", func(t *testing.T) {
		r, err := sbruntime.New(context.Background(), ctdClient(t), sbruntime.WithStateDir(filepath.Join(env.root, "runs")),
			sbruntime.WithRunsc(filepath.Join(t.TempDir(), "runsc")))
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, err = r.Run(ctx, sbruntime.Request{Image: env.base, Code: []byte("pass"), Limits: sbruntime.Limits{Runtime: sbruntime.RuntimeGVisor}})
		require.Error(t, err)
		assert.ErrorIs(t, err, errdefs.ErrInvalidArgument)
		assert.Equal(t, api.ExitBadInput, api.ExitCode(err))
		assert.Contains(t, err.Error(), "apt-get install runsc")
	})

	assertNoRunLeftovers(t)
}
