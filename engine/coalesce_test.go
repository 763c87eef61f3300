package engine

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/buildkit/executor"
	resourcestypes "github.com/moby/buildkit/executor/resources/types"
	gatewayapi "github.com/moby/buildkit/frontend/gateway/pb"
	"github.com/moby/buildkit/solver/pb"
	sbllb "github.com/skillbuild/skillbuild/llb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func installMeta(args ...string) executor.Meta {
	return executor.Meta{
		Args:           append([]string{sbllb.VenvDir + "/bin/python", "-I", "-B", sbllb.WheelInstaller}, args...),
		Env:            []string{"SOURCE_DATE_EPOCH=0"},
		Cwd:            "/",
		NetMode:        pb.NetMode_NONE,
		LinuxResources: &pb.LinuxResources{Memory: 512 << 20},
	}
}

var quad = []string{"a", "1.0", strings.Repeat("0", 64), "/run/skillbuild/files/0/a-1.0-py3-none-any.whl"}

// TestBatchKeyGroupsOnlyInstallStepsAlike: install steps batch together
// when their process differs only in the installer's arguments; anything
// else (another step, other limits, env, network, an interactive process)
// runs as BuildKit runs it.
func TestBatchKeyGroupsOnlyInstallStepsAlike(t *testing.T) {
	t.Parallel()
	tmp := []executor.Mount{{Dest: "/tmp"}, {Dest: "/run/skillbuild/files/0"}}
	base, ok := batchKey("", tmp, executor.ProcessInfo{Meta: installMeta(quad...)})
	require.True(t, ok)
	other := append([]string{"b", "2.0"}, quad[2:]...)
	k, ok := batchKey("", tmp, executor.ProcessInfo{Meta: installMeta(append(other, quad...)...)})
	require.True(t, ok, "a layer of two distributions")
	assert.Equal(t, base, k, "only the installer's arguments differ")

	tests := map[string]struct {
		id     string
		mounts []executor.Mount
		meta   func(*executor.Meta)
		batch  bool // batchable, with a key other than base's
	}{
		"not the installer": {meta: func(m *executor.Meta) { m.Args[3] = "/run/skillbuild/mkvenv/mkvenv.py" }},
		"pip": {meta: func(m *executor.Meta) {
			m.Args = []string{"/usr/bin/python3", "-m", "pip", "install", "x", "y", "z", "w"}
		}},
		"no wheel":                 {meta: func(m *executor.Meta) { m.Args = m.Args[:4] }},
		"half a quadruple":         {meta: func(m *executor.Meta) { m.Args = m.Args[:6] }},
		"a container by name":      {id: "named"},
		"a terminal":               {meta: func(m *executor.Meta) { m.Tty = true }},
		"valid exit codes":         {meta: func(m *executor.Meta) { m.ValidExitCodes = []int{0, 1} }},
		"no /tmp of its own":       {mounts: []executor.Mount{{Dest: "/run/skillbuild/files/0"}}},
		"a mount in the batch dir": {mounts: append(tmp, executor.Mount{Dest: batchDir + "/x"})},
		"another memory limit":     {meta: func(m *executor.Meta) { m.LinuxResources = &pb.LinuxResources{Memory: 1 << 30} }, batch: true},
		"other rlimits":            {meta: func(m *executor.Meta) { m.Ulimit = []*pb.Ulimit{{Name: "data", Soft: 1, Hard: 1}} }, batch: true},
		"another env":              {meta: func(m *executor.Meta) { m.Env = append(m.Env, "X=1") }, batch: true},
		"another user":             {meta: func(m *executor.Meta) { m.User = "1000" }, batch: true},
		"host network":             {meta: func(m *executor.Meta) { m.NetMode = pb.NetMode_HOST }, batch: true},
		"insecure":                 {meta: func(m *executor.Meta) { m.SecurityMode = pb.SecurityMode_INSECURE }, batch: true},
		"another cgroup parent":    {meta: func(m *executor.Meta) { m.CgroupParent = "elsewhere" }, batch: true},
		"read-only root":           {meta: func(m *executor.Meta) { m.ReadonlyRootFS = true }, batch: true},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			m := installMeta(quad...)
			if tt.meta != nil {
				tt.meta(&m)
			}
			mounts := tmp
			if tt.mounts != nil {
				mounts = tt.mounts
			}
			k, ok := batchKey(tt.id, mounts, executor.ProcessInfo{Meta: m})
			assert.Equal(t, tt.batch, ok)
			if ok {
				assert.NotEqual(t, base, k, "not batched with the plain install step")
			}
		})
	}
}

