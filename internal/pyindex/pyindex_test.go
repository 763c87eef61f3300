package pyindex

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// readZip returns the entries of a zip file in archive order.
func readZip(t *testing.T, path string) ([]string, map[string][]byte) {
	t.Helper()
	zr, err := zip.OpenReader(path)
	require.NoError(t, err)
	defer zr.Close()
	var order []string
	files := map[string][]byte{}
	for _, f := range zr.File {
		rc, err := f.Open()
		require.NoError(t, err)
		data, err := io.ReadAll(rc)
		require.NoError(t, err)
		rc.Close()
		order = append(order, f.Name)
		files[f.Name] = data
	}
	return order, files
}

// readTarGz returns the regular files of a .tar.gz and all entry names.
func readTarGz(t *testing.T, path string) ([]string, map[string][]byte) {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	gz, err := gzip.NewReader(f)
	require.NoError(t, err)
	tr := tar.NewReader(gz)
	var names []string
	files := map[string][]byte{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		names = append(names, h.Name)
		assert.Equal(t, 0, h.Uid, h.Name)
		assert.True(t, h.ModTime.Equal(FixedTime), h.Name)
		if h.Typeflag == tar.TypeReg {
			data, err := io.ReadAll(tr)
			require.NoError(t, err)
			files[h.Name] = data
		}
	}
	return names, files
}

