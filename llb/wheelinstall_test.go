package llb

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// testWheel writes a wheel whose members are exactly files (no checks: the
// point is to hand the installer what a hostile index could) and returns
// its path and sha256.
func testWheel(t *testing.T, dir, filename string, files map[string]string) (string, string) {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		w, err := zw.Create(n)
		require.NoError(t, err)
		_, err = w.Write([]byte(files[n]))
		require.NoError(t, err)
	}
	require.NoError(t, zw.Close())
	p := filepath.Join(dir, filename)
	require.NoError(t, os.WriteFile(p, buf.Bytes(), 0o644))
	sum := sha256.Sum256(buf.Bytes())
	return p, hex.EncodeToString(sum[:])
}

// distFiles are the dist-info files of name-version plus extra.
func distFiles(name, version string, extra map[string]string) map[string]string {
	di := name + "-" + version + ".dist-info/"
	files := map[string]string{
		di + "WHEEL":    "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
		di + "METADATA": "Metadata-Version: 2.1\nName: " + name + "\nVersion: " + version + "\n",
		di + "RECORD":   "",
	}
	for k, v := range extra {
		files[k] = v
	}
	return files
}

// hostVenv makes a venv with the host's python3 (like the image's venv:
// --without-pip, bin/python a symlink, lib64 -> lib).
func hostVenv(t *testing.T) string {
	t.Helper()
	py, err := exec.LookPath("python3")
	require.NoError(t, err, "the host python3 runs the installer in this test")
	dir := filepath.Join(t.TempDir(), "venv")
	out, err := exec.Command(py, "-m", "venv", "--without-pip", dir).CombinedOutput()
	require.NoError(t, err, "%s", out)
	return dir
}

// runInstaller runs wheelinstall.py with the venv's python on (name,
// version, sha, file) quadruples, with no host environment.
func runInstaller(t *testing.T, venv string, args ...string) (string, error) {
	t.Helper()
	script := filepath.Join(t.TempDir(), "wheelinstall.py")
	require.NoError(t, os.WriteFile(script, wheelInstallScript, 0o644))
	cmd := exec.Command(filepath.Join(venv, "bin", "python"), append([]string{"-I", script}, args...)...)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "SOURCE_DATE_EPOCH=0", "LANG=C.UTF-8"}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// treeSnapshot lists every path under dir (symlinks not followed) with its
// type and, for regular files, content hash: what a refused install must
// leave untouched outside the venv.
func treeSnapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	require.NoError(t, filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			out[p] = "link " + target
		case fi.Mode().IsRegular():
			b, _ := os.ReadFile(p)
			sum := sha256.Sum256(b)
			out[p] = hex.EncodeToString(sum[:])
		default:
			out[p] = "dir"
		}
		return nil
	}))
	return out
}

func sitePackages(t *testing.T, venv string) string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(venv, "lib", "python3*", "site-packages"))
	require.NoError(t, err)
	require.Len(t, m, 1)
	return m[0]
}

func TestWheelInstallPutsFilesWherePipDoes(t *testing.T) {
	t.Parallel()
	venv := hostVenv(t)
	dir := t.TempDir()
	whl, sum := testWheel(t, dir, "good-1.0-py3-none-any.whl", distFiles("good", "1.0", map[string]string{
		"good/__init__.py":                    "X = 1\n",
		"good-1.0.data/scripts/good-tool":     "#!python\nprint('hi')\n",
		"good-1.0.data/headers/good.h":        "int good;\n",
		"good-1.0.data/data/share/good/x.txt": "x\n",
		"good-1.0.data/purelib/good_extra.py": "Y = 2\n",
		"good-1.0.dist-info/entry_points.txt": "[console_scripts]\ngood = good:main\n",
	}))
	out, err := runInstaller(t, venv, "good", "1.0", sum, whl)
	require.NoError(t, err, out)

	site := sitePackages(t, venv)
	pyver := filepath.Base(filepath.Dir(site))
	for _, p := range []string{
		filepath.Join(site, "good", "__init__.py"),
		filepath.Join(site, "good_extra.py"),
		filepath.Join(site, "good-1.0.dist-info", "RECORD"),
		filepath.Join(site, "good-1.0.dist-info", "INSTALLER"),
		filepath.Join(venv, "bin", "good-tool"),
		filepath.Join(venv, "bin", "good"),
		filepath.Join(venv, "include", "site", pyver, "good", "good.h"),
		filepath.Join(venv, "share", "good", "x.txt"),
	} {
		fi, err := os.Lstat(p)
		if assert.NoError(t, err, "%s should be installed", p) {
			assert.True(t, fi.Mode().IsRegular(), "%s is a regular file", p)
		}
	}
	tool, err := os.ReadFile(filepath.Join(venv, "bin", "good-tool"))
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(string(tool), "#!"+venv+"/bin/python\n"), "shebang rewritten: %q", tool)
	record, err := os.ReadFile(filepath.Join(site, "good-1.0.dist-info", "RECORD"))
	require.NoError(t, err)
	assert.Contains(t, string(record), "../../../bin/good,sha256=")
	assert.Contains(t, string(record), "../../../include/site/"+pyver+"/good/good.h,sha256=")
}

