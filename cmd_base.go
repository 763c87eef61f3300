package main

import "github.com/urfave/cli/v2"

func baseCommand() *cli.Command {
	return &cli.Command{Name: "base", Usage: "not implemented yet"}
}