func sha256Hex(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

func TestBuildWheel(t *testing.T) {
	t.Parallel()
	w := Wheel{
		Name:           "My.Pkg-Name",
		Version:        "1.2.0",
		Requires:       []string{"dep>=1.0", `other; python_version >= "3"`},
		RequiresPython: ">=3.8",
		ConsoleScripts: map[string]string{"my-tool": "my_pkg_name.cli:main"},
		Files: map[string]string{
			"my_pkg_name/cli.py":   "def main():\n    print('hi')\n",
			"nsroot/sub/mod.py":    "X = 1\n",
			"my_pkg_name_pth.pth":  "import os\n",
			"data, with comma.txt": "quoted in RECORD\n",
		},
	}
	dir1, dir2 := t.TempDir(), t.TempDir()
	p1, err := BuildWheel(dir1, w)
	require.NoError(t, err)
	p2, err := BuildWheel(dir2, w)
	require.NoError(t, err)
	assert.Equal(t, "my_pkg_name-1.2.0-py3-none-any.whl", filepath.Base(p1))
	assert.Equal(t, sha256Hex(t, p1), sha256Hex(t, p2), "same input must give the same bytes")

	order, files := readZip(t, p1)
	di := "my_pkg_name-1.2.0.dist-info/"
	assert.Equal(t, []string{
		"data, with comma.txt",
		"my_pkg_name/__init__.py",
		"my_pkg_name/cli.py",
		"my_pkg_name_pth.pth",
		"nsroot/sub/mod.py",
		di + "METADATA",
		di + "WHEEL",
		di + "entry_points.txt",
		di + "RECORD",
	}, order)
	assert.Equal(t, "__version__ = \"1.2.0\"\n", string(files["my_pkg_name/__init__.py"]))
	assert.Equal(t, "Metadata-Version: 2.1\nName: My.Pkg-Name\nVersion: 1.2.0\nRequires-Python: >=3.8\n"+
		"Requires-Dist: dep>=1.0\nRequires-Dist: other; python_version >= \"3\"\n", string(files[di+"METADATA"]))
	assert.Equal(t, "Wheel-Version: 1.0\nGenerator: skillbuild-pyindex\nRoot-Is-Purelib: true\nTag: py3-none-any\n", string(files[di+"WHEEL"]))
	assert.Equal(t, "[console_scripts]\nmy-tool = my_pkg_name.cli:main\n", string(files[di+"entry_points.txt"]))

	// RECORD lists every other file with a matching hash and size, and
	// itself with empty fields.
	rows, err := csv.NewReader(bytes.NewReader(files[di+"RECORD"])).ReadAll()
	require.NoError(t, err)
	require.Len(t, rows, len(order))
	for _, row := range rows {
		require.Len(t, row, 3)
		content, ok := files[row[0]]
		require.True(t, ok, "RECORD names a missing file %q", row[0])
		if row[0] == di+"RECORD" {
			assert.Equal(t, []string{di + "RECORD", "", ""}, row)
			continue
		}
		assert.Equal(t, recordHash(content), row[1], row[0])
		assert.NotContains(t, strings.TrimPrefix(row[1], "sha256="), "=", "no base64 padding")
		assert.Equal(t, len(content), atoi(t, row[2]), row[0])
	}
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	var n int
	for _, c := range s {
		require.True(t, c >= '0' && c <= '9', "size %q", s)
		n = n*10 + int(c-'0')
	}
	return n
}

func TestBuildWheelInvalid(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		w    Wheel
	}{
		{"empty name", Wheel{Version: "1.0"}},
		{"bad name", Wheel{Name: "-bad", Version: "1.0"}},
		{"bad version", Wheel{Name: "ok", Version: "1 0"}},
		{"escaping path", Wheel{Name: "ok", Version: "1.0", Files: map[string]string{"../x.py": ""}}},
		{"absolute path", Wheel{Name: "ok", Version: "1.0", Files: map[string]string{"/x.py": ""}}},
		{"dist-info file", Wheel{Name: "ok", Version: "1.0", Files: map[string]string{"ok-1.0.dist-info/RECORD": ""}}},
		{"package collision", Wheel{Name: "ok", Version: "1.0", Files: map[string]string{"ok/__init__.py": ""}}},
		{"bad package", Wheel{Name: "ok", Version: "1.0", Package: "not-ident"}},
		{"bad entry point", Wheel{Name: "ok", Version: "1.0", ConsoleScripts: map[string]string{"x": "nocolon"}}},
		{"multiline requirement", Wheel{Name: "ok", Version: "1.0", Requires: []string{"a\nVersion: 2"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			_, err := BuildWheel(dir, tc.w)
			require.Error(t, err)
			assert.ErrorIs(t, err, errdefs.ErrInvalidArgument)
			entries, err := os.ReadDir(dir)
			require.NoError(t, err)
			assert.Empty(t, entries, "nothing is written on invalid input")
		})
	}
}

func TestRecordHashIsUnpaddedURLSafe(t *testing.T) {
	t.Parallel()
	// sha256("") in urlsafe base64 without padding, as pip computes it.
	assert.Equal(t, "sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU", recordHash(nil))
}

func TestBuildSdist(t *testing.T) {
	t.Parallel()
	s := Sdist{
		Name:           "Probe.Pkg",
		Version:        "0.1",
		Prelude:        "X = 1",
		Requires:       []string{"dep>=1"},
		RequiresPython: ">=3.7",
		Files:          map[string]string{"pyproject.toml": "[build-system]\n"},
	}
	p1, err := BuildSdist(t.TempDir(), s)
	require.NoError(t, err)
	p2, err := BuildSdist(t.TempDir(), s)
	require.NoError(t, err)
	assert.Equal(t, "probe_pkg-0.1.tar.gz", filepath.Base(p1))
	assert.Equal(t, sha256Hex(t, p1), sha256Hex(t, p2), "same input must give the same bytes")

	names, files := readTarGz(t, p1)
	assert.Equal(t, []string{
		"probe_pkg-0.1/", "probe_pkg-0.1/PKG-INFO",
		"probe_pkg-0.1/probe_pkg/", "probe_pkg-0.1/probe_pkg/__init__.py",
		"probe_pkg-0.1/pyproject.toml", "probe_pkg-0.1/setup.py",
	}, names)
	assert.Equal(t, "Metadata-Version: 2.1\nName: Probe.Pkg\nVersion: 0.1\nRequires-Python: >=3.7\nRequires-Dist: dep>=1\n",
		string(files["probe_pkg-0.1/PKG-INFO"]))
	assert.Equal(t, "import setuptools\n\nX = 1\n\nsetuptools.setup(\n    name=\"Probe.Pkg\",\n    version=\"0.1\",\n"+
		"    packages=[\"probe_pkg\"],\n    install_requires=[\"dep>=1\"],\n    python_requires=\">=3.7\",\n)\n",
		string(files["probe_pkg-0.1/setup.py"]))

	_, err = BuildSdist(t.TempDir(), Sdist{Name: "x", Version: "1", Files: map[string]string{"setup.py": ""}})
	assert.ErrorIs(t, err, errdefs.ErrInvalidArgument)
}

func TestGenerateSet(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	paths, err := GenerateSet(dir, "bench", 12)
	require.NoError(t, err)
	require.Len(t, paths, 12)
	assert.Equal(t, "bench_000-1.0.0-py3-none-any.whl", filepath.Base(paths[0]))
	assert.Equal(t, "bench_011-1.0.0-py3-none-any.whl", filepath.Base(paths[11]))
	hashes := map[string]bool{}
	for _, p := range paths {
		hashes[sha256Hex(t, p)] = true
	}
	assert.Len(t, hashes, 12, "wheels are distinct")

	again, err := GenerateSet(t.TempDir(), "bench", 12)
	require.NoError(t, err)
	for i := range paths {
		assert.Equal(t, sha256Hex(t, paths[i]), sha256Hex(t, again[i]))
	}

	_, err = GenerateSet(dir, "bench", -1)
	assert.ErrorIs(t, err, errdefs.ErrInvalidArgument)
}

func TestCopyDebianWheels(t *testing.T) {
	t.Parallel()
	dst := t.TempDir()
	paths, err := CopyDebianWheels(dst)
	require.NoError(t, err, "Debian's wheels are a test dependency: apt-get install python3-pip-whl python3-setuptools-whl python3-wheel-whl")
	var names []string
	for _, p := range paths {
		names = append(names, filepath.Base(p))
		assert.Equal(t, sha256Hex(t, filepath.Join(DebianWheelsDir, filepath.Base(p))), sha256Hex(t, p))
	}
	assert.Contains(t, names, "pip-23.0.1-py3-none-any.whl")
	assert.Contains(t, names, "setuptools-66.1.1-py3-none-any.whl")
	assert.Contains(t, names, "wheel-0.38.4-py3-none-any.whl")

	_, err = copyWheels(t.TempDir(), dst)
	assert.ErrorIs(t, err, errdefs.ErrNotFound)
	assert.ErrorContains(t, err, "apt-get install python3-pip-whl")
}

// get fetches a URL without following redirects.
func get(t *testing.T, url string) (int, http.Header, string) {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header, string(body)
}

func TestServe(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	whl, err := BuildWheel(dir, Wheel{Name: "Foo_Bar", Version: "1.0", RequiresPython: ">=3.8,<4"})
	require.NoError(t, err)
	sd, err := BuildSdist(dir, Sdist{Name: "foo-bar", Version: "0.9"})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("ignored"), 0o644))

	s, err := Serve(dir, WithCoreMetadata())
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	base := "http://" + s.Addr()
	assert.Equal(t, base+"/simple", s.URL())
	plain, err := Serve(dir)
	require.NoError(t, err)
	t.Cleanup(func() { _ = plain.Close() })

	code, hdr, body := get(t, s.URL()+"/")
	require.Equal(t, http.StatusOK, code)
	assert.Equal(t, "text/html; charset=utf-8", hdr.Get("Content-Type"))
	assert.Contains(t, body, `<a href="foo-bar/">foo-bar</a>`)

	code, _, body = get(t, s.URL()+"/foo-bar/")
	require.Equal(t, http.StatusOK, code)
	meta, err := wheelMetadata(mustRead(t, whl))
	require.NoError(t, err)
	metaSum := sha256.Sum256(meta)
	assert.Contains(t, body, `<a href="../../files/foo_bar-1.0-py3-none-any.whl#sha256=`+sha256Hex(t, whl)+
		`" data-requires-python="&gt;=3.8,&lt;4" data-dist-info-metadata="sha256=`+hex.EncodeToString(metaSum[:])+
		`" data-core-metadata="sha256=`+hex.EncodeToString(metaSum[:])+`">foo_bar-1.0-py3-none-any.whl</a>`)
	assert.Contains(t, body, `<a href="../../files/foo_bar-0.9.tar.gz#sha256=`+sha256Hex(t, sd)+`">foo_bar-0.9.tar.gz</a>`,
		"no data-requires-python without Requires-Python")

	code, _, body = get(t, plain.URL()+"/foo-bar/")
	require.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, `<a href="../../files/foo_bar-1.0-py3-none-any.whl#sha256=`+sha256Hex(t, whl)+
		`" data-requires-python="&gt;=3.8,&lt;4">foo_bar-1.0-py3-none-any.whl</a>`, "plain PEP 503 without WithCoreMetadata")
	code, _, _ = get(t, "http://"+plain.Addr()+"/files/foo_bar-1.0-py3-none-any.whl.metadata")
	assert.Equal(t, http.StatusNotFound, code)

	for _, tc := range []struct{ path, location string }{
		{"/simple/Foo_Bar/", "/simple/foo-bar/"},
		{"/simple/foo.bar/", "/simple/foo-bar/"},
		{"/simple/foo-bar", "/simple/foo-bar/"},
		{"/simple", "/simple/"},
	} {
		code, hdr, _ := get(t, base+tc.path)
		assert.Equal(t, http.StatusMovedPermanently, code, tc.path)
		assert.Equal(t, tc.location, hdr.Get("Location"), tc.path)
	}
	for _, p := range []string{"/simple/nope/", "/files/notes.txt", "/files/nope.whl", "/files/..%2Fx.whl", "/other"} {
		code, _, _ := get(t, base+p)
		assert.Equal(t, http.StatusNotFound, code, p)
	}

	code, _, body = get(t, base+"/files/foo_bar-1.0-py3-none-any.whl")
	require.Equal(t, http.StatusOK, code)
	assert.Equal(t, string(mustRead(t, whl)), body)
	code, _, body = get(t, base+"/files/foo_bar-1.0-py3-none-any.whl.metadata")
	require.Equal(t, http.StatusOK, code)
	assert.Equal(t, string(meta), body)

	// Files added after the server started are served.
	_, err = BuildWheel(dir, Wheel{Name: "late", Version: "2.0"})
	require.NoError(t, err)
	_, _, body = get(t, s.URL()+"/")
	assert.Contains(t, body, `<a href="late/">late</a>`)

	reqs := s.Requests()
	assert.Equal(t, "/simple/", reqs[0])
	assert.Equal(t, "/simple/", reqs[len(reqs)-1])
	assert.Equal(t, []string{"foo_bar-1.0-py3-none-any.whl"}, s.Downloads(), "metadata fetches are not downloads")
	s.ResetRequests()
	assert.Empty(t, s.Requests())
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	return data
}

