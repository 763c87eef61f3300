package pyindex

import (
	"fmt"
	"strconv"

	"github.com/containerd/errdefs"
)

// GenerateSet writes n small, distinct wheels into dir, named
// "<prefix>-000" to "<prefix>-<n-1>" (zero-padded to at least three digits),
// each at version 1.0.0 with its own package "<prefix>_NNN" whose __init__.py
// defines NAME and INDEX. It returns their paths in order. The wheels are
// deterministic, so two calls with the same arguments give the same files.
func GenerateSet(dir, prefix string, n int) ([]string, error) {
	if n < 0 {
		return nil, fmt.Errorf("generate set: n must not be negative, got %d: %w", n, errdefs.ErrInvalidArgument)
	}
	width := max(3, len(strconv.Itoa(n-1)))
	paths := make([]string, 0, n)
	for i := range n {
		name := fmt.Sprintf("%s-%0*d", prefix, width, i)
		p, err := BuildWheel(dir, Wheel{
			Name:    name,
			Version: "1.0.0",
			Init:    fmt.Sprintf("NAME = %s\nINDEX = %d\n__version__ = \"1.0.0\"\n", pyString(name), i),
			Summary: fmt.Sprintf("Generated fixture %d of %d", i+1, n),
		})
		if err != nil {
			return nil, fmt.Errorf("generate set %q: %w", prefix, err)
		}
		paths = append(paths, p)
	}
	return paths, nil
}
