package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/sirupsen/logrus"
	"github.com/skillbuild/skillbuild/config"
	"github.com/skillbuild/skillbuild/skill/api"
	"github.com/urfave/cli/v2"
)

// Main runs the skillbuild command line with args (args[0] is the
// program name) and returns the process exit code. Cancelling ctx
// interrupts the command, which cleans up what it started. Output goes to
// stdout and stderr; stdin is read by commands that take input from it.
//
// For an ordinary user (or with --rootless) commands that need containerd
// first re-execute the process inside the user's rootless containerd's
// namespaces (see package rootless), and the global defaults point at that
// instance. A command that goes to a server (--host) needs neither.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var mode rootlessMode
	if !toServer(args, os.Getenv("SKILLBUILD_HOST")) {
		m, err := detectRootless(args)
		if err != nil {
			return report(stderr, err)
		}
		mode = m
	}
	// A reader that goes away (`skillbuild run ... | head`) makes writes
	// fail with EPIPE instead of killing the process with SIGPIPE, so the
	// command cleans up what it started (a run, a build) and exits.
	signal.Ignore(syscall.SIGPIPE)
	app := newApp(mode.defaults())
	app.Metadata = map[string]any{metaRootless: mode}
	if err := enterNamespaces(app, mode, args); err != nil {
		return report(stderr, err)
	}
	app.Reader, app.Writer, app.ErrWriter = stdin, stdout, stderr
	if len(args) == 0 || args[len(args)-1] != "--generate-bash-completion" {
		args = interspersed(app, args)
	}
	app.Metadata[metaArgs] = args
	return report(stderr, app.RunContext(ctx, args))
}

// newApp is the CLI: global flags, commands and logging set-up.
func newApp(d appDefaults) *cli.App {
	cli.VersionPrinter = func(c *cli.Context) {
		if err := printVersion(c, false); err != nil {
			fmt.Fprintln(c.App.ErrWriter, "skillbuild:", err)
		}
	}
	return &cli.App{
		Name:                 "skillbuild",
		Version:              shortVersion(),
		EnableBashCompletion: true,
		Usage:                "per-skill Python environments as container images, built with embedded BuildKit and run through containerd",
		Flags:                globalFlags(d),
		Commands:             commands(),
		Before: func(c *cli.Context) error {
			if err := checkHost(c); err != nil {
				return err
			}
			// BuildKit and containerd log through logrus; their chatter is
			// only for --debug, errors reach the user through return values.
			logrus.SetOutput(io.Discard)
			if c.Bool("debug") {
				logrus.SetOutput(c.App.ErrWriter)
				logrus.SetLevel(logrus.DebugLevel)
			}
			return nil
		},
		HideHelpCommand: true,
		ExitErrHandler:  func(*cli.Context, error) {}, // errors are printed once, in main
	}
}

// globalFlags are the flags every command shares.
func globalFlags(d appDefaults) []cli.Flag {
	return append([]cli.Flag{
		&cli.StringFlag{Name: "address", Value: d.address, EnvVars: []string{"CONTAINERD_ADDRESS"}, Usage: "containerd socket (rootless: $XDG_RUNTIME_DIR/skillbuild/containerd.sock)"},
		&cli.StringFlag{Name: "namespace", Value: config.DefaultNamespace, EnvVars: []string{"SKILLBUILD_NAMESPACE"}, Usage: "containerd namespace"},
		&cli.StringFlag{Name: "root", Value: d.root, EnvVars: []string{"SKILLBUILD_ROOT"}, Usage: "skillbuild state directory (rootless: $XDG_DATA_HOME/skillbuild/state)"},
		&cli.BoolFlag{Name: "rootless", Usage: "use the user's rootless containerd (`skillbuild rootless start`); default: on for every user but root"},
		&cli.BoolFlag{Name: "debug", Usage: "debug logging on stderr"},
	}, append(hostFlags(), builderFlags()...)...)
}

// report prints err once on stderr (unless it was already reported) and maps
// it to the process exit code.
func report(stderr io.Writer, err error) int {
	if err == nil {
		return api.ExitOK
	}
	var ec cli.ExitCoder
	if errors.As(err, &ec) {
		if msg := err.Error(); msg != "" {
			fmt.Fprintln(stderr, "skillbuild:", msg)
		}
		return ec.ExitCode()
	}
	fmt.Fprintln(stderr, "skillbuild:", err)
	return exitCode(err)
}

// exitCode classifies an error into an exit code (api.ExitCode: one
// table for the CLI and the API).
func exitCode(err error) int { return api.ExitCode(err) }