// python returns Debian's python3 (which has pip from python3-pip), or the
// python3 on PATH.
func python(t *testing.T) string {
	t.Helper()
	py := "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		py, err = exec.LookPath("python3")
		require.NoError(t, err, "the pip tests need python3 with pip (apt-get install python3-pip)")
	}
	return py
}

// run runs a command with a clean environment (PATH and a private HOME
// only: the host's PIP_* variables must not reach pip) and returns stdout.
func run(t *testing.T, home string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home}
	cmd.Dir = home
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	require.NoError(t, err, "%s %s\nstdout:\n%s\nstderr:\n%s", name, strings.Join(args, " "), stdout.String(), stderr.String())
	return stdout.String()
}

// pip runs `python3 -m pip` with the version check off (it would query the
// index for pip).
func pip(t *testing.T, home string, args ...string) string {
	t.Helper()
	return run(t, home, python(t), append([]string{"-m", "pip", "--disable-pip-version-check", "--no-input"}, args...)...)
}

type pipReport struct {
	Install []struct {
		Download struct {
			URL     string `json:"url"`
			Archive struct {
				Hashes map[string]string `json:"hashes"`
			} `json:"archive_info"`
		} `json:"download_info"`
		Metadata struct {
			Name    string `json:"name"`
			Version string `json:"version"`
		} `json:"metadata"`
	} `json:"install"`
}

