package cli

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/containerd/errdefs"
	"github.com/skillbuild/skillbuild/config"
	"github.com/skillbuild/skillbuild/skill/api"
	"github.com/skillbuild/skillbuild/skill/client"
	"github.com/urfave/cli/v2"
)

func sessionCommand() *cli.Command {
	jsonFlag := &cli.BoolFlag{Name: "json", Usage: "print one JSON document on stdout"}
	return &cli.Command{
		Name:  "session",
		Usage: "open, use and close sessions of the server --host names: an interpreter that keeps its state between calls",
		Description: `A session is a container of a skill's image, on a server (skillbuild serve),
whose Python interpreter keeps its globals, imported modules and files between
calls. It lives in the server, so these commands need --host (or
SKILLBUILD_HOST); only the identity that opened it (the same uid on a unix
socket, the same token on TCP) can use it. See docs/sessions.md.

  id=$(skillbuild --host unix:///run/skillbuild/api.sock session open analyst)
  skillbuild --host ... session run -c 'x = 41' "$id"
  skillbuild --host ... session run -c 'result = x + 1' "$id"     # prints 42
  skillbuild --host ... session close "$id"

A call's output and exit status are run's (124 after a timeout, 137 after an
OOM kill). A call that times out, is OOM-killed or whose interpreter exits ends
the session, and says so on stderr; a call on a session that ended exits 4 with
"session ended: REASON".`,
		Subcommands: []*cli.Command{
			{
				Name:      "open",
				Usage:     "open a session of a skill and print its id",
				ArgsUsage: "SKILL_ID",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: config.FlagVersion, Value: "1", Usage: "skill `VERSION`"},
					&cli.StringFlag{Name: config.FlagRepo, Usage: "image repository `NAME` (default: the server's)"},
					&cli.StringFlag{Name: "image", Usage: "use image `REF` instead of the skill's"},
					&cli.StringFlag{Name: config.FlagMemory, Usage: "memory limit for the session's life (default: the server's)"},
					&cli.StringFlag{Name: config.FlagCPUs, Usage: "CPU limit (default: the server's)"},
					&cli.StringFlag{Name: config.FlagPids, Usage: "process/thread limit (default: the server's)"},
					&cli.StringFlag{Name: config.FlagTmpfsSize, Usage: "size of /tmp and of /dev/shm (default: the server's)"},
					&cli.StringFlag{Name: config.FlagRuntime, Usage: "`RUNTIME`: runc or gvisor (default: the skill's)"},
					&cli.StringFlag{Name: "user", Usage: "run as `UID[:GID]` instead of the image's USER"},
					&cli.StringSliceFlag{Name: "preload", Usage: "import Python `MODULE` when the interpreter starts"},
					&cli.StringFlag{Name: "idle-timeout", Usage: "end the session after this long without a call (default: the server's --session-idle)"},
					&cli.StringFlag{Name: "max-lifetime", Usage: "end the session this long after it opened (default: the server's --session-lifetime)"},
					jsonFlag,
				},
				Action: sessionOpen,
			},
			{
				Name:      "run",
				Usage:     "run code in a session",
				ArgsUsage: "SESSION_ID",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "code", Usage: "Python `FILE` to run"},
					&cli.StringFlag{Name: "c", Usage: "Python `CODE` to run"},
					&cli.StringFlag{Name: "inputs", Usage: "inputs as a JSON object"},
					&cli.StringFlag{Name: "inputs-file", Usage: "`FILE` with the inputs as a JSON object (- for stdin)"},
					&cli.StringFlag{Name: config.FlagTimeout, Usage: "wall-clock limit of this call (default: the server's); at it the session ends"},
					&cli.StringFlag{Name: config.FlagOutputLimit, Usage: "stdout and stderr are each cut at this size (default: the server's)"},
					&cli.GenericFlag{Name: "in", Value: &repeated{}, Usage: "put file `NAME=PATH` (or PATH) under /data/in, read-only, for this call and the later ones (repeatable)"},
					&cli.StringFlag{Name: "out-dir", Usage: "save the files this call left under /data/out into `DIR`"},
					jsonFlag,
				},
				Action: sessionRun,
			},
			{
				Name:      "close",
				Usage:     "end a session and remove its container",
				ArgsUsage: "SESSION_ID",
				Flags:     []cli.Flag{jsonFlag},
				Action:    sessionClose,
			},
			{
				Name:   "ls",
				Usage:  "list your open sessions",
				Flags:  []cli.Flag{jsonFlag},
				Action: sessionList,
			},
		},
	}
}

