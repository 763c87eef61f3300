package runtime

import (
	"context"
	"fmt"
	"syscall"
	"time"

	"github.com/containerd/containerd/api/services/tasks/v1"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/protobuf"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
)

// runTask is a sandbox's task, driven through containerd's task service
// directly rather than through client.Container.NewTask and client.Task:
// NewTask reads the container record three times and asks the
// snapshotter for the root filesystem's mounts, all of which the run
// already has (it just created the record, and the shared view's mounts
// came with the view). Each read is a round-trip through containerd that
// decodes and encodes the whole spec; a run pays none of them here.
type runTask struct {
	client *client.Client
	id     string
	pid    uint32
	io     cio.IO
}

// newRunTask creates the task of container id on the root filesystem
// mounts, with its IO made by ioCreate. On error the IO is closed.
func newRunTask(ctx context.Context, c *client.Client, id string, rootfs []mount.Mount, ioCreate cio.Creator) (*runTask, error) {
	i, err := ioCreate(id)
	if err != nil {
		return nil, err
	}
	cfg := i.Config()
	req := &tasks.CreateTaskRequest{
		ContainerID: id,
		Terminal:    cfg.Terminal,
		Stdin:       cfg.Stdin,
		Stdout:      cfg.Stdout,
		Stderr:      cfg.Stderr,
	}
	for _, m := range rootfs {
		req.Rootfs = append(req.Rootfs, &types.Mount{Type: m.Type, Source: m.Source, Target: m.Target, Options: m.Options})
	}
	resp, err := c.TaskService().Create(ctx, req)
	if err != nil {
		i.Cancel()
		i.Close()
		return nil, errgrpc.ToNative(err)
	}
	return &runTask{client: c, id: id, pid: resp.Pid, io: i}, nil
}

// Pid is the task's init process's pid on the host.
func (t *runTask) Pid() uint32 { return t.pid }

// IO is the task's standard streams.
func (t *runTask) IO() cio.IO { return t.io }

// Start starts the task; on error its IO is closed, as client.Task does.
func (t *runTask) Start(ctx context.Context) error {
	r, err := t.client.TaskService().Start(ctx, &tasks.StartRequest{ContainerID: t.id})
	if err != nil {
		t.io.Cancel()
		t.io.Close()
		return errgrpc.ToNative(err)
	}
	t.pid = r.Pid
	return nil
}

// Wait returns a channel that receives the task's exit status (or the
// error of the wait) once.
func (t *runTask) Wait(ctx context.Context) (<-chan client.ExitStatus, error) {
	c := make(chan client.ExitStatus, 1)
	go func() {
		defer close(c)
		r, err := t.client.TaskService().Wait(ctx, &tasks.WaitRequest{ContainerID: t.id})
		if err != nil {
			c <- *client.NewExitStatus(client.UnknownExitStatus, time.Time{}, errgrpc.ToNative(err))
			return
		}
		c <- *client.NewExitStatus(r.ExitStatus, protobuf.FromTimestamp(r.ExitedAt), nil)
	}()
	return c, nil
}

// Kill sends sig to the task's init (or, with client.WithKillAll, to
// every process of it).
func (t *runTask) Kill(ctx context.Context, sig syscall.Signal, opts ...client.KillOpts) error {
	var info client.KillInfo
	for _, o := range opts {
		if err := o(ctx, &info); err != nil {
			return err
		}
	}
	_, err := t.client.TaskService().Kill(ctx, &tasks.KillRequest{ContainerID: t.id, Signal: uint32(sig), ExecID: info.ExecID, All: info.All})
	return errgrpc.ToNative(err)
}

// Metrics is the task's cgroup statistics, from the shim.
func (t *runTask) Metrics(ctx context.Context) (*types.Metric, error) {
	r, err := t.client.TaskService().Metrics(ctx, &tasks.MetricsRequest{Filters: []string{"id==" + t.id}})
	if err != nil {
		return nil, errgrpc.ToNative(err)
	}
	if len(r.Metrics) == 0 {
		return nil, fmt.Errorf("no metrics of task %s: %w", t.id, errdefs.ErrNotFound)
	}
	return r.Metrics[0], nil
}