func (r pipReport) resolved() []string {
	var out []string
	for _, it := range r.Install {
		out = append(out, Normalize(it.Metadata.Name)+"=="+it.Metadata.Version)
	}
	sort.Strings(out)
	return out
}

func resolve(t *testing.T, home string, s *Server, args ...string) pipReport {
	t.Helper()
	out := pip(t, home, append([]string{"install", "--dry-run", "--ignore-installed", "--quiet", "--report", "-",
		"--index-url", s.URL()}, args...)...)
	var rep pipReport
	require.NoError(t, json.Unmarshal([]byte(out), &rep), out)
	return rep
}

func TestPipDownload(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		opts []Opt
		dist string // Name in METADATA
		req  string // as asked for
	}{
		{name: "plain", dist: "Down.Load", req: "down-load==3.1"},
		// pip 23.0 wants PEP 658 metadata to spell the name as asked.
		{name: "core metadata", opts: []Opt{WithCoreMetadata()}, dist: "down-load", req: "down-load==3.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir, home := t.TempDir(), t.TempDir()
			whl, err := BuildWheel(dir, Wheel{Name: tc.dist, Version: "3.1"})
			require.NoError(t, err)
			s, err := Serve(dir, tc.opts...)
			require.NoError(t, err)
			t.Cleanup(func() { _ = s.Close() })

			dest := filepath.Join(home, "dl")
			pip(t, home, "download", "--no-deps", "--only-binary=:all:", "--index-url", s.URL(), "-d", dest, tc.req)
			assert.Equal(t, sha256Hex(t, whl), sha256Hex(t, filepath.Join(dest, filepath.Base(whl))))
			assert.Contains(t, s.Downloads(), filepath.Base(whl))
			assert.Contains(t, s.Requests(), "/simple/down-load/")
		})
	}
}

