package cli

import (
	"encoding/json"
	"io"
	"strings"

	"github.com/urfave/cli/v2"
)

// commands lists the subcommands; each lives in cmd_<name>.go.
func commands() []*cli.Command {
	cmds := []*cli.Command{
		installCommand(),
		runCommand(),
		sessionCommand(),
		scanCommand(),
		dbCommand(),
		baseCommand(),
		lsCommand(),
		rmCommand(),
		pruneCommand(),
		pushCommand(),
		pullCommand(),
		inspectCommand(),
		loadCommand(),
		serveCommand(),
		versionCommand(),
		completionCommand(),
		rootlessCommand(),
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
func jsonResult(w io.Writer, v any, err error, code func(error) int) error {
	if e := writeJSON(w, v); e != nil {
		return e
	}
	if err != nil {
		return cli.Exit("", code(err))
	}
	return nil
}

// interspersed lets flags follow arguments, as users type them (pip,
// nerdctl, every cobra-based tool): urfave/cli stops parsing flags at the
// first argument, so the command's known flags (with their values) are
// moved ahead of its arguments. "--" still ends the flags: what follows it
// stays an argument, even if it looks like a flag. Global flags given after
// the command move before it.
func interspersed(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	out := []string{args[0]}
	i := 1
	// Global flags, then the command and its subcommands.
	i = takeFlags(app.Flags, args, i, &out)
	globalsEnd := len(out)
	cmds := app.Commands
	var cmd *cli.Command
	for i < len(args) {
		next := findCommand(cmds, args[i])
		if next == nil {
			break
		}
		cmd = next
		out = append(out, args[i])
		i++
		cmds = cmd.Subcommands
	}
	if cmd == nil || i >= len(args) {
		return append(out, args[i:]...)
	}
	var globals, flags, positional []string
	for i < len(args) {
		a := args[i]
		switch {
		case a == "--":
			positional = append(positional, args[i+1:]...)
			i = len(args)
		case len(a) > 1 && a[0] == '-':
			// The command's own flag, else a global one (which must go
			// before the command), else unknown: left for the parser to name.
			dst := &flags
			f := findFlag(cmd.Flags, a)
			if f == nil {
				if f = findFlag(app.Flags, a); f != nil {
					dst = &globals
				}
			}
			*dst = append(*dst, a)
			i++
			if f != nil && takesValue(f) && !strings.Contains(a, "=") && i < len(args) {
				*dst = append(*dst, args[i])
				i++
			}
		default:
			positional = append(positional, a)
			i++
		}
	}
	out = append(out[:globalsEnd], append(globals, out[globalsEnd:]...)...)
	out = append(out, flags...)
	if len(positional) > 0 {
		out = append(out, "--")
		out = append(out, positional...)
	}
	return out
}

// takeFlags copies the flags at args[i:] (and their values) to out and
// returns the index of the first argument that is not one.
func takeFlags(fs []cli.Flag, args []string, i int, out *[]string) int {
	for i < len(args) && len(args[i]) > 1 && args[i][0] == '-' && args[i] != "--" {
		f := findFlag(fs, args[i])
		*out = append(*out, args[i])
		i++
		if f != nil && takesValue(f) && !strings.Contains(args[i-1], "=") && i < len(args) {
			*out = append(*out, args[i])
			i++
		}
	}
	return i
}

func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}

// findFlag is the flag that arg ("-r", "--json", "--root=DIR") names.
func findFlag(fs []cli.Flag, arg string) cli.Flag {
	name, _, _ := strings.Cut(strings.TrimLeft(arg, "-"), "=")
	for _, f := range fs {
		for _, n := range f.Names() {
			if n == name {
				return f
			}
		}
	}
	return nil
}

// takesValue reports whether a flag reads the next argument as its value.
func takesValue(f cli.Flag) bool {
	dv, ok := f.(cli.DocGenerationFlag)
	return !ok || dv.TakesValue()
}