// sessionClient is the client of the server sessions live in: --host, or
// an error that says so.
func sessionClient(c *cli.Context) (*client.Client, error) {
	if !remote(c) {
		return nil, fmt.Errorf("sessions live in a server (skillbuild serve): give --host unix:///PATH or tcp://HOST:PORT, or set SKILLBUILD_HOST: %w", errdefs.ErrInvalidArgument)
	}
	return newClient(c)
}

// withSession runs op with the session client and the one argument the
// subcommand takes (what), unless what is "" (none).
func withSession(c *cli.Context, what string, op func(*client.Client, string) error) error {
	switch {
	case what == "" && c.NArg() > 0:
		return fmt.Errorf("session %s takes no arguments: %w", c.Command.Name, errdefs.ErrInvalidArgument)
	case what != "" && c.NArg() != 1:
		return fmt.Errorf("session %s takes exactly one %s: %w", c.Command.Name, what, errdefs.ErrInvalidArgument)
	}
	cl, err := sessionClient(c)
	if err != nil {
		return err
	}
	defer closeService(cl)
	return op(cl, c.Args().First())
}

func sessionOpen(c *cli.Context) error {
	return withSession(c, "SKILL_ID", func(cl *client.Client, id string) error {
		req := api.SessionRequest{SkillID: id, Version: c.String(config.FlagVersion), Repo: c.String(config.FlagRepo), Image: c.String("image"),
			Memory: c.String(config.FlagMemory), CPUs: c.String(config.FlagCPUs), Pids: c.String(config.FlagPids), TmpfsSize: c.String(config.FlagTmpfsSize),
			Runtime: c.String(config.FlagRuntime), User: c.String("user"), Preload: c.StringSlice("preload"),
			IdleTimeout: c.String("idle-timeout"), MaxLifetime: c.String("max-lifetime")}
		s, err := cl.OpenSession(c.Context, req)
		if err != nil {
			return err
		}
		if c.Bool("json") {
			return writeJSON(c.App.Writer, s)
		}
		_, err = fmt.Fprintln(c.App.Writer, s.SessionID)
		return err
	})
}

func sessionRun(c *cli.Context) error {
	return withSession(c, "SESSION_ID", func(cl *client.Client, id string) error {
		code, inputs, err := codeAndInputs(c)
		if err != nil {
			return err
		}
		files, err := fileFlags(c)
		if err != nil {
			return err
		}
		out, err := cl.SessionRun(c.Context, id, api.SessionRunRequest{Code: code, Inputs: inputs, Files: files,
			Timeout: c.String(config.FlagTimeout), OutputLimit: c.String(config.FlagOutputLimit)})
		if out == nil {
			// The call did not run: an unknown or ended session, or a
			// server that could not be reached.
			return err
		}
		saveErr := saveFiles(c.App.ErrWriter, c.String("out-dir"), &out.RunResult)
		if !c.Bool("json") {
			// The call's output, as run prints it once a run is over.
			io.WriteString(c.App.Writer, out.Stdout)    //nolint:errcheck // the result's print below reports a closed stdout
			io.WriteString(c.App.ErrWriter, out.Stderr) //nolint:errcheck // as above
			if out.SessionEnded != "" {
				fmt.Fprintf(c.App.ErrWriter, "skillbuild: this call ended the session: %s\n", out.SessionEnded)
			}
			return afterRun(c, emitRun(c, &out.RunResult, err), saveErr)
		}
		if err != nil {
			fmt.Fprintln(c.App.ErrWriter, "skillbuild:", err)
		}
		return afterRun(c, jsonResult(c.App.Writer, out, err, exitCode), saveErr)
	})
}

func sessionClose(c *cli.Context) error {
	return withSession(c, "SESSION_ID", func(cl *client.Client, id string) error {
		s, err := cl.CloseSession(c.Context, id)
		if err != nil {
			return err
		}
		if c.Bool("json") {
			return writeJSON(c.App.Writer, s)
		}
		_, err = fmt.Fprintf(c.App.Writer, "closed %s\n", s.SessionID)
		return err
	})
}

func sessionList(c *cli.Context) error {
	return withSession(c, "", func(cl *client.Client, _ string) error {
		list, err := cl.ListSessions(c.Context)
		if err != nil {
			return err
		}
		if c.Bool("json") {
			return writeJSON(c.App.Writer, api.SessionList{Sessions: list})
		}
		tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SESSION ID\tSKILL\tIMAGE\tRUNTIME\tMEMORY\tEXPIRES")
		for _, s := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.SessionID, s.SkillID, s.Image, s.Runtime,
				config.FormatSize(s.Limits.MemoryBytes), s.ExpiresAt.Local().Format(time.DateTime))
		}
		return tw.Flush()
	})
}