// TestBatchInstallDriverInstallsEachRootAlone runs batchinstall.py with
// the host's python over roots that hold a copy of one venv: each group is
// installed in its own root as the installer alone installs it, a refused
// wheel fails only its group (with the installer's message), and a root
// with another venv is left untouched and reported as not batchable.
func TestBatchInstallDriverInstallsEachRootAlone(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the driver chroots into each step's root: needs root")
	}
	t.Parallel()
	py, err := exec.LookPath("python3")
	require.NoError(t, err)
	work := t.TempDir()
	venv := filepath.Join(work, "venv")
	out, err := exec.Command(py, "-m", "venv", "--without-pip", venv).CombinedOutput()
	require.NoError(t, err, "%s", out)
	installer := filepath.Join(work, "installer", "wheelinstall.py")
	require.NoError(t, os.MkdirAll(filepath.Dir(installer), 0o755))
	require.NoError(t, os.WriteFile(installer, sbllb.WheelInstallScript(), 0o644))
	driver := filepath.Join(work, "batchinstall.py")
	require.NoError(t, os.WriteFile(driver, batchInstallScript, 0o644))

	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, content := range map[string]string{
		"good/__init__.py":                    "X = 1\n",
		"good-1.0.data/scripts/good-tool":     "#!python\nprint('hi')\n",
		"good-1.0.dist-info/entry_points.txt": "[console_scripts]\ngood = good:main\n",
		"good-1.0.dist-info/WHEEL":            "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
		"good-1.0.dist-info/METADATA":         "Metadata-Version: 2.1\nName: good\nVersion: 1.0\n",
		"good-1.0.dist-info/RECORD":           "",
	} {
		w, err := zw.Create(name)
		require.NoError(t, err)
		_, err = w.Write([]byte(content))
		require.NoError(t, err)
	}
	require.NoError(t, zw.Close())
	whl := filepath.Join(work, "files", "good-1.0-py3-none-any.whl")
	require.NoError(t, os.MkdirAll(filepath.Dir(whl), 0o755))
	require.NoError(t, os.WriteFile(whl, buf.Bytes(), 0o644))
	sum := sha256.Sum256(buf.Bytes())
	good := hex.EncodeToString(sum[:])

	// Each root: a copy of the venv, the installer and the wheel at the
	// paths the step sees; the third root's venv is another one.
	roots := make([]string, 3)
	for i := range roots {
		roots[i] = filepath.Join(work, fmt.Sprintf("root-%d", i))
		require.NoError(t, os.MkdirAll(roots[i]+work, 0o755))
		for _, d := range []string{"venv", "installer", "files"} {
			out, err := exec.Command("cp", "-a", filepath.Join(work, d), roots[i]+work).CombinedOutput()
			require.NoError(t, err, "%s", out)
		}
	}
	require.NoError(t, os.WriteFile(filepath.Join(roots[2]+venv, "pyvenv.cfg"), []byte("home = /elsewhere\n"), 0o644))
	untouched := map[int]string{1: treeOf(t, roots[1]+venv), 2: treeOf(t, roots[2]+venv)}

	cmd := exec.Command(filepath.Join(venv, "bin", "python"), "-I", "-B", driver, "--jobs", "2", installer,
		"--root", roots[0], "good", "1.0", good, whl,
		"--root", roots[1], "good", "1.0", strings.Repeat("0", 64), whl,
		"--root", roots[2], "good", "1.0", good, whl)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "SOURCE_DATE_EPOCH=0", "LANG=C.UTF-8"}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	require.NoError(t, err, stderr.String())
	got := map[int]batchStatus{}
	for _, line := range strings.Split(strings.TrimSpace(string(stdout)), "\n") {
		js, ok := strings.CutPrefix(line, batchStatusPrefix)
		require.True(t, ok, "only status lines: %q", stdout)
		var st batchStatus
		require.NoError(t, json.Unmarshal([]byte(js), &st))
		got[st.I] = st
	}
	require.Len(t, got, 3, "%s", stdout)
	assert.Equal(t, batchStatus{I: 0}, got[0])
	assert.Equal(t, 1, got[1].Exit)
	assert.Contains(t, got[1].Output, "wheelinstall: good 1.0 (good-1.0-py3-none-any.whl): refused: sha256 ")
	assert.Equal(t, batchNotBatchable, got[2].Exit, got[2].Output)
	assert.Equal(t, untouched[1], treeOf(t, roots[1]+venv), "a refused wheel writes nothing")
	assert.Equal(t, untouched[2], treeOf(t, roots[2]+venv), "another venv is not touched")

	// The installer alone, into the venv itself, writes the same.
	cmd = exec.Command(filepath.Join(venv, "bin", "python"), "-I", "-B", installer, "good", "1.0", good, whl)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "SOURCE_DATE_EPOCH=0", "LANG=C.UTF-8"}
	out, err = cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	alone := treeOf(t, venv)
	assert.Equal(t, alone, treeOf(t, roots[0]+venv))
	assert.Contains(t, alone, " #!"+venv+"/bin/python\nprint('hi')", "the shebang names the venv as the step sees it")
}

