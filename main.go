// Command skillbuild builds a container image per agent skill from its
// Python requirements with an embedded BuildKit, refuses vulnerable
// dependency sets, and runs skill code in those images through containerd.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/containerd/errdefs"
	"github.com/sirupsen/logrus"
	"github.com/urfave/cli/v2"
)

// Exit codes. They are part of the CLI contract (see README).
const (
	exitOK          = 0
	exitFailed      = 1   // the build or run failed
	exitBadInput    = 2   // invalid flags, skill.yaml or requirements
	exitVulnerable  = 3   // refused: known vulnerabilities
	exitNotFound    = 4   // image, skill or database not found
	exitInterrupted = 130 // Ctrl-C or SIGTERM (128+SIGINT); what was started is cleaned up
	exitTempFail    = 75  // temporary: containerd unreachable, lock busy; try again
)

func main() {
	// The first Ctrl-C or SIGTERM cancels the command, which then cleans up
	// what it created (build steps, run containers); a second one kills.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	err := newApp().RunContext(ctx, os.Args)
	os.Exit(report(err))
}

// newApp is the CLI: global flags, commands and logging set-up.
func newApp() *cli.App {
	return &cli.App{
		Name:     "skillbuild",
		Usage:    "per-skill Python environments as container images, built with embedded BuildKit and run through containerd",
		Flags:    globalFlags(),
		Commands: commands(),
		Before: func(c *cli.Context) error {
			// BuildKit and containerd log through logrus; their chatter is
			// only for --debug, errors reach the user through return values.
			logrus.SetOutput(io.Discard)
			if c.Bool("debug") {
				logrus.SetOutput(os.Stderr)
				logrus.SetLevel(logrus.DebugLevel)
			}
			return nil
		},
		HideHelpCommand: true,
		ExitErrHandler:  func(*cli.Context, error) {}, // errors are printed once, in main
	}
}

// globalFlags are the flags every command shares.
func globalFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "address", Value: "/run/containerd/containerd.sock", EnvVars: []string{"CONTAINERD_ADDRESS"}, Usage: "containerd socket"},
		&cli.StringFlag{Name: "namespace", Value: "skillbuild", EnvVars: []string{"SKILLBUILD_NAMESPACE"}, Usage: "containerd namespace"},
		&cli.StringFlag{Name: "root", Value: "/var/lib/skillbuild", EnvVars: []string{"SKILLBUILD_ROOT"}, Usage: "skillbuild state directory"},
		&cli.BoolFlag{Name: "debug", Usage: "debug logging on stderr"},
	}
}

// report prints err once on stderr (unless it was already reported) and maps
// it to the process exit code.
func report(err error) int {
	if err == nil {
		return exitOK
	}
	var ec cli.ExitCoder
	if errors.As(err, &ec) {
		if msg := err.Error(); msg != "" {
			fmt.Fprintln(os.Stderr, "skillbuild:", msg)
		}
		return ec.ExitCode()
	}
	fmt.Fprintln(os.Stderr, "skillbuild:", err)
	return exitCode(err)
}

// isInterrupted reports whether err comes from Ctrl-C or SIGTERM.
func isInterrupted(err error) bool {
	return errors.Is(err, context.Canceled) || errdefs.IsCanceled(err)
}

// exitCode classifies an error into an exit code.
func exitCode(err error) int {
	switch {
	case err == nil:
		return exitOK
	case isVulnerable(err):
		return exitVulnerable
	case isInterrupted(err):
		return exitInterrupted
	case errdefs.IsInvalidArgument(err):
		return exitBadInput
	case errdefs.IsNotFound(err):
		return exitNotFound
	case errdefs.IsUnavailable(err), errdefs.IsAborted(err):
		return exitTempFail
	default:
		return exitFailed
	}
}
