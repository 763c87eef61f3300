// Command skillbuild-init is package pid1's init as a small program of its
// own. The runtime mounts it as a run's PID 1 in place of the skillbuild
// binary when it lies next to that binary (skillbuild → skillbuild-init,
// `make build` puts it there) and speaks the same protocol: it starts in
// about a millisecond, where the skillbuild binary first initializes
// every package it links (BuildKit, containerd, gRPC: several
// milliseconds of CPU per run, before the runner can start). Build it
// static (CGO_ENABLED=0): then nothing else needs mounting with it.
//
//	skillbuild-init --protocol   prints pid1.Protocol
//
// Started as pid1.Path it is the init (package pid1's init function takes
// over before main runs).
package main

import (
	"fmt"
	"os"

	"github.com/skillbuild/skillbuild/runtime/pid1"
)

func main() {
	if len(os.Args) == 2 && os.Args[1] == "--protocol" {
		fmt.Println(pid1.Protocol)
		return
	}
	fmt.Fprintf(os.Stderr, "usage: %s --protocol (as %s it is a run's init)\n", os.Args[0], pid1.Path)
	os.Exit(2)
}