// treeOf lists every path under dir with its mode, time and content or
// link target, one line each.
func treeOf(t *testing.T, dir string) string {
	t.Helper()
	var lines []string
	require.NoError(t, filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		v := fmt.Sprintf("%s: %v %d ", rel, fi.Mode(), fi.ModTime().Unix())
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			v += "-> " + target
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			require.NoError(t, err)
			sum := sha256.Sum256(b)
			v += hex.EncodeToString(sum[:])
			if strings.HasPrefix(rel, "bin/good") {
				v += " " + string(b)
			}
		}
		lines = append(lines, v)
		return nil
	}))
	return strings.Join(lines, "\n")
}

// fakeExecutor stands for containerd's executor: it records every Run and
// answers a batch with the statuses in exits (by group index).
type fakeExecutor struct {
	mu    sync.Mutex
	calls []executor.Meta
	mnts  [][]executor.Mount
	exits map[int]int
}

func (f *fakeExecutor) Run(_ context.Context, _ string, _ executor.Mount, mounts []executor.Mount, p executor.ProcessInfo, started chan<- struct{}) (resourcestypes.Recorder, error) {
	f.mu.Lock()
	f.calls = append(f.calls, p.Meta)
	f.mnts = append(f.mnts, mounts)
	f.mu.Unlock()
	if started != nil {
		close(started)
	}
	if !strings.HasSuffix(p.Meta.Args[3], "batchinstall.py") {
		return nil, nil
	}
	groups := 0
	for _, a := range p.Meta.Args {
		if a == "--root" {
			groups++
		}
	}
	for i := range groups {
		out := ""
		if f.exits[i] != 0 {
			out = fmt.Sprintf("wheelinstall: group %d failed\n", i)
		}
		js, _ := json.Marshal(batchStatus{I: i, Exit: f.exits[i], Output: out})
		fmt.Fprintf(p.Stdout, "%s%s\n", batchStatusPrefix, js)
	}
	return nil, nil
}

func (f *fakeExecutor) Exec(context.Context, string, executor.ProcessInfo) error { return nil }