func TestWheelInstallRefusesHostileWheels(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		lock    [2]string // name, version the lock claims
		files   map[string]string
		wantErr string
	}{
		{"absolute entry point", [2]string{"ep", "1.0"}, distFiles("ep", "1.0", map[string]string{
			"ep-1.0.dist-info/entry_points.txt": "[console_scripts]\n/tmp/sb-escape-abs = ep:main\n"}), "unsafe console script name '/tmp/sb-escape-abs'"},
		{"entry point climbing out of bin", [2]string{"ep", "1.0"}, distFiles("ep", "1.0", map[string]string{
			"ep-1.0.dist-info/entry_points.txt": "[gui_scripts]\n../../../../escape = ep:main\n"}), "unsafe console script name"},
		{"entry point named ..", [2]string{"ep", "1.0"}, distFiles("ep", "1.0", map[string]string{
			"ep-1.0.dist-info/entry_points.txt": "[console_scripts]\n.. = ep:main\n"}), "unsafe console script name '..'"},
		{"entry point that is not a reference", [2]string{"ep", "1.0"}, distFiles("ep", "1.0", map[string]string{
			"ep-1.0.dist-info/entry_points.txt": "[console_scripts]\nx = os; import evil:main\n"}), "not a module:function reference"},
		{"script over the venv's python link", [2]string{"sl", "1.0"}, distFiles("sl", "1.0", map[string]string{
			"sl-1.0.data/scripts/python": "#!/bin/sh\n"}), "bin/python (from 'sl-1.0.data/scripts/python'), which belongs to the virtual environment"},
		{"data through lib64", [2]string{"sl", "1.0"}, distFiles("sl", "1.0", map[string]string{
			"sl-1.0.data/data/lib64/x": "x\n"}), "lib64/x (from 'sl-1.0.data/data/lib64/x'), which belongs to the virtual environment"},
		{"data over bin/python3", [2]string{"sl", "1.0"}, distFiles("sl", "1.0", map[string]string{
			"sl-1.0.data/data/bin/python3": "x\n"}), "bin/python3 (from 'sl-1.0.data/data/bin/python3'), which belongs to the virtual environment"},
		{"data over pyvenv.cfg", [2]string{"pv", "1.0"}, distFiles("pv", "1.0", map[string]string{
			"pv-1.0.data/data/pyvenv.cfg": "include-system-site-packages = true\n"}), "/pyvenv.cfg (from 'pv-1.0.data/data/pyvenv.cfg'), which belongs to the virtual environment"},
		{"script over bin/activate", [2]string{"pv", "1.0"}, distFiles("pv", "1.0", map[string]string{
			"pv-1.0.data/scripts/activate": "echo pwned\n"}), "bin/activate (from 'pv-1.0.data/scripts/activate'), which belongs to the virtual environment"},
		{"an activate script the venv lacks", [2]string{"pv", "1.0"}, distFiles("pv", "1.0", map[string]string{
			"pv-1.0.data/scripts/activate.nu": "x\n"}), "bin/activate.nu (from 'pv-1.0.data/scripts/activate.nu'), which belongs to the virtual environment"},
		{"an interpreter name the venv lacks", [2]string{"pv", "1.0"}, distFiles("pv", "1.0", map[string]string{
			"pv-1.0.data/scripts/python3.99": "x\n"}), "bin/python3.99 (from 'pv-1.0.data/scripts/python3.99'), which belongs to the virtual environment"},
		{"the venv's include dir", [2]string{"pv", "1.0"}, distFiles("pv", "1.0", map[string]string{
			"pv-1.0.data/data/include/Python.h": "x\n"}), "include/Python.h (from 'pv-1.0.data/data/include/Python.h'), which belongs to the virtual environment"},
		{"the venv's lib outside site-packages", [2]string{"pv", "1.0"}, distFiles("pv", "1.0", map[string]string{
			"pv-1.0.data/data/lib/PYVER/os.py": "x\n"}), "lib/PYVER/os.py (from 'pv-1.0.data/data/lib/PYVER/os.py'), which belongs to the virtual environment"},
		{"over a file of the venv with no rule of its own", [2]string{"pv", "1.0"}, distFiles("pv", "1.0", map[string]string{
			"pv-1.0.data/scripts/pip": "x\n"}), "bin/pip (from 'pv-1.0.data/scripts/pip'), which belongs to the virtual environment"},
		{"an entry point over its own script", [2]string{"pv", "1.0"}, distFiles("pv", "1.0", map[string]string{
			"pv-1.0.data/scripts/tool":          "x\n",
			"pv-1.0.dist-info/entry_points.txt": "[console_scripts]\ntool = pv:main\n"}), "bin/tool (from 'entry point tool'), which it already wrote: no file may be replaced"},
		{"a data file over its own module", [2]string{"pv", "1.0"}, distFiles("pv", "1.0", map[string]string{
			"pv/__init__.py": "X = 1\n",
			"pv-1.0.data/data/lib/PYVER/site-packages/pv/__init__.py": "X = 2\n"}), "which it already wrote: no file may be replaced"},
		{"data through a link in the venv", [2]string{"sl", "1.0"}, distFiles("sl", "1.0", map[string]string{
			"sl-1.0.data/data/share/x": "x\n"}), "refusing to write through"},
		{"member with ..", [2]string{"dd", "1.0"}, distFiles("dd", "1.0", map[string]string{
			"dd/../../../../escape.py": "x\n"}), "unsafe path"},
		{"data member with ..", [2]string{"dd", "1.0"}, distFiles("dd", "1.0", map[string]string{
			"dd-1.0.data/data/../../escape": "x\n"}), "unsafe path"},
		{"unknown data key", [2]string{"dd", "1.0"}, distFiles("dd", "1.0", map[string]string{
			"dd-1.0.data/etc/x": "x\n"}), "unknown data directory 'etc'"},
		{"another distribution", [2]string{"good", "1.0"}, distFiles("evil", "1.0", nil), "contains evil-1.0.dist-info, not the locked good 1.0"},
		{"another version", [2]string{"good", "1.0"}, distFiles("good", "6.6", nil), "not the locked good 1.0"},
		{"metadata of another distribution", [2]string{"good", "1.0"}, map[string]string{
			"good-1.0.dist-info/WHEEL":    "Wheel-Version: 1.0\nRoot-Is-Purelib: true\n",
			"good-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: evil\nVersion: 1.0\n",
		}, "its METADATA names evil 1.0, not the locked good 1.0"},
		{"two dist-info directories", [2]string{"good", "1.0"}, distFiles("good", "1.0", map[string]string{
			"evil-2.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: evil\nVersion: 2.0\n"}), "more than one .dist-info directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			venv := hostVenv(t)
			// Files and links the venv could have: a pip, a link out.
			require.NoError(t, os.WriteFile(filepath.Join(venv, "bin", "pip"), []byte("pip\n"), 0o755))
			require.NoError(t, os.Symlink(t.TempDir(), filepath.Join(venv, "share")))
			pyver := filepath.Base(filepath.Dir(sitePackages(t, venv)))
			files := map[string]string{}
			for k, v := range tt.files {
				files[strings.ReplaceAll(k, "PYVER", pyver)] = v
			}
			before := treeSnapshot(t, venv)
			whl, sum := testWheel(t, t.TempDir(), tt.lock[0]+"-"+tt.lock[1]+"-py3-none-any.whl", files)
			out, err := runInstaller(t, venv, tt.lock[0], tt.lock[1], sum, whl)
			require.Error(t, err, "a hostile wheel must be refused:\n%s", out)
			assert.Contains(t, out, "refused: ")
			assert.Contains(t, out, strings.ReplaceAll(tt.wantErr, "PYVER", pyver))
			// Nothing the venv already had was changed (the refused write
			// did not go through a link).
			after := treeSnapshot(t, venv)
			for p, v := range before {
				if !strings.HasPrefix(p, sitePackages(t, venv)) {
					assert.Equal(t, v, after[p], "%s changed", p)
				}
			}
			_, err = os.Lstat("/tmp/sb-escape-abs")
			assert.True(t, os.IsNotExist(err), "an absolute entry point was written")
			_, err = os.Lstat(filepath.Join(filepath.Dir(venv), "escape"))
			assert.True(t, os.IsNotExist(err), "an entry point left the venv")
		})
	}
}

