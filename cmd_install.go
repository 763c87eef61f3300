package main

import "github.com/urfave/cli/v2"

func installCommand() *cli.Command {
	return &cli.Command{Name: "install", Usage: "not implemented yet"}
}