func TestPipResolvesTransitiveDependency(t *testing.T) {
	t.Parallel()
	wheels := []string{"app-1.0-py3-none-any.whl", "lib_core-1.0-py3-none-any.whl", "leaf-0.5-py3-none-any.whl"}
	for _, tc := range []struct {
		name         string
		opts         []Opt
		libReq       string
		wantMetadata bool
	}{
		{name: "plain", libReq: "Lib_Core>=1.0"},
		// pip reads dependencies from the PEP 658 metadata files. (pip
		// 23.0 still downloads every wheel afterwards, even with --dry-run,
		// so the test does not assert that nothing was downloaded.)
		{name: "core metadata", opts: []Opt{WithCoreMetadata()}, libReq: "lib-core>=1.0", wantMetadata: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir, home := t.TempDir(), t.TempDir()
			for _, w := range []Wheel{
				{Name: "app", Version: "1.0", Requires: []string{tc.libReq}},
				{Name: "lib-core", Version: "1.0", Requires: []string{"leaf"}},
				// Newer, but pip must skip it: no Python satisfies Requires-Python.
				{Name: "lib-core", Version: "2.0", RequiresPython: ">=99"},
				{Name: "leaf", Version: "0.5"},
				{Name: "unrelated", Version: "1.0"},
			} {
				_, err := BuildWheel(dir, w)
				require.NoError(t, err)
			}
			s, err := Serve(dir, tc.opts...)
			require.NoError(t, err)
			t.Cleanup(func() { _ = s.Close() })

			rep := resolve(t, home, s, "app")
			assert.Equal(t, []string{"app==1.0", "leaf==0.5", "lib-core==1.0"}, rep.resolved())
			for _, it := range rep.Install {
				assert.True(t, strings.HasPrefix(it.Download.URL, "http://"+s.Addr()+"/files/"), it.Download.URL)
				assert.Len(t, it.Download.Archive.Hashes["sha256"], 64, "pip reports the index's sha256")
			}
			reqs := s.Requests()
			for _, w := range wheels {
				if tc.wantMetadata {
					assert.Contains(t, reqs, "/files/"+w+".metadata")
				} else {
					assert.NotContains(t, reqs, "/files/"+w+".metadata")
					assert.Contains(t, s.Downloads(), w, "pip downloads a wheel to read its dependencies")
				}
			}
			assert.Subset(t, wheels, s.Downloads(), reqs)
			assert.NotContains(t, reqs, "/simple/unrelated/")
			assert.NotContains(t, s.Requests(), "/files/lib_core-2.0-py3-none-any.whl")
		})
	}
}

