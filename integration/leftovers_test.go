package integration

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	ctd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/snapshots"
	digest "github.com/opencontainers/go-digest"
	sbruntime "github.com/skillbuild/skillbuild/runtime"
)

// After the last test, nothing the suite's commands created may be left
// (the leftovers check TestMain runs after m.Run): no container, task,
// run snapshot, staging image or temporary lease in the suite's
// namespace, no run state or uid lease under its root, no mount under the
// suite's directory, no cgroup of a run or of a build, no skillbuild
// process or shim of the suite. Tests that
// kill a command on purpose must leave it to the next command (or their
// own cleanup) to remove what it held.

// leftoversSettle bounds the wait for what is still going away when the
// last test returns (a shim exits after its task was deleted).
const leftoversSettle = 15 * time.Second

// checkLeftovers lists what the suite left behind, waiting up to
// leftoversSettle for it to go, and turns code (m.Run's) into a failure
// when anything is left.
func checkLeftovers(code int) int {
	var left []string
	deadline := time.Now().Add(leftoversSettle)
	for {
		var err error
		left, err = suiteLeftovers()
		if err != nil {
			left = append(left, "the check itself failed: "+err.Error())
			break
		}
		if len(left) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if len(left) == 0 {
		return code
	}
	fmt.Fprintf(os.Stderr, "--- FAIL: the suite left %d things behind (checked after the last test):\n", len(left))
	for _, l := range left {
		fmt.Fprintf(os.Stderr, "    %s\n", l)
	}
	return 1
}

// suiteRoots are the state roots newRoot made; their build cgroups are
// checked even once the roots themselves are gone.
var suiteRoots struct {
	sync.Mutex
	roots []string
}

func rememberRoot(root string) {
	suiteRoots.Lock()
	defer suiteRoots.Unlock()
	suiteRoots.roots = append(suiteRoots.roots, root)
}

// suiteLeftovers lists what is left now, one line per thing.
func suiteLeftovers() ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := ctd.New(env.socket, ctd.WithDefaultNamespace(namespace), ctd.WithTimeout(10*time.Second))
	if err != nil {
		return nil, err
	}
	defer c.Close()
	var left []string
	add := func(format string, args ...any) { left = append(left, fmt.Sprintf(format, args...)) }

	cs, err := c.Containers(ctx)
	if err != nil {
		return nil, err
	}
	for _, ct := range cs {
		info, err := ct.Info(ctx)
		if err != nil {
			add("container %s", ct.ID())
			continue
		}
		add("container %s (image %s, labels %v)", ct.ID(), info.Image, info.Labels)
	}
	tasks, err := c.TaskService().List(ctx, nil)
	if err != nil {
		return nil, err
	}
	for _, tk := range tasks.Tasks {
		add("task %s (pid %d, %s)", tk.ID, tk.Pid, tk.Status)
	}
	err = c.SnapshotService("overlayfs").Walk(ctx, func(_ context.Context, info snapshots.Info) error {
		if strings.HasPrefix(info.Name, "sbrun-") || info.Labels[sbruntime.LabelRun] != "" {
			add("run snapshot %s (%s)", info.Name, info.Kind)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	imgs, err := c.ImageService().List(ctx, `name~="skillbuild-staging"`)
	if err != nil {
		return nil, err
	}
	for _, img := range imgs {
		add("staging image %s", img.Name)
	}
	ls, err := c.LeasesService().List(ctx, `labels."buildkit/lease.temporary"`)
	if err != nil {
		return nil, err
	}
	for _, l := range ls {
		add("temporary lease %s (root %s)", l.ID, l.Labels["org.skillbuild.root"])
	}

	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(string(mi), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], env.dir+"/") {
			add("mount %s", f[4])
		}
	}

	// The run state of the suite's root: a directory per live run, and a
	// lease per uid a run holds (kept on purpose: images/).
	runs := filepath.Join(env.root, "runs")
	ents, _ := os.ReadDir(runs)
	for _, e := range ents {
		switch e.Name() {
		case "images":
		case "uids":
			leases, _ := os.ReadDir(filepath.Join(runs, e.Name()))
			for _, l := range leases {
				add("run uid lease %s", l.Name())
			}
		default:
			add("run state %s", filepath.Join(runs, e.Name()))
		}
	}

	left = append(left, leftoverCgroups()...)
	left = append(left, leftoverProcesses()...)
	sort.Strings(left)
	return left, nil
}

// leftoverCgroups are the cgroups of runs (under the namespace's) and the
// build cgroups of the suite's state roots.
func leftoverCgroups() []string {
	var left []string
	parents, _ := filepath.Glob("/sys/fs/cgroup/*/" + namespace)
	parents = append(parents, filepath.Join("/sys/fs/cgroup", namespace))
	for _, p := range parents {
		ents, _ := os.ReadDir(p)
		for _, e := range ents {
			if e.IsDir() {
				left = append(left, "run cgroup "+filepath.Join(p, e.Name()))
			}
		}
	}
	roots := []string{env.root}
	if ents, err := os.ReadDir(env.dir); err == nil {
		for _, e := range ents {
			if e.IsDir() {
				roots = append(roots, filepath.Join(env.dir, e.Name()))
			}
		}
	}
	suiteRoots.Lock()
	roots = append(roots, suiteRoots.roots...)
	suiteRoots.Unlock()
	seen := map[string]bool{}
	for _, root := range roots {
		name := "skillbuild-" + digest.FromString(root).Encoded()[:12]
		if seen[name] {
			continue
		}
		seen[name] = true
		found, _ := filepath.Glob("/sys/fs/cgroup/*/" + name)
		if _, err := os.Stat(filepath.Join("/sys/fs/cgroup", name)); err == nil {
			found = append(found, filepath.Join("/sys/fs/cgroup", name))
		}
		for _, f := range found {
			left = append(left, fmt.Sprintf("build cgroup %s (root %s)", f, root))
		}
	}
	return left
}

// leftoverProcesses are the suite's skillbuild processes and the shims of
// its namespace.
func leftoverProcesses() []string {
	var left []string
	ents, _ := os.ReadDir("/proc")
	shim := []byte("-namespace\x00" + namespace + "\x00")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(b) == 0 {
			continue
		}
		argv0, _, _ := bytes.Cut(b, []byte{0})
		if string(argv0) == env.bin || bytes.Contains(b, shim) {
			left = append(left, fmt.Sprintf("process %d: %s", pid, bytes.ReplaceAll(bytes.TrimRight(b, "\x00"), []byte{0}, []byte{' '})))
		}
	}
	return left
}