func TestWheelInstallChecksTheHash(t *testing.T) {
	t.Parallel()
	venv := hostVenv(t)
	whl, _ := testWheel(t, t.TempDir(), "good-1.0-py3-none-any.whl", distFiles("good", "1.0", nil))
	out, err := runInstaller(t, venv, "good", "1.0", strings.Repeat("0", 64), whl)
	require.Error(t, err)
	assert.Contains(t, out, "does not match the lock's")
}

// mtimes maps every path under dir (links not followed) to its
// modification time in seconds.
func mtimes(t *testing.T, dir string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	require.NoError(t, filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		out[p] = fi.ModTime().Unix()
		return nil
	}))
	return out
}

// TestWheelInstallFixesTheTimesOfWhatItWrote: every file the installer
// writes, and every directory it writes into, gets SOURCE_DATE_EPOCH as
// its time (the layer's bytes then do not depend on when it was built);
// nothing else in the venv is touched (touching a file of the venv would
// copy it into the distribution's layer).
func TestWheelInstallFixesTheTimesOfWhatItWrote(t *testing.T) {
	t.Parallel()
	venv := hostVenv(t)
	const old = 1_000_000_000
	require.NoError(t, filepath.Walk(venv, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return unix.Lutimes(p, []unix.Timeval{{Sec: old}, {Sec: old}})
	}))
	before := mtimes(t, venv)
	whl, sum := testWheel(t, t.TempDir(), "good-1.0-py3-none-any.whl", distFiles("good", "1.0", map[string]string{
		"good/__init__.py":                    "X = 1\n",
		"good/sub/mod.py":                     "Y = 1\n",
		"good-1.0.data/scripts/good-tool":     "#!python\nprint('hi')\n",
		"good-1.0.data/data/share/good/x.txt": "x\n",
		"good-1.0.dist-info/entry_points.txt": "[console_scripts]\ngood = good:main\n",
	}))
	out, err := runInstaller(t, venv, "good", "1.0", sum, whl)
	require.NoError(t, err, out)

	site := sitePackages(t, venv)
	wrote := map[string]bool{}
	for p := range mtimes(t, venv) {
		if _, had := before[p]; !had {
			wrote[p] = true
		}
	}
	for _, p := range []string{
		filepath.Join(site, "good", "__pycache__", "__init__.cpython-"+strings.TrimPrefix(strings.ReplaceAll(filepath.Base(filepath.Dir(site)), ".", ""), "python")+".pyc"),
		filepath.Join(site, "good", "sub", "mod.py"),
		filepath.Join(venv, "bin", "good"),
		filepath.Join(venv, "share", "good", "x.txt"),
	} {
		assert.True(t, wrote[p], "%s was installed", p)
	}
	// The directories written into: each one from the venv's root down.
	for _, d := range []string{venv, filepath.Join(venv, "bin"), filepath.Join(venv, "lib"), filepath.Dir(site), site} {
		wrote[d] = true
	}
	for p, m := range mtimes(t, venv) {
		if wrote[p] {
			assert.Zero(t, m, "%s was written: its time is the epoch", p)
		} else {
			assert.EqualValues(t, old, m, "%s was not written: its time is untouched", p)
		}
	}
}