func TestPipInstallsWheelIntoVenv(t *testing.T) {
	t.Parallel()
	dir, home := t.TempDir(), t.TempDir()
	whl, err := BuildWheel(dir, Wheel{
		Name:           "hello-tool",
		Version:        "0.3.0",
		ConsoleScripts: map[string]string{"hello": "hello_tool.cli:main"},
		Files: map[string]string{
			"hello_tool/cli.py": "import sys\ndef main():\n    print('hello from', sys.argv[0].rsplit('/', 1)[-1])\n",
			// A namespace package (no __init__.py) and a .pth that adds a dir.
			"nsfix/part/mod.py":   "VALUE = 42\n",
			"hello_tool.pth":      "extra_dir\n",
			"extra_dir/viapth.py": "OK = True\n",
		},
	})
	require.NoError(t, err)

	venv := filepath.Join(home, "venv")
	run(t, home, python(t), "-m", "venv", "--without-pip", venv)
	pip(t, home, "--python", filepath.Join(venv, "bin", "python"), "install", "--no-index", "--no-deps", whl)

	out := run(t, home, filepath.Join(venv, "bin", "python"), "-c",
		"import hello_tool, nsfix.part.mod, viapth; print(hello_tool.__version__, nsfix.part.mod.VALUE, viapth.OK)")
	assert.Equal(t, "0.3.0 42 True\n", out)
	assert.Equal(t, "hello from hello\n", run(t, home, filepath.Join(venv, "bin", "hello")))
}

func TestPipBuildsSdistFromIndex(t *testing.T) {
	t.Parallel()
	dir, home := t.TempDir(), t.TempDir()
	s, err := Serve(dir)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	// pyproject.toml makes pip build in isolation, installing setuptools
	// and wheel from this index, as it does in a venv without them.
	_, err = CopyDebianWheels(dir)
	require.NoError(t, err)
	probeOut := filepath.Join(home, "probe.txt")
	_, portNum := splitPort(t, s.Addr())
	sd, err := BuildSdist(dir, Sdist{
		Name:    "probe-pkg",
		Version: "1.0",
		Prelude: ConnectProbe("127.0.0.1", portNum, probeOut),
		Files: map[string]string{"pyproject.toml": "[build-system]\nrequires = [\"setuptools>=40.8.0\", \"wheel\"]\n" +
			"build-backend = \"setuptools.build_meta\"\n"},
	})
	require.NoError(t, err)

	rep := resolve(t, home, s, "--no-binary=probe-pkg", "probe-pkg")
	assert.Equal(t, []string{"probe-pkg==1.0"}, rep.resolved())
	assert.Equal(t, "connected\n", string(mustRead(t, probeOut)), "setup.py ran and reached the index port")
	assert.Contains(t, s.Downloads(), filepath.Base(sd))
	assert.Contains(t, s.Requests(), "/simple/setuptools/", "build isolation fetched its backend from the index")
}

