package integration

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRunRefusesCompatSyscallABI: the run's seccomp filter covers only the
// host's own system call ABI, so code cannot step around its allowlist
// through the 32-bit one (int 0x80): the process is killed with SIGSYS
// instead of getting an answer (containerd's default profile lists i386
// and x32 and lets getpid through).
func TestRunRefusesCompatSyscallABI(t *testing.T) {
	if goruntime.GOARCH != "amd64" {
		t.Skip("the 32-bit ABI probe is x86 machine code")
	}
	code := `import ctypes, mmap
# mov eax, 20 (getpid in the i386 ABI); int 0x80; ret
insns = bytes([0xB8, 20, 0, 0, 0, 0xCD, 0x80, 0xC3])
buf = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
buf.write(insns)
f = ctypes.CFUNCTYPE(ctypes.c_long)(ctypes.addressof(ctypes.c_char.from_buffer(buf)))
result = f()
`
	file := filepath.Join(t.TempDir(), "int80.py")
	require.NoError(t, os.WriteFile(file, []byte(code), 0o600))
	// Without the 32-bit ABI in the kernel (no IA32 emulation) int 0x80
	// faults everywhere, on the host too: there is nothing to step around.
	probe := exec.Command("python3", file)
	probe.Env = []string{"PATH=/usr/bin:/bin"}
	if err := probe.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ProcessState.Sys().(syscall.WaitStatus).Signal() == syscall.SIGSEGV {
			t.Skip("this kernel has no 32-bit system call ABI: int 0x80 faults on the host too")
		}
		t.Fatalf("the probe on the host: %v", err)
	}
	r := sb(t, "run", "--json", "--image", env.base, "--code", file, "compat")
	require.Equal(t, 0, r.code, r.stderr)
	d := decodeRun(t, r.stdout)
	assert.Equal(t, 128+int(syscall.SIGSYS), d.Exit(), "killed by the filter, not answered: result %s", d.Result)
	assert.Nil(t, d.Result)
	assertNoRunLeftovers(t)
}