type bufCloser struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *bufCloser) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}
func (*bufCloser) Close() error { return nil }
func (w *bufCloser) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// TestInstallBatcherAnswersEachStep: install steps that arrive together
// run as one container whose mounts nest each other step's root and
// mounts below batchDir and whose CPU quota is one step's per install run
// at once; each step gets its own result: success with a log line, its
// own exit status and message, or (not batchable, killed) a run alone
// with its own arguments.
func TestInstallBatcherAnswersEachStep(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the batcher mounts each step's root on the host: needs root")
	}
	fake := &fakeExecutor{exits: map[int]int{1: 1, 2: batchNotBatchable, 3: 137}}
	b, err := newInstallBatcher(fake, t.TempDir())
	require.NoError(t, err)
	b.quiet = 200 * time.Millisecond // every step below arrives in one batch
	b.window = 2 * time.Second

	const steps = 4
	type answer struct {
		err            error
		stdout, stderr *bufCloser
		started        chan struct{}
	}
	answers := make([]answer, steps)
	var wg sync.WaitGroup
	for i := range steps {
		answers[i] = answer{stdout: &bufCloser{}, stderr: &bufCloser{}, started: make(chan struct{})}
		meta := installMeta(fmt.Sprintf("d%d", i), "1.0", strings.Repeat("0", 64), "/run/skillbuild/files/0/d.whl")
		meta.LinuxResources = &pb.LinuxResources{CpuPeriod: 100000, CpuQuota: 100000}
		mounts := []executor.Mount{{Src: hostBind(t.TempDir()), Dest: "/tmp"}, {Src: hostBind(t.TempDir()), Dest: "/run/skillbuild/files/0", Readonly: true}}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, answers[i].err = b.Run(context.Background(), "", executor.Mount{Src: hostBind(t.TempDir())}, mounts,
				executor.ProcessInfo{Meta: meta, Stdout: answers[i].stdout, Stderr: answers[i].stderr}, answers[i].started)
		}()
		time.Sleep(5 * time.Millisecond)
	}
	wg.Wait()

	require.Len(t, fake.calls, 3, "one batch, then the two steps it did not install, alone")
	batch := fake.calls[0]
	jobs := min(steps, runtime.NumCPU())
	assert.Equal(t, int64(100000*jobs), batch.LinuxResources.CpuQuota, "one step's CPU quota per install run at once")
	assert.Equal(t, []string{"--jobs", strconv.Itoa(jobs)}, batch.Args[4:6])
	var dests []string
	for _, m := range fake.mnts[0] {
		dests = append(dests, m.Dest)
	}
	for _, want := range []string{"/tmp", batchDir + "/driver", batchDir + "/1", batchDir + "/1/tmp", batchDir + "/3/run/skillbuild/files/0"} {
		assert.Contains(t, dests, want)
	}
	for _, alone := range fake.calls[1:] {
		assert.Equal(t, sbllb.WheelInstaller, alone.Args[3], "alone: the step's own process")
		assert.Contains(t, []string{"d2", "d3"}, alone.Args[4])
		assert.Equal(t, int64(100000), alone.LinuxResources.CpuQuota, "alone: the step's own limits")
	}

	for i, a := range answers {
		select {
		case <-a.started:
		default:
			t.Errorf("step %d: started not closed", i)
		}
	}
	// Which request became which group depends on arrival order: map by
	// the name each group's status names.
	byName := map[string]answer{}
	for i, a := range answers {
		byName[fmt.Sprintf("d%d", i)] = a
	}
	groupOf := map[string]int{}
	g := -1
	for _, a := range batch.Args {
		if a == "--root" {
			g++
		} else if g >= 0 && strings.HasPrefix(a, "d") && len(a) == 2 {
			groupOf[a] = g
		}
	}
	for name, a := range byName {
		switch fake.exits[groupOf[name]] {
		case 0:
			assert.NoError(t, a.err, name)
			assert.Contains(t, a.stdout.String(), "installed in one container with 3 other install steps", name)
		case 1:
			var exit *gatewayapi.ExitError
			require.ErrorAs(t, a.err, &exit, name)
			assert.EqualValues(t, 1, exit.ExitCode)
			assert.Equal(t, fmt.Sprintf("wheelinstall: group %d failed\n", groupOf[name]), a.stderr.String(), "only its own message")
		default:
			assert.NoError(t, a.err, "%s ran alone", name)
		}
	}
}
