package runtime

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	cg1 "github.com/containerd/cgroups/v3/cgroup1/stats"
	cg2 "github.com/containerd/cgroups/v3/cgroup2/stats"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/typeurl/v2"
	"github.com/moby/sys/mountinfo"
)

// oomKilled reports whether the kernel's OOM killer killed a process in the
// task's memory cgroup, from the cgroup's own counter (memory.oom_control
// oom_kill on cgroup v1, memory.events oom_kill on v2). It must be called
// after the task exited and before it is deleted. The counter is read
// from the cgroup file itself when this process sees the cgroup
// filesystem the runtime created the cgroup in (cgroupsPath, absolute);
// otherwise the shim is asked for the task's metrics, which reads the same
// counter among every other statistic of the cgroup.
func oomKilled(ctx context.Context, task interface {
	Metrics(context.Context) (*types.Metric, error)
}, cgroupsPath string) (bool, error) {
	n, err := oomKillCounter(ctx, task, cgroupsPath)
	return n > 0, err
}

// oomKillCounter is the memory cgroup's OOM-kill counter that oomKilled
// reads; a session compares it before and after each call.
func oomKillCounter(ctx context.Context, task interface {
	Metrics(context.Context) (*types.Metric, error)
}, cgroupsPath string) (uint64, error) {
	if n, ok := oomKillCountFromFile(cgroupsPath); ok {
		return n, nil
	}
	m, err := task.Metrics(ctx)
	if err != nil {
		return 0, fmt.Errorf("task metrics: %w", err)
	}
	data, err := typeurl.UnmarshalAny(m.Data)
	if err != nil {
		return 0, fmt.Errorf("decode task metrics: %w", err)
	}
	switch v := data.(type) {
	case *cg1.Metrics:
		if v.MemoryOomControl != nil {
			return v.MemoryOomControl.OomKill, nil
		}
		return 0, fmt.Errorf("the shim's cgroup v1 metrics have no memory.oom_control")
	case *cg2.Metrics:
		if v.MemoryEvents != nil {
			return v.MemoryEvents.OomKill, nil
		}
		return 0, fmt.Errorf("the shim's cgroup v2 metrics have no memory.events")
	default:
		return 0, fmt.Errorf("unknown task metrics type %T", data)
	}
}

// memoryCgroup is where this process sees the memory controller's
// hierarchy from its root: cgroup v1's memory hierarchy, or, on a
// cgroup v2-only system, the unified one.
type memoryCgroup struct {
	dir string // "" when neither is mounted at its root
	v2  bool
}

var hostMemoryCgroup = sync.OnceValue(func() memoryCgroup {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return memoryCgroup{}
	}
	return parseMemoryCgroup(data)
})

// parseMemoryCgroup finds the memory controller's mount in mountinfo:
// cgroup v1's memory hierarchy when there is one (hybrid systems mount an
// empty cgroup2 beside it), else cgroup2. Only a mount of the hierarchy's
// root counts: a cgroupsPath is relative to it.
func parseMemoryCgroup(data []byte) memoryCgroup {
	ms, err := mountinfo.GetMountsFromReader(bytes.NewReader(data), func(m *mountinfo.Info) (skip, stop bool) {
		return m.Root != "/" || (m.FSType != "cgroup" && m.FSType != "cgroup2"), false
	})
	if err != nil {
		return memoryCgroup{}
	}
	var v1, v2 string
	for _, m := range ms {
		switch {
		case m.FSType == "cgroup" && v1 == "" && slices.Contains(strings.Split(m.VFSOptions, ","), "memory"):
			v1 = m.Mountpoint
		case m.FSType == "cgroup2" && v2 == "":
			v2 = m.Mountpoint
		}
	}
	if v1 != "" {
		return memoryCgroup{dir: v1}
	}
	return memoryCgroup{dir: v2, v2: v2 != ""}
}

// oomKilledFromFile reads the OOM-kill counter of the memory cgroup at
// cgroupsPath; ok is false when it cannot (no absolute path, a systemd
// slice path, no memory hierarchy here, or no such cgroup).
func oomKilledFromFile(cgroupsPath string) (killed, ok bool) {
	n, ok := oomKillCountFromFile(cgroupsPath)
	return n > 0, ok
}

// oomKillCountFromFile is the counter oomKilledFromFile reads.
func oomKillCountFromFile(cgroupsPath string) (uint64, bool) {
	if !strings.HasPrefix(cgroupsPath, "/") || strings.Contains(cgroupsPath, ":") {
		return 0, false
	}
	mc := hostMemoryCgroup()
	if mc.dir == "" {
		return 0, false
	}
	name := "memory.oom_control"
	if mc.v2 {
		name = "memory.events"
	}
	data, err := os.ReadFile(filepath.Join(mc.dir, filepath.Clean(cgroupsPath), name))
	if err != nil {
		return 0, false
	}
	return oomKillCount(data)
}

// oomKillCount is the "oom_kill N" line of memory.oom_control or
// memory.events.
func oomKillCount(data []byte) (uint64, bool) {
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "oom_kill "); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// recordCgroupsPath copies the spec's cgroup path, as it is so far, to
// out (if not nil).
func recordCgroupsPath(out *string) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if out != nil && s.Linux != nil {
			*out = s.Linux.CgroupsPath
		}
		return nil
	}
}
