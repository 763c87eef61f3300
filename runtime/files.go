package runtime

import (
	"fmt"
	"strings"

	"github.com/containerd/errdefs"
)

// Where a run's files are inside the container.
const (
	InDir  = "/data/in"  // the request's files, read-only
	OutDir = "/data/out" // what the code writes here comes back in Result.Files
)

// Caps of a run's files.
const (
	MaxInFiles  = 64       // files a request may carry
	MaxInBytes  = 16 << 20 // their bytes together
	MaxOutFiles = 64       // files returned; more are counted in Result.FilesOmitted
	MaxOutBytes = 16 << 20 // returned content together; a file past it is listed without content
)

// Bounds of a file's name.
const (
	maxNamePart   = 255 // bytes per element
	maxNameLevels = 8   // elements
)

// File is a file the code left under OutDir.
type File struct {
	Name    string // slash-separated, relative to OutDir
	Size    int64
	SHA256  string // hex
	Content []byte // nil when Omitted
	Omitted bool   // over MaxOutBytes (or WithMaxFilesOut): listed, content not returned
}

// CheckFiles checks a request's files: count and size caps, names that are
// clean relative paths (no "", ".", "..", leading "/", NUL, backslash, over 255
// bytes per element, at most 8 levels). Its errors wrap errdefs.ErrInvalidArgument
// and name the file.
func CheckFiles(files map[string][]byte) error {
	if len(files) > MaxInFiles {
		return fmt.Errorf("%d files, more than the %d a request may carry: %w", len(files), MaxInFiles, errdefs.ErrInvalidArgument)
	}
	total := 0
	for name, data := range files {
		if err := checkFileName(name); err != nil {
			return err
		}
		total += len(data)
	}
	if total > MaxInBytes {
		return fmt.Errorf("files of %d bytes together, more than the %d a request may carry: %w", total, MaxInBytes, errdefs.ErrInvalidArgument)
	}
	return nil
}

// checkFileName refuses a name that is not a clean relative path.
func checkFileName(name string) error {
	bad := func(why string) error {
		return fmt.Errorf("file %q: %s: %w", name, why, errdefs.ErrInvalidArgument)
	}
	switch {
	case name == "":
		return bad("empty name")
	case strings.HasPrefix(name, "/"):
		return bad("absolute: give a path relative to " + InDir)
	case strings.ContainsRune(name, 0):
		return bad("the name holds a NUL")
	case strings.ContainsRune(name, '\\'):
		return bad("the name holds a backslash")
	}
	parts := strings.Split(name, "/")
	if len(parts) > maxNameLevels {
		return bad(fmt.Sprintf("more than %d levels", maxNameLevels))
	}
	for _, part := range parts {
		switch {
		case part == "" || part == ".":
			return bad(`an empty or "." element`)
		case part == "..":
			return bad(`a ".." element`)
		case len(part) > maxNamePart:
			return bad(fmt.Sprintf("an element longer than %d bytes", maxNamePart))
		}
	}
	return nil
}
