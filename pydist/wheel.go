package pydist

import (
	"archive/zip"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"github.com/skillbuild/skillbuild/lock"
)

// Tag is a compatibility tag (PEP 425), lowercase.
type Tag struct {
	Interpreter, ABI, Platform string
}

func (t Tag) String() string { return t.Interpreter + "-" + t.ABI + "-" + t.Platform }

// ParseTag reads "interpreter-abi-platform".
func ParseTag(s string) (Tag, error) {
	p := strings.Split(strings.ToLower(s), "-")
	if len(p) != 3 || p[0] == "" || p[1] == "" || p[2] == "" {
		return Tag{}, fmt.Errorf("tag %q is not interpreter-abi-platform", s)
	}
	return Tag{p[0], p[1], p[2]}, nil
}

// WheelName is a wheel file name as pip 23.0 reads it (pip's Wheel).
type WheelName struct {
	// Name and Version as in the file name, "_" read as "-".
	Name, Version string
	// Build is the build tag, "" without one.
	Build string
	// Tags are every combination of the file's python, abi and platform
	// tags.
	Tags []Tag
}

// wheelRE is pip's Wheel.wheel_file_re, without its ".dist-info"
// alternative.
var wheelRE = regexp.MustCompile(`^(?:([^\s-]+?)-([^\s-]*?))(?:(?:-(\d[^-]*?))?-([^\s-]+?)-([^\s-]+?)-([^\s-]+?)\.whl)$`)

// ParseWheelName parses a wheel file name; a name pip does not take for
// a wheel is an error.
func ParseWheelName(filename string) (WheelName, error) {
	m := wheelRE.FindStringSubmatch(filename)
	if m == nil {
		return WheelName{}, fmt.Errorf("%q is not a valid wheel filename", filename)
	}
	w := WheelName{
		Name:    strings.ReplaceAll(m[1], "_", "-"),
		Version: strings.ReplaceAll(m[2], "_", "-"),
		Build:   m[3],
	}
	seen := map[Tag]bool{}
	for _, py := range strings.Split(m[4], ".") {
		for _, abi := range strings.Split(m[5], ".") {
			for _, plat := range strings.Split(m[6], ".") {
				t := Tag{strings.ToLower(py), strings.ToLower(abi), strings.ToLower(plat)}
				if !seen[t] {
					seen[t] = true
					w.Tags = append(w.Tags, t)
				}
			}
		}
	}
	return w, nil
}

// BuildTag is the build tag as pip sorts it: its leading number and the
// rest; ok is false without a build tag.
func (w WheelName) BuildTag() (n int64, rest string, ok bool) {
	if w.Build == "" {
		return 0, "", false
	}
	i := 0
	for i < len(w.Build) && w.Build[i] >= '0' && w.Build[i] <= '9' {
		i++
	}
	n, err := strconv.ParseInt(w.Build[:i], 10, 64)
	if err != nil {
		return 0, "", false
	}
	return n, w.Build[i:], true
}

// MaxMetadata bounds a METADATA file.
const MaxMetadata = 16 << 20

// WheelMetadata reads the METADATA of the wheel in r (size bytes) for the
// project whose canonical name is name, as pip's parse_wheel does: the
// one top-level .dist-info directory, whose canonical name starts with
// name, a WHEEL file of Wheel-Version 1.x, then its METADATA. What pip
// refuses (UnsupportedWheel) or reads differently is an ErrUnsupported.
func WheelMetadata(r io.ReaderAt, size int64, name string) ([]byte, error) {
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return nil, fmt.Errorf("wheel of %s: %v: %w", name, err, ErrUnsupported)
	}
	dirs := map[string]bool{}
	files := map[string]*zip.File{}
	for _, f := range zr.File {
		top, _, _ := strings.Cut(f.Name, "/")
		if strings.HasSuffix(top, ".dist-info") {
			dirs[top] = true
		}
		if _, dup := files[f.Name]; dup {
			return nil, fmt.Errorf("wheel of %s lists %s twice: %w", name, f.Name, ErrUnsupported)
		}
		files[f.Name] = f
	}
	if len(dirs) != 1 {
		return nil, fmt.Errorf("wheel of %s has %d .dist-info directories: %w", name, len(dirs), ErrUnsupported)
	}
	var dir string
	for d := range dirs {
		dir = d
	}
	if !strings.HasPrefix(lock.NormalizeName(dir), lock.NormalizeName(name)) {
		return nil, fmt.Errorf("wheel of %s has .dist-info directory %s: %w", name, dir, ErrUnsupported)
	}
	wheel, err := readZipFile(files, dir+"/WHEEL")
	if err != nil {
		return nil, err
	}
	wm, err := ParseMetadata(wheel)
	if err != nil {
		return nil, err
	}
	wv, ok := wm.Get("Wheel-Version")
	if !ok {
		return nil, fmt.Errorf("wheel of %s: WHEEL has no Wheel-Version: %w", name, ErrUnsupported)
	}
	major, _, _ := strings.Cut(strings.TrimSpace(wv), ".")
	if major != "1" {
		return nil, fmt.Errorf("wheel of %s: Wheel-Version %q: %w", name, wv, ErrUnsupported)
	}
	return readZipFile(files, dir+"/METADATA")
}

func readZipFile(files map[string]*zip.File, name string) ([]byte, error) {
	f := files[name]
	if f == nil {
		return nil, fmt.Errorf("wheel has no %s: %w", name, ErrUnsupported)
	}
	rc, err := f.Open()
	if err != nil {
		return nil, fmt.Errorf("wheel file %s: %v: %w", name, err, ErrUnsupported)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, MaxMetadata+1))
	if err != nil || len(b) > MaxMetadata {
		return nil, fmt.Errorf("wheel file %s: unreadable or larger than %d bytes: %w", name, MaxMetadata, ErrUnsupported)
	}
	return b, nil
}
