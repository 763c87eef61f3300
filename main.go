// Command skillbuild builds a container image per agent skill from its
// Python requirements with an embedded BuildKit, refuses vulnerable
// dependency sets, and runs skill code in those images through containerd.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/skillbuild/skillbuild/cli"
)

func main() {
	// The first Ctrl-C or SIGTERM cancels the command, which then cleans up
	// what it created (build steps, run containers); a second one kills.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	os.Exit(cli.Main(ctx, os.Args, os.Stdin, os.Stdout, os.Stderr))
}
