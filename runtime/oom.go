package runtime

import (
	"context"
	"fmt"

	cg1 "github.com/containerd/cgroups/v3/cgroup1/stats"
	cg2 "github.com/containerd/cgroups/v3/cgroup2/stats"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/typeurl/v2"
)

// oomKilled reports whether the kernel's OOM killer killed a process in the
// task's memory cgroup, from the cgroup's own counters (memory.oom_control
// oom_kill on cgroup v1, memory.events oom_kill on v2) as the shim reports
// them. It must be called after the task exited and before it is deleted.
func oomKilled(ctx context.Context, task client.Task) (bool, error) {
	m, err := task.Metrics(ctx)
	if err != nil {
		return false, fmt.Errorf("task metrics: %w", err)
	}
	data, err := typeurl.UnmarshalAny(m.Data)
	if err != nil {
		return false, fmt.Errorf("decode task metrics: %w", err)
	}
	switch v := data.(type) {
	case *cg1.Metrics:
		if v.MemoryOomControl != nil {
			return v.MemoryOomControl.OomKill > 0, nil
		}
		return false, fmt.Errorf("the shim's cgroup v1 metrics have no memory.oom_control")
	case *cg2.Metrics:
		if v.MemoryEvents != nil {
			return v.MemoryEvents.OomKill > 0, nil
		}
		return false, fmt.Errorf("the shim's cgroup v2 metrics have no memory.events")
	default:
		return false, fmt.Errorf("unknown task metrics type %T", data)
	}
}
