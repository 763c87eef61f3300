package runtime

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/runtime-spec/specs-go"
	"github.com/skillbuild/skillbuild/runtime/pid1"
)

// initDir is where the init binary (pid1.Path) and, for a dynamically
// linked one, its loader and libraries are mounted in a run.
var initDir = path.Dir(pid1.Path)

// initBinary is the running program as a run's init: this package links
// package pid1, so the program becomes the init when started as
// pid1.Path. A dynamically linked program (cgo, the default where a C
// compiler is installed) is started through its own ELF loader with its
// own libraries, mounted next to it, so it runs in any image whatever libc
// the image has, or none; the code's python3 still uses the image's.
type initBinary struct {
	exe    string            // host path of the program
	loader string            // host path of its ELF interpreter; "" when static
	libs   map[string]string // soname → host path of the libraries it needs
}

// initFinder finds the running program's init binary once per process.
type initFinder struct {
	mu   sync.Mutex
	done bool
	b    initBinary
	err  error
}

var selfInits initFinder

// selfInit finds the running program's init binary once per process;
// stateDir keeps what the check of a separate init program found (see
// siblingInit), so that the next process need not start it again.
func selfInit(stateDir string) (initBinary, error) {
	f := &selfInits
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.done {
		f.b, f.err = findInit(stateDir)
		f.done = true
	}
	return f.b, f.err
}

// initSuffix names the separate init program next to the running one
// (skillbuild → skillbuild-init; see runtime/pid1/cmd/skillbuild-init).
const initSuffix = "-init"

func findInit(stateDir string) (initBinary, error) {
	exe, err := os.Executable()
	if err != nil {
		return initBinary{}, fmt.Errorf("find the running program for a run's init: %w", err)
	}
	if b, ok := siblingInitChecked(exe+initSuffix, stateDir); ok {
		return b, nil
	}
	return programInit(exe)
}

// initCheckName is the file in a state directory's images/ (what runs
// keep on purpose: image info, shared view locks) that records the last
// separate init program found good: its path, identity and the protocol
// it spoke (see siblingInitChecked).
const initCheckName = "init-checked"

// siblingInitChecked is siblingInit, remembered in stateDir: a program
// that passed the check before and is still the very same file (same
// path, device, inode, size, modification and change times, checked
// again for its owner and mode) is used without starting it once more.
// Replacing or changing the program in any way (a rebuild, a chmod, a
// chown) changes its change time, and so checks it anew.
func siblingInitChecked(p, stateDir string) (initBinary, bool) {
	key, ok := initIdentity(p)
	if !ok {
		return initBinary{}, false
	}
	record := filepath.Join(stateDir, "images", initCheckName)
	if old, err := os.ReadFile(record); err == nil && string(old) == key {
		return initBinary{exe: p}, true
	}
	b, ok := siblingInit(p)
	if ok {
		_ = writeFileAtomic(record, []byte(key)) // a failure costs the next run the check
	}
	return b, ok
}

// initIdentity names the file p as it is now, with the protocol this
// program speaks; ok is false when p is not safe to trust (see
// siblingInit).
func initIdentity(p string) (string, bool) {
	st, err := os.Stat(p)
	if err != nil || !trustedInitFile(st) {
		return "", false
	}
	sys := st.Sys().(*syscall.Stat_t)
	return fmt.Sprintf("%s\n%s\n%d %d %d %d.%d %d.%d %o %d\n", pid1.Protocol, p, sys.Dev, sys.Ino, sys.Size,
		sys.Mtim.Sec, sys.Mtim.Nsec, sys.Ctim.Sec, sys.Ctim.Nsec, sys.Mode, sys.Uid), true
}

// trustedInitFile: a regular executable file owned by root or by this
// process's user and writable by nobody else.
func trustedInitFile(st os.FileInfo) bool {
	if !st.Mode().IsRegular() || st.Mode()&0o111 == 0 || st.Mode()&0o022 != 0 {
		return false
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	return ok && (sys.Uid == 0 || int(sys.Uid) == os.Geteuid())
}

// writeFileAtomic writes data to p whole or not at all (a rename).
func writeFileAtomic(p string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), ".tmp-*")
	if err != nil {
		return err
	}
	_, werr := tmp.Write(data)
	if cerr := tmp.Close(); werr != nil || cerr != nil {
		os.Remove(tmp.Name())
		return errors.Join(werr, cerr)
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return nil
}

// siblingInit is the init program p when it can stand in for the running
// program: a static executable, a regular file owned by root or by this
// process's user and writable by nobody else, that speaks this package's
// init protocol (pid1.Protocol). A run's init then starts in about a
// millisecond, where the running program initializes every package it
// links first, and needs no loader or libraries mounted beside it.
func siblingInit(p string) (initBinary, bool) {
	st, err := os.Stat(p)
	if err != nil || !trustedInitFile(st) {
		return initBinary{}, false
	}
	f, err := elf.Open(p)
	if err != nil {
		return initBinary{}, false
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return initBinary{}, false // dynamic: only the running program's libraries are known
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, p, "--protocol")
	cmd.Env = []string{}
	out, err := cmd.Output()
	if err != nil || strings.TrimSpace(string(out)) != pid1.Protocol {
		return initBinary{}, false
	}
	return initBinary{exe: p}, true
}

