package pyindex

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/containerd/errdefs"
)

// DebianWheelsDir is where Debian's python3-pip-whl, python3-setuptools-whl
// and python3-wheel-whl packages put their wheels.
const DebianWheelsDir = "/usr/share/python-wheels"

// debianWheels are the projects CopyDebianWheels requires: pip's build
// isolation installs setuptools and wheel to build a setup.py-only sdist.
var debianWheels = []string{"pip", "setuptools", "wheel"}

// CopyDebianWheels copies every wheel in DebianWheelsDir (on Debian 12: pip
// 23.0.1, setuptools 66.1.1, wheel 0.38.4) into dst and returns the copies'
// paths, sorted. It fails with errdefs.ErrNotFound, naming the apt packages
// to install, when the pip, setuptools or wheel wheel is missing.
func CopyDebianWheels(dst string) ([]string, error) {
	return copyWheels(DebianWheelsDir, dst)
}

func copyWheels(src, dst string) ([]string, error) {
	matches, err := filepath.Glob(filepath.Join(src, "*.whl"))
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", src, err)
	}
	sort.Strings(matches)
	have := map[string]bool{}
	for _, m := range matches {
		name, _, _ := strings.Cut(filepath.Base(m), "-")
		have[Normalize(name)] = true
	}
	var missing []string
	for _, want := range debianWheels {
		if !have[want] {
			missing = append(missing, want)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("no %s wheel in %s (install them with `apt-get install python3-pip-whl python3-setuptools-whl python3-wheel-whl`): %w",
			strings.Join(missing, ", "), src, errdefs.ErrNotFound)
	}
	out := make([]string, 0, len(matches))
	for _, m := range matches {
		p := filepath.Join(dst, filepath.Base(m))
		if err := copyFile(m, p); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	defer in.Close()
	data, err := io.ReadAll(in)
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return writeFileAtomic(dst, data)
}
