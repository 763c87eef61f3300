// Command mkwheels writes the demo's wheelhouse: two versions of one
// package (so two skills can pin conflicting versions), a dependency, and
// Debian's real pip/setuptools/wheel wheels.
package main

import (
	"fmt"
	"os"

	"github.com/skillbuild/skillbuild/internal/pyindex"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: mkwheels DIR")
		os.Exit(2)
	}
	dir := os.Args[1]
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	wheels := []pyindex.Wheel{
		{Name: "pkgx", Version: "1.0", Requires: []string{"pkgx-core>=1"}, Init: "from pkgx_core import greet\n__version__ = '1.0'\n"},
		{Name: "pkgx", Version: "2.0", Requires: []string{"pkgx-core>=1"}, Init: "from pkgx_core import greet\n__version__ = '2.0'\n"},
		{Name: "pkgx-core", Version: "1.1", Init: "__version__ = '1.1'\ndef greet(who):\n    return 'hello ' + who\n"},
	}
	for _, w := range wheels {
		if _, err := pyindex.BuildWheel(dir, w); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	if _, err := pyindex.CopyDebianWheels(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
