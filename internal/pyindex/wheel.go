package pyindex

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/errdefs"
)

// FixedTime is the modification time stamped on every file inside the
// archives this package writes, so that their bytes are reproducible.
var FixedTime = time.Date(2020, time.January, 1, 0, 0, 0, 0, time.UTC)

// Wheel describes a pure-Python wheel for BuildWheel.
type Wheel struct {
	// Name is the distribution name as written in METADATA ("My-Pkg").
	Name string
	// Version is the version (PEP 440, e.g. "1.0.0").
	Version string
	// Package is the import package written as <Package>/__init__.py.
	// Empty means the name escaped to an identifier ("my_pkg").
	Package string
	// Init is the content of <Package>/__init__.py. Empty means
	// `__version__ = "<Version>"`.
	Init string
	// NoPackage leaves out <Package>/__init__.py, for wheels made only of
	// Files (namespace packages, .pth files).
	NoPackage bool
	// Files are extra files, path (slash-separated, relative to the wheel
	// root, i.e. site-packages) to content. A directory without an
	// __init__.py makes a namespace package; "x.pth" at the root is a path
	// configuration file.
	Files map[string]string
	// Requires are Requires-Dist lines (PEP 508), e.g. `dep>=1.0`.
	Requires []string
	// RequiresPython is the Requires-Python specifier, e.g. ">=3.8".
	RequiresPython string
	// ProvidesExtra are the extras the wheel declares (Provides-Extra);
	// their requirements are Requires lines with `extra == "NAME"`.
	ProvidesExtra []string
	// ConsoleScripts maps a script name to its entry point "module:func".
	ConsoleScripts map[string]string
	// Summary is the one-line Summary in METADATA.
	Summary string
	// RawEntryPoints, if set, is written unchecked as entry_points.txt
	// instead of one made from ConsoleScripts: for hostile wheels (script
	// names with '/' or '..').
	RawEntryPoints string
	// Tag is the wheel's compatibility tag as in its file name, e.g.
	// "cp311-cp311-manylinux_2_17_x86_64" or "py2.py3-none-any"; empty
	// means "py3-none-any". The wheel's files are pure Python whatever it
	// claims.
	Tag string
	// Build is the wheel's build tag ("1", "2b"), empty for none.
	Build string
	// MetadataName, if set, is the Name written in METADATA instead of
	// Name (for wheels whose metadata spells the project differently).
	MetadataName string
	// MetadataVersion, if set, is the Version written in METADATA
	// instead of Version (for wheels whose metadata disagrees with their
	// file name).
	MetadataVersion string
}

var (
	// nameRE is the PEP 508 distribution-name grammar.
	nameRE = regexp.MustCompile(`(?i)^([a-z0-9]|[a-z0-9][a-z0-9._-]*[a-z0-9])$`)
	// versionRE is deliberately loose; pip reports versions it cannot parse.
	versionRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.!+_-]*$`)
	// identRE is a Python identifier (ASCII only).
	identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	// entryRE is a console-script entry point, "module.sub:func.attr".
	entryRE  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_.]*$`)
	scriptRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	sepRunRE = regexp.MustCompile(`[-_.]+`)
)

// Normalize returns the PEP 503-normalized form of a project name:
// lowercase, with every run of '-', '_' and '.' replaced by one '-'.
func Normalize(name string) string {
	return strings.ToLower(sepRunRE.ReplaceAllString(name, "-"))
}

// escapeName escapes a distribution name for use in a file name (binary
// distribution format spec): normalized, with '_' as the separator.
func escapeName(name string) string {
	return strings.ToLower(sepRunRE.ReplaceAllString(name, "_"))
}

// escapeVersion escapes a version for use in a file name.
func escapeVersion(v string) string {
	return strings.ReplaceAll(v, "-", "_")
}

// WheelFilename returns the file name BuildWheel gives a wheel of name and
// version: "<escaped name>-<version>-py3-none-any.whl".
func WheelFilename(name, version string) string {
	return escapeName(name) + "-" + escapeVersion(version) + "-py3-none-any.whl"
}

// Filename returns the file name BuildWheel gives w: WheelFilename with
// w's build tag and compatibility tag.
func (w Wheel) Filename() string {
	tag := w.Tag
	if tag == "" {
		tag = "py3-none-any"
	}
	build := ""
	if w.Build != "" {
		build = "-" + w.Build
	}
	return escapeName(w.Name) + "-" + escapeVersion(w.Version) + build + "-" + tag + ".whl"
}

var (
	tagRE   = regexp.MustCompile(`^[a-z0-9_.]+-[a-z0-9_.]+-[a-z0-9_.]+$`)
	buildRE = regexp.MustCompile(`^[0-9][A-Za-z0-9_.]*$`)
)

