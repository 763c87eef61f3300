package cli

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/skillbuild/skillbuild/config"
	"github.com/skillbuild/skillbuild/skill/api"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"
)

// repeated is a flag given once per value (--in a.csv --in b.csv), each
// value whole: a path may hold commas, which a string slice flag would
// split at.
type repeated []string

func (r *repeated) Set(v string) error { *r = append(*r, v); return nil }
func (r *repeated) String() string     { return strings.Join(*r, " ") }

// fileFlags are the files of --in for the request, and --out-dir created
// ahead of the run, so that a directory that cannot be made fails before
// any code runs.
func fileFlags(c *cli.Context) (map[string]string, error) {
	files, err := inFiles(*c.Generic("in").(*repeated))
	if err != nil {
		return nil, err
	}
	if dir := c.String("out-dir"); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("--out-dir: %w: %w", err, errdefs.ErrInvalidArgument)
		}
	}
	return files, nil
}

// inFiles reads the --in files (NAME=PATH, or PATH named by its base
// name) into a run request's files, in standard base64.
func inFiles(specs []string) (map[string]string, error) {
	if len(specs) == 0 {
		return nil, nil
	}
	files := map[string]string{}
	for _, spec := range specs {
		name, file, ok := strings.Cut(spec, "=")
		if !ok {
			name, file = filepath.Base(spec), spec
		}
		if name == "" || file == "" {
			return nil, fmt.Errorf("--in %q: expected NAME=PATH or PATH: %w", spec, errdefs.ErrInvalidArgument)
		}
		if _, dup := files[name]; dup {
			return nil, fmt.Errorf("--in %q: a file named %q is given twice: %w", spec, name, errdefs.ErrInvalidArgument)
		}
		b, err := config.ReadInput(file, api.MaxFilesBytes)
		if err != nil {
			return nil, fmt.Errorf("--in %s: %w", spec, err)
		}
		files[name] = base64.StdEncoding.EncodeToString(b)
	}
	return files, nil
}

// saveFiles writes the files a run returned under dir (--out-dir) and
// says on w which ones it could not: those listed without content
// (over the cap) and those beyond the listed ones. An empty dir saves
// nothing but says that files came back.
func saveFiles(w io.Writer, dir string, out *api.RunResult) error {
	if dir == "" {
		if n := len(out.Files) + out.FilesOmitted; n > 0 {
			fmt.Fprintf(w, "skillbuild: the code left %d files in /data/out; --out-dir DIR saves them\n", n)
		}
		return nil
	}
	var errs []error
	for _, f := range out.Files {
		if f.Omitted {
			fmt.Fprintf(w, "skillbuild: %s (%d bytes) not saved: over the cap of %d bytes of files returned together\n", f.Name, f.Size, api.MaxFilesBytes)
			continue
		}
		if err := saveFile(dir, f); err != nil {
			errs = append(errs, fmt.Errorf("--out-dir: %s: %w", f.Name, err))
		}
	}
	if out.FilesOmitted > 0 {
		fmt.Fprintf(w, "skillbuild: %d more files not returned: over the cap of %d files\n", out.FilesOmitted, len(out.Files))
	}
	return errors.Join(errs...)
}

// checkOutName refuses a returned file's name that is not a clean
// relative path below the directory: the runtime checked it, and so does
// the command that writes it.
func checkOutName(name string) error {
	if name == "" || path.IsAbs(name) || path.Clean(name) != name || !filepath.IsLocal(name) ||
		strings.ContainsAny(name, "\\\x00") || name == "." || strings.HasPrefix(name, "../") {
		return fmt.Errorf("refusing a file name that is not a clean path below the directory: %w", errdefs.ErrInvalidArgument)
	}
	return nil
}

// saveFile writes f under dir, creating its parents, without following
// a symbolic link anywhere below dir (each step is opened relative to the
// one before with O_NOFOLLOW).
func saveFile(dir string, f api.RunFile) error {
	if err := checkOutName(f.Name); err != nil {
		return err
	}
	b, err := base64.StdEncoding.DecodeString(f.Content)
	if err != nil {
		return fmt.Errorf("content: %w", err)
	}
	if sum := sha256.Sum256(b); int64(len(b)) != f.Size || hex.EncodeToString(sum[:]) != f.SHA256 {
		return fmt.Errorf("content does not match its size and sha256")
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: dir, Err: err}
	}
	defer func() { unix.Close(fd) }()
	elems := strings.Split(f.Name, "/")
	for i, el := range elems[:len(elems)-1] {
		if err := unix.Mkdirat(fd, el, 0o755); err != nil && err != unix.EEXIST {
			return &os.PathError{Op: "mkdir", Path: filepath.Join(dir, filepath.Join(elems[:i+1]...)), Err: err}
		}
		next, err := unix.Openat(fd, el, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return &os.PathError{Op: "open", Path: filepath.Join(dir, filepath.Join(elems[:i+1]...)), Err: notFollowed(err)}
		}
		unix.Close(fd)
		fd = next
	}
	ffd, err := unix.Openat(fd, elems[len(elems)-1], unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return &os.PathError{Op: "create", Path: filepath.Join(dir, f.Name), Err: notFollowed(err)}
	}
	file := os.NewFile(uintptr(ffd), filepath.Join(dir, f.Name))
	if _, err := file.Write(b); err != nil {
		file.Close()
		return err
	}
	return file.Close()
}

// notFollowed says what ELOOP (or ENOTDIR on a link) from O_NOFOLLOW
// means here.
func notFollowed(err error) error {
	if err == unix.ELOOP || err == unix.ENOTDIR {
		return fmt.Errorf("%w: a symbolic link or not a directory there; not followed", err)
	}
	return err
}
