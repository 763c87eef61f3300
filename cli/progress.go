package cli

import (
	"context"
	"encoding/json"
	"io"
	"sync"

	bkclient "github.com/moby/buildkit/client"
	"github.com/moby/buildkit/util/progress/progressui"
	"github.com/urfave/cli/v2"
)

// renderProgress draws an operation's progress on stderr in the
// --progress mode; done ends the drawing once the operation returned.
func renderProgress(c *cli.Context) (progress func(any), done func()) {
	ch := make(chan *bkclient.SolveStatus)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		draw(c.Context, c.App.ErrWriter, c.String("progress"), ch)
	}()
	progress = func(ev any) {
		switch ev := ev.(type) {
		case *bkclient.SolveStatus:
			ch <- ev
		case json.RawMessage:
			// A server's event (--host): the same status, as JSON.
			var st bkclient.SolveStatus
			if json.Unmarshal(ev, &st) == nil {
				ch <- &st
			}
		}
	}
	return progress, func() {
		close(ch)
		wg.Wait()
	}
}

// draw draws BuildKit's progress on w, draining ch always.
func draw(ctx context.Context, w io.Writer, mode string, ch chan *bkclient.SolveStatus) {
	d, err := progressui.NewDisplay(w, progressui.DisplayMode(mode))
	if err != nil {
		d, _ = progressui.NewDisplay(w, progressui.PlainMode)
	}
	if _, err := d.UpdateFrom(context.WithoutCancel(ctx), ch); err != nil {
		for range ch {
		}
	}
}