func splitPort(t *testing.T, addr string) (string, int) {
	t.Helper()
	i := strings.LastIndexByte(addr, ':')
	require.Positive(t, i)
	return addr[:i], atoi(t, addr[i+1:])
}

func TestConnectProbe(t *testing.T) {
	t.Parallel()
	s, err := Serve(t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	_, open := splitPort(t, s.Addr())
	// A port that was free a moment ago: nothing listens on it.
	closedSrv, err := Serve(t.TempDir())
	require.NoError(t, err)
	_, closed := splitPort(t, closedSrv.Addr())
	require.NoError(t, closedSrv.Close())

	for _, tc := range []struct {
		name string
		port int
		want string
	}{
		{"listening", open, "connected\n"},
		{"closed", closed, "failed: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			home := t.TempDir()
			out := filepath.Join(home, "probe.txt")
			run(t, home, python(t), "-c", ConnectProbe("127.0.0.1", tc.port, out))
			assert.True(t, strings.HasPrefix(string(mustRead(t, out)), tc.want), string(mustRead(t, out)))
		})
	}
}

// TestServeYankedJSONAndTags: yanked files are announced in both page
// formats, JSON goes only to clients that ask for it, and wheels carry
// the tag and build tag they were built with.
func TestServeYankedJSONAndTags(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	plat, err := BuildWheel(dir, Wheel{Name: "tagged", Version: "1.0", Tag: "cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64", Build: "2"})
	require.NoError(t, err)
	assert.Equal(t, "tagged-1.0-2-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", filepath.Base(plat))
	_, files := readZip(t, plat)
	assert.Equal(t, "Wheel-Version: 1.0\nGenerator: skillbuild-pyindex\nRoot-Is-Purelib: true\n"+
		"Tag: cp311-cp311-manylinux_2_17_x86_64\nTag: cp311-cp311-manylinux2014_x86_64\nBuild: 2\n", string(files["tagged-1.0.dist-info/WHEEL"]))
	_, err = BuildWheel(dir, Wheel{Name: "tagged", Version: "1.0", Tag: "py3-none"})
	assert.ErrorIs(t, err, errdefs.ErrInvalidArgument)
	old, err := BuildWheel(dir, Wheel{Name: "tagged", Version: "0.9", MetadataName: "Tagged"})
	require.NoError(t, err)
	_, files = readZip(t, old)
	assert.Contains(t, string(files["tagged-0.9.dist-info/METADATA"]), "\nName: Tagged\n")

	s, err := Serve(dir, WithJSON(), WithYanked(map[string]string{filepath.Base(old): "broken"}))
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	code, _, body := get(t, s.URL()+"/tagged/")
	require.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, `tagged-0.9-py3-none-any.whl#sha256=`+sha256Hex(t, old)+`" data-yanked="broken">`)

	req, err := http.NewRequest(http.MethodGet, s.URL()+"/tagged/", nil)
	require.NoError(t, err)
	req.Header.Set("Accept", "application/vnd.pypi.simple.v1+json, text/html; q=0.01")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, "application/vnd.pypi.simple.v1+json", resp.Header.Get("Content-Type"))
	var page struct {
		Files []map[string]any `json:"files"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&page))
	require.Len(t, page.Files, 2)
	byName := map[string]map[string]any{}
	for _, f := range page.Files {
		byName[f["filename"].(string)] = f
	}
	assert.Equal(t, "broken", byName[filepath.Base(old)]["yanked"])
	assert.Nil(t, byName[filepath.Base(plat)]["yanked"])
	assert.Equal(t, map[string]any{"sha256": sha256Hex(t, plat)}, byName[filepath.Base(plat)]["hashes"])
}