// TestWheelInstallLayerOfSeveralDistributions: distributions installed
// into one layer by one run may not replace each other's files either;
// the refusal names the one that wrote the file first.
func TestWheelInstallLayerOfSeveralDistributions(t *testing.T) {
	t.Parallel()
	venv := hostVenv(t)
	dir := t.TempDir()
	a, sumA := testWheel(t, dir, "a-1.0-py3-none-any.whl", distFiles("a", "1.0", map[string]string{"shared/__init__.py": "WHO = 'a'\n"}))
	b, sumB := testWheel(t, dir, "b-1.0-py3-none-any.whl", distFiles("b", "1.0", map[string]string{"shared/__init__.py": "WHO = 'b'\n"}))
	out, err := runInstaller(t, venv, "a", "1.0", sumA, a, "b", "1.0", sumB, b)
	require.Error(t, err, out)
	assert.Contains(t, out, "wheelinstall: b 1.0 (b-1.0-py3-none-any.whl): refused: it writes ")
	assert.Contains(t, out, "shared/__init__.py (from 'shared/__init__.py'), which a 1.0 already wrote: no file may be replaced")
	got, err := os.ReadFile(filepath.Join(sitePackages(t, venv), "shared", "__init__.py"))
	require.NoError(t, err)
	assert.Equal(t, "WHO = 'a'\n", string(got), "the first distribution's file stays")
}

