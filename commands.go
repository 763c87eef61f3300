package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/urfave/cli/v2"
)

// commands lists the subcommands; each lives in cmd_<name>.go.
func commands() []*cli.Command {
	cmds := []*cli.Command{
		installCommand(),
		runCommand(),
		scanCommand(),
		dbCommand(),
		baseCommand(),
		lsCommand(),
		rmCommand(),
		pruneCommand(),
		pushCommand(),
		pullCommand(),
	}
	for _, c := range cmds {
		if c.Action != nil && c.Before == nil {
			c.Before = flagsFirst
		}
	}
	return cmds
}

// writeJSON prints v as a command's one JSON document.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// jsonResult prints v (which carries err, if any) on stdout and turns err
// into its exit code without printing it a second time.
func jsonResult(v any, err error, code func(error) int) error {
	if e := writeJSON(os.Stdout, v); e != nil {
		return e
	}
	if err != nil {
		return cli.Exit("", code(err))
	}
	return nil
}

// flagsFirst turns urfave/cli's silent "flags after the first argument are
// arguments" into a clear error: `install skill-a pkgx --json` would
// otherwise read --json as a requirement.
func flagsFirst(c *cli.Context) error {
	known := map[string]bool{}
	for _, f := range c.Command.Flags {
		for _, n := range f.Names() {
			known[n] = true
		}
	}
	for i, a := range c.Args().Slice() {
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if strings.HasPrefix(a, "-") && known[name] {
			return fmt.Errorf("%s: flag %s comes after the argument %q; flags go before the arguments: skillbuild %s %s ... %s: %w",
				c.Command.Name, a, c.Args().Get(max(i-1, 0)), c.Command.Name, a, strings.Join(c.Args().Slice()[:i], " "), errdefs.ErrInvalidArgument)
		}
	}
	return nil
}