// programInit is the running program exe as the init.
func programInit(exe string) (initBinary, error) {
	f, err := elf.Open(exe)
	if err != nil {
		return initBinary{}, fmt.Errorf("read %s for a run's init: %w", exe, err)
	}
	defer f.Close()
	b := initBinary{exe: exe, libs: map[string]string{}}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			data := make([]byte, p.Filesz)
			if _, err := p.ReadAt(data, 0); err != nil {
				return b, fmt.Errorf("read the ELF interpreter of %s: %w", exe, err)
			}
			b.loader = string(bytes.TrimRight(data, "\x00"))
		}
	}
	if b.loader == "" {
		return b, nil // static: nothing else to mount
	}
	// The libraries are the ones this very process has loaded: the exact
	// files the program runs with here.
	mapped, err := mappedSonames()
	if err != nil {
		return b, err
	}
	need, err := f.ImportedLibraries()
	if err != nil {
		return b, fmt.Errorf("read the libraries of %s: %w", exe, err)
	}
	for len(need) > 0 {
		name := need[0]
		need = need[1:]
		if _, done := b.libs[name]; done || name == path.Base(b.loader) {
			continue
		}
		p, ok := mapped[name]
		if !ok {
			return b, fmt.Errorf("library %s of %s is not loaded in this process: cannot give it to a run's init", name, exe)
		}
		b.libs[name] = p
		lf, err := elf.Open(p)
		if err != nil {
			return b, fmt.Errorf("read library %s: %w", p, err)
		}
		more, err := lf.ImportedLibraries()
		lf.Close()
		if err != nil {
			return b, fmt.Errorf("read library %s: %w", p, err)
		}
		need = append(need, more...)
	}
	return b, nil
}

// mappedSonames maps the soname of every shared object this process has
// mapped to its path.
func mappedSonames() (map[string]string, error) {
	data, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return nil, fmt.Errorf("list loaded libraries: %w", err)
	}
	out := map[string]string{}
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || !strings.HasPrefix(fields[5], "/") || seen[fields[5]] {
			continue
		}
		p := fields[5]
		seen[p] = true
		f, err := elf.Open(p)
		if err != nil {
			continue // not an ELF file, or gone
		}
		if names, err := f.DynString(elf.DT_SONAME); err == nil && len(names) > 0 {
			out[names[0]] = p
		}
		f.Close()
	}
	return out, nil
}

// mounts are the read-only bind mounts that put the init into a run.
// Unlike the sandbox files they are executable.
func (b initBinary) mounts() []specs.Mount {
	ro := func(src, dst string) specs.Mount {
		return specs.Mount{Destination: dst, Type: "bind", Source: src, Options: []string{"rbind", "ro", "nosuid", "nodev"}}
	}
	ms := []specs.Mount{ro(b.exe, pid1.Path)}
	if b.loader != "" {
		ms = append(ms, ro(b.loader, path.Join(initDir, "lib", path.Base(b.loader))))
		for _, name := range slices.Sorted(maps.Keys(b.libs)) {
			ms = append(ms, ro(b.libs[name], path.Join(initDir, "lib", name)))
		}
	}
	return ms
}

// args is the process argv of a run: argv under the init, with timeout
// and the host's report socket at report (a path inside the container).
func (b initBinary) args(timeout, warm time.Duration, report string, argv []string) []string {
	a := pid1.Args(timeout, report, argv...)
	if warm > 0 {
		a = pid1.WarmArgs(warm, report, argv...)
	}
	if b.loader == "" {
		return a
	}
	lib := path.Join(initDir, "lib")
	return append([]string{path.Join(lib, path.Base(b.loader)), "--library-path", lib}, a...)
}

// withInit runs the process under the init b with the run's timeout: the
// process's argv becomes the init's child, and b's files are mounted. With
// warm positive the init waits up to warm for its job and the job's own
// timeout instead (pid1.WarmArgs).
func withInit(b initBinary, timeout, warm time.Duration) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if s.Process == nil || len(s.Process.Args) == 0 {
			return fmt.Errorf("no process to run under the init: %w", errdefs.ErrInvalidArgument)
		}
		if b.exe == "" {
			return fmt.Errorf("no init binary: %w", errdefs.ErrInvalidArgument)
		}
		s.Process.Args = b.args(timeout, warm, path.Join(SandboxDir, reportName), s.Process.Args)
		s.Mounts = append(s.Mounts, b.mounts()...)
		return nil
	}
}
