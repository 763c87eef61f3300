package pyindex

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/containerd/errdefs"
)

// Sdist describes a setuptools source distribution for BuildSdist.
type Sdist struct {
	// Name is the distribution name as written in PKG-INFO.
	Name string
	// Version is the version (PEP 440).
	Version string
	// Package is the import package written as <Package>/__init__.py and
	// listed in setup(packages=...). Empty means the escaped name.
	Package string
	// NoPackage leaves the package out (setup(packages=[])).
	NoPackage bool
	// Prelude is Python code placed in the default setup.py after
	// `import setuptools` and before the setuptools.setup(...) call, e.g.
	// ConnectProbe's. It runs whenever pip builds the sdist's metadata.
	Prelude string
	// SetupPy, if set, is the whole setup.py instead of the default one.
	SetupPy string
	// Files are extra files, path (relative to the sdist's top directory)
	// to content, e.g. "pyproject.toml".
	Files map[string]string
	// Requires become Requires-Dist in PKG-INFO and install_requires in
	// the default setup.py (pip trusts only the latter for an sdist).
	Requires []string
	// RequiresPython becomes Requires-Python and python_requires.
	RequiresPython string
	// Summary is the one-line Summary in PKG-INFO.
	Summary string
}

// SdistFilename returns the file name BuildSdist gives an sdist of name and
// version: "<escaped name>-<version>.tar.gz" (PEP 625).
func SdistFilename(name, version string) string {
	return sdistStem(name, version) + ".tar.gz"
}

func sdistStem(name, version string) string {
	return escapeName(name) + "-" + escapeVersion(version)
}

// BuildSdist writes the sdist s into dir and returns its path. The archive
// holds <stem>/PKG-INFO, <stem>/setup.py, the package and s.Files, with fixed
// owners and times, so its bytes depend only on s. Invalid input is an
// errdefs.ErrInvalidArgument.
func BuildSdist(dir string, s Sdist) (string, error) {
	if err := checkNameVersion(s.Name, s.Version); err != nil {
		return "", err
	}
	files := map[string]string{}
	var packages []string
	if !s.NoPackage {
		pkg := s.Package
		if pkg == "" {
			pkg = escapeName(s.Name)
		}
		if !identRE.MatchString(pkg) {
			return "", fmt.Errorf("package %q of %s is not a Python identifier: %w", pkg, s.Name, errdefs.ErrInvalidArgument)
		}
		files[pkg+"/__init__.py"] = fmt.Sprintf("__version__ = %s\n", pyString(s.Version))
		packages = append(packages, pkg)
	}
	pkgInfo, err := metadata(s.Name, s.Version, s.Summary, s.RequiresPython, s.Requires)
	if err != nil {
		return "", err
	}
	files["PKG-INFO"] = pkgInfo
	setup := s.SetupPy
	if setup == "" {
		setup = defaultSetupPy(s, packages)
	}
	files["setup.py"] = setup
	for p, content := range s.Files {
		if err := checkRelPath(p); err != nil {
			return "", fmt.Errorf("sdist %s: %w", s.Name, err)
		}
		if _, dup := files[p]; dup {
			return "", fmt.Errorf("sdist %s: file %q collides with a generated file: %w", s.Name, p, errdefs.ErrInvalidArgument)
		}
		files[p] = content
	}

	stem := sdistStem(s.Name, s.Version)
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf) // zero ModTime and no name: reproducible
	tw := tar.NewWriter(gz)
	dirs := map[string]bool{}
	for _, p := range sortedKeys(files) {
		// Parent directories first, once each, like setuptools' sdists.
		parts := strings.Split(p, "/")
		for i := 0; i < len(parts); i++ {
			d := stem + "/" + strings.Join(parts[:i], "/")
			d = strings.TrimSuffix(d, "/") + "/"
			if dirs[d] {
				continue
			}
			dirs[d] = true
			if err := tw.WriteHeader(tarHeader(d, tar.TypeDir, 0o755, 0)); err != nil {
				return "", fmt.Errorf("sdist %s: %w", s.Name, err)
			}
		}
		content := []byte(files[p])
		if err := tw.WriteHeader(tarHeader(stem+"/"+p, tar.TypeReg, 0o644, int64(len(content)))); err != nil {
			return "", fmt.Errorf("sdist %s: %w", s.Name, err)
		}
		if _, err := tw.Write(content); err != nil {
			return "", fmt.Errorf("sdist %s: %w", s.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return "", fmt.Errorf("sdist %s: %w", s.Name, err)
	}
	if err := gz.Close(); err != nil {
		return "", fmt.Errorf("sdist %s: %w", s.Name, err)
	}
	out := filepath.Join(dir, SdistFilename(s.Name, s.Version))
	if err := writeFileAtomic(out, buf.Bytes()); err != nil {
		return "", err
	}
	return out, nil
}

func tarHeader(name string, typ byte, mode, size int64) *tar.Header {
	return &tar.Header{
		Typeflag: typ,
		Name:     name,
		Mode:     mode,
		Size:     size,
		ModTime:  FixedTime,
		Format:   tar.FormatPAX,
	}
}

func defaultSetupPy(s Sdist, packages []string) string {
	var b strings.Builder
	b.WriteString("import setuptools\n\n")
	if s.Prelude != "" {
		b.WriteString(strings.TrimRight(s.Prelude, "\n"))
		b.WriteString("\n\n")
	}
	b.WriteString("setuptools.setup(\n")
	fmt.Fprintf(&b, "    name=%s,\n", pyString(s.Name))
	fmt.Fprintf(&b, "    version=%s,\n", pyString(s.Version))
	fmt.Fprintf(&b, "    packages=%s,\n", pyList(packages))
	if len(s.Requires) > 0 {
		fmt.Fprintf(&b, "    install_requires=%s,\n", pyList(s.Requires))
	}
	if s.RequiresPython != "" {
		fmt.Fprintf(&b, "    python_requires=%s,\n", pyString(s.RequiresPython))
	}
	b.WriteString(")\n")
	return b.String()
}

func pyList(items []string) string {
	q := make([]string, len(items))
	for i, it := range items {
		q[i] = pyString(strings.TrimSpace(it))
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// ConnectProbe returns Python code, for Sdist.Prelude, that tries a TCP
// connection to host:port (5 s timeout) and records what happened: it writes
// "connected\n" or "failed: <error>\n" to outFile and prints the same line,
// prefixed "pyindex-probe: ", to stderr. A failure to write outFile is
// ignored, so the probe never breaks the build by itself.
func ConnectProbe(host string, port int, outFile string) string {
	return fmt.Sprintf(`import socket as _probe_socket, sys as _probe_sys
try:
    _probe_conn = _probe_socket.create_connection((%s, %d), timeout=5)
    _probe_conn.close()
    _probe_result = "connected"
except OSError as _probe_err:
    _probe_result = "failed: %%s" %% (_probe_err,)
print("pyindex-probe: " + _probe_result, file=_probe_sys.stderr)
try:
    with open(%s, "w") as _probe_out:
        _probe_out.write(_probe_result + "\n")
except OSError:
    pass
`, pyString(host), port, pyString(outFile))
}
