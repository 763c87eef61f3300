package main

import "github.com/urfave/cli/v2"

func dbCommand() *cli.Command {
	return &cli.Command{Name: "db", Usage: "not implemented yet"}
}
