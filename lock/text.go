package lock

import (
	"fmt"
	"strings"

	"github.com/containerd/errdefs"
)

// ParseText reads the pins of a lock rendered by Text (or of its pins-only
// form, name==version per line). Lines name the distribution and version
// and, when present, its sha256; Filename and URL stay empty.
func ParseText(s string) (Lock, error) {
	var l Lock
	for i, line := range strings.Split(strings.TrimSpace(s), "\n") {
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		fields := strings.Fields(line)
		name, version, ok := strings.Cut(fields[0], "==")
		if !ok || name == "" || version == "" {
			return nil, fmt.Errorf("lock line %d %q: want name==version: %w", i+1, line, errdefs.ErrInvalidArgument)
		}
		d := Dist{Name: NormalizeName(name), Version: version}
		for _, f := range fields[1:] {
			if sum, ok := strings.CutPrefix(f, "--hash=sha256:"); ok {
				d.SHA256 = sum
			}
		}
		l = append(l, d)
	}
	return l, nil
}