// TestWheelInstallCompilesAsPyCompile: the .pyc written for a module is
// byte for byte what py_compile writes under SOURCE_DATE_EPOCH (a checked
// hash .pyc), and a .pyc or INSTALLER the wheel ships does not make the
// install fail: the wheel's .pyc is its own file, its INSTALLER is
// replaced by the installer's, as pip does.
func TestWheelInstallCompilesAsPyCompile(t *testing.T) {
	t.Parallel()
	venv := hostVenv(t)
	site := sitePackages(t, venv)
	tag := "cpython-" + strings.TrimPrefix(strings.ReplaceAll(filepath.Base(filepath.Dir(site)), ".", ""), "python")
	whl, sum := testWheel(t, t.TempDir(), "good-1.0-py3-none-any.whl", distFiles("good", "1.0", map[string]string{
		"good/__init__.py":                         "X = 1\n",
		"good/shipped.py":                          "Y = 1\n",
		"good/__pycache__/shipped." + tag + ".pyc": "not really bytecode",
		"good-1.0.dist-info/INSTALLER":             "someone else\n",
		"good/broken.py":                           "def (:\n",
	}))
	out, err := runInstaller(t, venv, "good", "1.0", sum, whl)
	require.NoError(t, err, out)

	got, err := os.ReadFile(filepath.Join(site, "good", "__pycache__", "__init__."+tag+".pyc"))
	require.NoError(t, err)
	ref := filepath.Join(t.TempDir(), "ref.pyc")
	cmd := exec.Command(filepath.Join(venv, "bin", "python"), "-I", "-c",
		"import py_compile, sys; py_compile.compile(sys.argv[1], cfile=sys.argv[2], doraise=True)",
		filepath.Join(site, "good", "__init__.py"), ref)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "SOURCE_DATE_EPOCH=0", "LANG=C.UTF-8"}
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", b)
	want, err := os.ReadFile(ref)
	require.NoError(t, err)
	assert.Equal(t, want, got)

	shipped, err := os.ReadFile(filepath.Join(site, "good", "__pycache__", "shipped."+tag+".pyc"))
	require.NoError(t, err)
	assert.Equal(t, "not really bytecode", string(shipped))
	installer, err := os.ReadFile(filepath.Join(site, "good-1.0.dist-info", "INSTALLER"))
	require.NoError(t, err)
	assert.Equal(t, "skillbuild\n", string(installer))
	_, err = os.Lstat(filepath.Join(site, "good", "__pycache__", "broken."+tag+".pyc"))
	assert.True(t, os.IsNotExist(err), "a module that does not compile gets no .pyc")
}
