package runtime

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
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
		if dir := fileUnder(name, files); dir != "" {
			return fmt.Errorf("file %q: %q is a file, not a directory: %w", name, dir, errdefs.ErrInvalidArgument)
		}
		total += len(data)
	}
	if total > MaxInBytes {
		return fmt.Errorf("files of %d bytes together, more than the %d a request may carry: %w", total, MaxInBytes, errdefs.ErrInvalidArgument)
	}
	return nil
}

// fileUnder returns the directory of name (or of its parents) that is a
// file of files, or "".
func fileUnder[V any](name string, files map[string]V) string {
	for dir := path.Dir(name); dir != "."; dir = path.Dir(dir) {
		if _, ok := files[dir]; ok {
			return dir
		}
	}
	return ""
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

// Names of a run's file directories in its state directory.
const inName = "in"

// outSlack is what OutDir's tmpfs holds beyond MaxOutBytes: a file that
// reached the cap still shows it was over.
const outSlack = 1 << 20

// outTmpfsSize is the size of OutDir's tmpfs for a run of l.
func outTmpfsSize(l Limits) int64 { return min(l.TmpfsBytes, MaxOutBytes+outSlack) }

// makeInDir creates the host side of InDir in the run's state directory
// dir, searchable by every user, holding files.
func makeInDir(dir string, files map[string][]byte) error {
	in := filepath.Join(dir, inName)
	if err := os.Mkdir(in, 0o755); err != nil {
		return fmt.Errorf("input files: %w", err)
	}
	if err := os.Chmod(in, 0o755); err != nil { // despite the umask
		return err
	}
	return writeInFiles(in, files)
}

// writeInFiles writes files into dir (the host side of InDir), each
// readable by everyone and writable by nobody, through a temporary file
// renamed into place (a session's later call replaces a file whole).
// Everything goes through an os.Root of dir: nothing found in dir is
// followed out of it.
func writeInFiles(dir string, files map[string][]byte) error {
	if len(files) == 0 {
		return nil
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("input files: %w", err)
	}
	defer root.Close()
	for _, name := range slices.Sorted(maps.Keys(files)) {
		if d := path.Dir(name); d != "." {
			if err := root.MkdirAll(d, 0o755); err != nil {
				return fmt.Errorf("input file %s: %w", name, err)
			}
			for p := d; p != "."; p = path.Dir(p) {
				if err := root.Chmod(p, 0o755); err != nil { // despite the umask
					return fmt.Errorf("input file %s: %w", name, err)
				}
			}
		}
		tmp := path.Join(path.Dir(name), ".in-"+newID())
		f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o444)
		if err != nil {
			return fmt.Errorf("input file %s: %w", name, err)
		}
		_, werr := f.Write(files[name])
		cerr := f.Close()
		if err := errors.Join(werr, cerr, root.Chmod(tmp, 0o444)); err != nil {
			_ = root.Remove(tmp) // the run's directory goes with it anyway
			return fmt.Errorf("input file %s: %w", name, err)
		}
		if err := root.Rename(tmp, name); err != nil {
			_ = root.Remove(tmp)
			return fmt.Errorf("input file %s: %w", name, err)
		}
	}
	return nil
}

// WithDataMounts mounts the host directory in read-only at InDir and a
// tmpfs of outSize bytes at OutDir (mode 1777: the code's, whoever it runs
// as; its pages count against the container's memory cgroup), both
// nosuid, nodev and noexec. Their mountpoints are not the image's: see
// onRootParent.
func WithDataMounts(in string, outSize int64) oci.SpecOpts {
	return func(ctx context.Context, c oci.Client, ctr *containers.Container, s *oci.Spec) error {
		if in == "" {
			return fmt.Errorf("input files' directory is empty: %w", errdefs.ErrInvalidArgument)
		}
		replaceMount(s, readOnlyBind(in, InDir))
		return WithTmpfs(OutDir, outSize)(ctx, c, ctr, s)
	}
}

// reportLineLimit bounds one line of the report channel: a result of
// maxResult bytes with a full MaxOutBytes of files in base64 and their
// names.
func reportLineLimit(maxResult int64) int64 {
	return maxResult + int64(base64.StdEncoding.EncodedLen(MaxOutBytes)+MaxOutFiles*(4*maxNamePart*maxNameLevels+256)+64<<10)
}

// reportFile is a file as the runner reports it.
type reportFile struct {
	Name    string `json:"name"`
	Size    int64  `json:"size"`
	SHA256  string `json:"sha256"`
	Content string `json:"content"` // base64; "" with Omitted
	Omitted bool   `json:"omitted"`
}

// checkOutFiles turns the files the runner reported into Result.Files,
// trusting none of it: a name that is not a clean relative path, or a
// duplicate, is dropped and counted in omitted; content that does not
// decode to Size bytes with the given SHA-256, or that would pass
// MaxOutBytes in all, is dropped and its file marked Omitted. Nothing is
// allocated from a size the report claims: a content is decoded only when
// its encoded length fits what is left of the cap. At most MaxOutFiles are
// kept, in name order; the rest are counted in omitted.
func checkOutFiles(files []reportFile, omitted int) ([]File, int) {
	omitted = max(omitted, 0)
	var out []File
	seen := map[string]bool{}
	budget := int64(MaxOutBytes)
	sorted := slices.SortedFunc(slices.Values(files), func(a, b reportFile) int { return strings.Compare(a.Name, b.Name) })
	for _, f := range sorted {
		if checkFileName(f.Name) != nil || seen[f.Name] || !utf8.ValidString(f.Name) {
			omitted++
			continue
		}
		seen[f.Name] = true
		if len(out) == MaxOutFiles {
			omitted++
			continue
		}
		sum, err := hex.DecodeString(f.SHA256)
		file := File{Name: f.Name, Size: max(f.Size, 0), SHA256: strings.ToLower(f.SHA256), Omitted: true}
		if err != nil || len(sum) != sha256.Size {
			file.SHA256 = ""
		}
		if !f.Omitted && file.SHA256 != "" && int64(base64.StdEncoding.DecodedLen(len(f.Content))) <= budget+2 {
			content, err := base64.StdEncoding.DecodeString(f.Content)
			got := sha256.Sum256(content)
			if err == nil && int64(len(content)) == f.Size && int64(len(content)) <= budget && bytes.Equal(got[:], sum) {
				file.Content, file.Omitted = content, false
				budget -= int64(len(content))
			}
		}
		out = append(out, file)
	}
	return out, omitted
}