// wheelTags expands a compressed tag ("py2.py3-none-any") into the WHEEL
// file's Tag lines.
func wheelTags(tag string) []string {
	p := strings.Split(tag, "-")
	var out []string
	for _, py := range strings.Split(p[0], ".") {
		for _, abi := range strings.Split(p[1], ".") {
			for _, plat := range strings.Split(p[2], ".") {
				out = append(out, py+"-"+abi+"-"+plat)
			}
		}
	}
	return out
}

func checkNameVersion(name, version string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("distribution name %q is not a valid PEP 508 name: %w", name, errdefs.ErrInvalidArgument)
	}
	if !versionRE.MatchString(version) {
		return fmt.Errorf("version %q of %s is not a valid version: %w", version, name, errdefs.ErrInvalidArgument)
	}
	return nil
}

// checkRelPath rejects paths that would escape the archive root.
func checkRelPath(p string) error {
	if p == "" || strings.HasPrefix(p, "/") || strings.Contains(p, "\\") || strings.HasSuffix(p, "/") {
		return fmt.Errorf("file path %q must be a relative slash-separated file path: %w", p, errdefs.ErrInvalidArgument)
	}
	for _, el := range strings.Split(p, "/") {
		if el == "" || el == "." || el == ".." {
			return fmt.Errorf("file path %q must not contain empty, '.' or '..' elements: %w", p, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

// metadata renders core metadata (METADATA / PKG-INFO), version 2.1.
func metadata(name, version, summary, requiresPython string, requires []string) (string, error) {
	var b strings.Builder
	b.WriteString("Metadata-Version: 2.1\n")
	fmt.Fprintf(&b, "Name: %s\n", name)
	fmt.Fprintf(&b, "Version: %s\n", version)
	for k, v := range map[string]string{"Summary": summary, "Requires-Python": requiresPython} {
		if strings.ContainsAny(v, "\r\n") {
			return "", fmt.Errorf("%s of %s must be one line: %w", k, name, errdefs.ErrInvalidArgument)
		}
	}
	if summary != "" {
		fmt.Fprintf(&b, "Summary: %s\n", summary)
	}
	if requiresPython != "" {
		fmt.Fprintf(&b, "Requires-Python: %s\n", requiresPython)
	}
	for _, r := range requires {
		if strings.TrimSpace(r) == "" || strings.ContainsAny(r, "\r\n") {
			return "", fmt.Errorf("requirement %q of %s must be one non-empty line: %w", r, name, errdefs.ErrInvalidArgument)
		}
		fmt.Fprintf(&b, "Requires-Dist: %s\n", strings.TrimSpace(r))
	}
	return b.String(), nil
}

// recordHash returns the RECORD hash field of content.
func recordHash(content []byte) string {
	sum := sha256.Sum256(content)
	return "sha256=" + base64.RawURLEncoding.EncodeToString(sum[:])
}

// BuildWheel writes the wheel w into dir and returns its path. The file is
// named WheelFilename(w.Name, w.Version) and its bytes depend only on w.
// Invalid input is an errdefs.ErrInvalidArgument.
func BuildWheel(dir string, w Wheel) (string, error) {
	if err := checkNameVersion(w.Name, w.Version); err != nil {
		return "", err
	}
	distInfo := escapeName(w.Name) + "-" + escapeVersion(w.Version) + ".dist-info"

	files := map[string]string{}
	if !w.NoPackage {
		pkg := w.Package
		if pkg == "" {
			pkg = escapeName(w.Name)
		}
		if !identRE.MatchString(pkg) {
			return "", fmt.Errorf("package %q of %s is not a Python identifier: %w", pkg, w.Name, errdefs.ErrInvalidArgument)
		}
		init := w.Init
		if init == "" {
			init = fmt.Sprintf("__version__ = %s\n", pyString(w.Version))
		}
		files[pkg+"/__init__.py"] = init
	}
	for p, content := range w.Files {
		if err := checkRelPath(p); err != nil {
			return "", fmt.Errorf("wheel %s: %w", w.Name, err)
		}
		if strings.HasPrefix(p, distInfo+"/") {
			return "", fmt.Errorf("wheel %s: file %q is inside the generated %s: %w", w.Name, p, distInfo, errdefs.ErrInvalidArgument)
		}
		if _, dup := files[p]; dup {
			return "", fmt.Errorf("wheel %s: file %q collides with the generated package: %w", w.Name, p, errdefs.ErrInvalidArgument)
		}
		files[p] = content
	}

	if w.Tag != "" && !tagRE.MatchString(w.Tag) {
		return "", fmt.Errorf("wheel %s: tag %q is not python-abi-platform: %w", w.Name, w.Tag, errdefs.ErrInvalidArgument)
	}
	if w.Build != "" && !buildRE.MatchString(w.Build) {
		return "", fmt.Errorf("wheel %s: build tag %q must start with a digit: %w", w.Name, w.Build, errdefs.ErrInvalidArgument)
	}
	metaName := w.Name
	if w.MetadataName != "" {
		metaName = w.MetadataName
	}
	metaVersion := w.Version
	if w.MetadataVersion != "" {
		metaVersion = w.MetadataVersion
	}
	meta, err := metadata(metaName, metaVersion, w.Summary, w.RequiresPython, w.Requires)
	if err != nil {
		return "", err
	}
	for _, e := range w.ProvidesExtra {
		if !identRE.MatchString(e) {
			return "", fmt.Errorf("extra %q of %s: %w", e, w.Name, errdefs.ErrInvalidArgument)
		}
		meta += "Provides-Extra: " + e + "\n"
	}
	files[distInfo+"/METADATA"] = meta
	tag := w.Tag
	if tag == "" {
		tag = "py3-none-any"
	}
	wheelFile := "Wheel-Version: 1.0\nGenerator: skillbuild-pyindex\nRoot-Is-Purelib: true\n"
	for _, t := range wheelTags(tag) {
		wheelFile += "Tag: " + t + "\n"
	}
	if w.Build != "" {
		wheelFile += "Build: " + w.Build + "\n"
	}
	files[distInfo+"/WHEEL"] = wheelFile
	if len(w.ConsoleScripts) > 0 {
		var b strings.Builder
		b.WriteString("[console_scripts]\n")
		for _, name := range sortedKeys(w.ConsoleScripts) {
			ep := w.ConsoleScripts[name]
			if !scriptRE.MatchString(name) || !entryRE.MatchString(ep) {
				return "", fmt.Errorf("wheel %s: console script %q = %q: want name = module:func: %w", w.Name, name, ep, errdefs.ErrInvalidArgument)
			}
			fmt.Fprintf(&b, "%s = %s\n", name, ep)
		}
		files[distInfo+"/entry_points.txt"] = b.String()
	}
	if w.RawEntryPoints != "" {
		files[distInfo+"/entry_points.txt"] = w.RawEntryPoints
	}

	// Package files first, then .dist-info, RECORD last (PEP 427 recommends
	// it); each group sorted so the archive is reproducible.
	names := sortedKeys(files)
	sort.SliceStable(names, func(i, j int) bool {
		return !strings.HasPrefix(names[i], distInfo+"/") && strings.HasPrefix(names[j], distInfo+"/")
	})
	record := distInfo + "/RECORD"

	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	var rec bytes.Buffer
	cw := csv.NewWriter(&rec)
	for _, name := range append(names, record) {
		var content []byte
		if name == record {
			_ = cw.Write([]string{record, "", ""})
			cw.Flush()
			if err := cw.Error(); err != nil {
				return "", fmt.Errorf("wheel %s: write RECORD: %w", w.Name, err)
			}
			content = rec.Bytes()
		} else {
			content = []byte(files[name])
			_ = cw.Write([]string{name, recordHash(content), fmt.Sprint(len(content))})
		}
		if err := addZipFile(zw, name, content); err != nil {
			return "", fmt.Errorf("wheel %s: %w", w.Name, err)
		}
	}
	if err := zw.Close(); err != nil {
		return "", fmt.Errorf("wheel %s: %w", w.Name, err)
	}
	out := filepath.Join(dir, w.Filename())
	if err := writeFileAtomic(out, buf.Bytes()); err != nil {
		return "", err
	}
	return out, nil
}

func addZipFile(zw *zip.Writer, name string, content []byte) error {
	h := &zip.FileHeader{Name: name, Method: zip.Deflate, Modified: FixedTime}
	h.SetMode(0o644)
	f, err := zw.CreateHeader(h)
	if err != nil {
		return fmt.Errorf("add %s: %w", name, err)
	}
	if _, err := f.Write(content); err != nil {
		return fmt.Errorf("add %s: %w", name, err)
	}
	return nil
}

// writeFileAtomic writes data to a temporary file beside path and renames it
// into place, so a server scanning the directory never sees half a file.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// pyString returns s as a Python string literal. Go's ASCII-quoted form uses
// only escapes Python also understands (\n, \", \\, \xNN, \uNNNN, \UNNNNNNNN).
func pyString(s string) string {
	return strconv.QuoteToASCII(s)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
