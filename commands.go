package main

import "github.com/urfave/cli/v2"

// commands lists the subcommands; each lives in cmd_<name>.go.
func commands() []*cli.Command {
	return []*cli.Command{
		installCommand(),
		runCommand(),
		scanCommand(),
		dbCommand(),
		baseCommand(),
		lsCommand(),
		rmCommand(),
		pruneCommand(),
	}
}
