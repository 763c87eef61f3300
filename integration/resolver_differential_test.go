package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/skillbuild/skillbuild/internal/pyindex"
	"github.com/skillbuild/skillbuild/lock"
	"github.com/skillbuild/skillbuild/resolver"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// pipDriver runs pip's main once per case, each in a fork of one
// interpreter that imported pip once (the same pip, arguments and
// environment as the resolve step; only the interpreter start is shared).
// It reads one JSON case per line ({"id", "args", "log"}) and prints
// {"id", "code"} when pip has finished.
const pipDriver = `import json, os, sys
from pip._internal.cli.main import main as pipmain
import pip._internal.commands.install, pip._internal.resolution.resolvelib.resolver
import pip._internal.operations.prepare, pip._internal.index.package_finder, pip._internal.network.session
for line in sys.stdin:
    case = json.loads(line)
    pid = os.fork()
    if pid == 0:
        fd = os.open(case["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        try:
            code = pipmain(case["args"])
        except SystemExit as e:
            code = e.code
        except BaseException:
            import traceback
            traceback.print_exc()
            code = 99
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code if isinstance(code, int) else 1)
    _, status = os.waitpid(pid, 0)
    print(json.dumps({"id": case["id"], "code": os.waitstatus_to_exitcode(status)}), flush=True)
`

// stepEnv is the resolve step's environment (llb's stepEnv).
var stepEnv = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/tmp", "LANG=C.UTF-8",
	"PIP_CONFIG_FILE=/dev/null", "PIP_DISABLE_PIP_VERSION_CHECK=1", "PIP_NO_INPUT=1", "PIP_ROOT_USER_ACTION=ignore",
	"PYTHONNOUSERSITE=1", "PYTHONDONTWRITEBYTECODE=1", "SOURCE_DATE_EPOCH=0"}

// baseRoot is an overlay of the base's root filesystem that pip runs in
// (chroot), with the find-links directory where the step would mount it.
type baseRoot struct {
	dir, merged string
}

const (
	diffFindLinks = "/run/skillbuild/find-links/0"
	diffInput     = "/run/skillbuild/in"
)

func mountBaseRoot(t *testing.T, fl string) *baseRoot {
	t.Helper()
	dir, err := os.MkdirTemp(env.dir, "diffroot-")
	require.NoError(t, err)
	b := &baseRoot{dir: dir, merged: filepath.Join(dir, "merged")}
	for _, d := range []string{"upper", "work", "merged"} {
		require.NoError(t, os.Mkdir(filepath.Join(dir, d), 0o755))
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", env.rootfs, filepath.Join(dir, "upper"), filepath.Join(dir, "work"))
	require.NoError(t, syscall.Mount("overlay", b.merged, "overlay", 0, opts))
	t.Cleanup(func() {
		if err := syscall.Unmount(b.merged, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", b.merged, err)
		}
		os.RemoveAll(dir)
	})
	for _, d := range []string{diffFindLinks, diffInput, "/tmp/out"} {
		require.NoError(t, os.MkdirAll(b.path(d), 0o755))
	}
	ents, err := os.ReadDir(fl)
	require.NoError(t, err)
	for _, e := range ents {
		data, err := os.ReadFile(filepath.Join(fl, e.Name()))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(b.path(diffFindLinks), e.Name()), data, 0o644))
	}
	return b
}

func (b *baseRoot) path(p string) string { return filepath.Join(b.merged, p) }

// command runs argv in the base root with the step's environment.
func (b *baseRoot) command(ctx context.Context, argv ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "/usr/sbin/chroot", append([]string{b.merged}, argv...)...)
	cmd.Env = stepEnv
	cmd.Dir = "/"
	return cmd
}

// diffServers are the indexes of the corpus's sources.
type diffServers struct {
	html, pep658, json, second *pyindex.Server
}

func (s *diffServers) indexes(source string) []string {
	switch source {
	case srcPEP658:
		return []string{s.pep658.URL()}
	case srcJSON:
		return []string{s.json.URL()}
	case srcExtra:
		return []string{s.html.URL(), s.second.URL()}
	case srcOnlyLinks:
		return nil
	}
	return []string{s.html.URL()}
}

func usesFindLinks(source string) bool { return source == srcFindLinks || source == srcOnlyLinks }

// pipArgs are the resolve step's pip arguments (llb.Resolve) for c.
func (s *diffServers) pipArgs(c diffCase) []string {
	args := []string{"install", "--no-input", "--disable-pip-version-check", "--no-cache-dir", "--dry-run", "--ignore-installed",
		"--report", "/tmp/out/" + c.id + ".json", "--retries", "1", "--timeout", "30", "-r", diffInput + "/" + c.id + ".txt", "--only-binary=:all:"}
	ix := s.indexes(c.source)
	switch {
	case len(ix) > 0:
		args = append(args, "--index-url", ix[0])
		for _, u := range ix[1:] {
			args = append(args, "--extra-index-url", u)
		}
	default:
		args = append(args, "--no-index")
	}
	if usesFindLinks(c.source) {
		args = append(args, "--find-links", diffFindLinks)
	}
	return args
}

// pipOutcome is what pip did with a case.
type pipOutcome struct {
	code int
	lock lock.Lock
	log  string
}

// runPip resolves every case with the base's pip, two drivers at once.
func runPip(t *testing.T, b *baseRoot, s *diffServers, cases []diffCase) map[string]pipOutcome {
	t.Helper()
	require.NoError(t, os.WriteFile(b.path("/tmp/pipdriver.py"), []byte(pipDriver), 0o644))
	for _, c := range cases {
		require.NoError(t, os.WriteFile(b.path(diffInput+"/"+c.id+".txt"), []byte(strings.Join(c.lines, "\n")+"\n"), 0o644))
	}
	const workers = 2
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	codes := map[string]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := b.command(ctx, "python3", "-I", "/tmp/pipdriver.py")
			in, err := cmd.StdinPipe()
			if err != nil {
				errs <- err
				return
			}
			out, err := cmd.StdoutPipe()
			if err != nil {
				errs <- err
				return
			}
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				errs <- err
				return
			}
			go func() {
				enc := json.NewEncoder(in)
				for i, c := range cases {
					if i%workers != w {
						continue
					}
					enc.Encode(map[string]any{"id": c.id, "args": s.pipArgs(c), "log": "/tmp/out/" + c.id + ".log"}) //nolint:errcheck
				}
				in.Close()
			}()
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				var r struct {
					ID   string `json:"id"`
					Code int    `json:"code"`
				}
				if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
					errs <- err
					return
				}
				mu.Lock()
				codes[r.ID] = r.Code
				mu.Unlock()
			}
			if err := cmd.Wait(); err != nil {
				errs <- fmt.Errorf("pip driver: %v: %s", err, stderr.String())
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	outcomes := map[string]pipOutcome{}
	for _, c := range cases {
		code, ok := codes[c.id]
		require.True(t, ok, "pip did not report case %s", c.id)
		logb, err := os.ReadFile(b.path("/tmp/out/" + c.id + ".log"))
		require.NoError(t, err)
		o := pipOutcome{code: code, log: string(logb)}
		if code == 0 {
			rep, err := os.ReadFile(b.path("/tmp/out/" + c.id + ".json"))
			require.NoError(t, err, "case %s", c.id)
			o.lock, err = lock.ParseReport(rep)
			require.NoError(t, err, "case %s", c.id)
		}
		outcomes[c.id] = o
	}
	return outcomes
}

var (
	reDiffNoMatch  = regexp.MustCompile(`Could not find a version that satisfies the requirement (.+?) \(from versions: ([^)]*)\)`)
	reDiffConflict = regexp.MustCompile(`Cannot install (.+) because these package versions have conflicting dependencies`)
	reDiffCause    = regexp.MustCompile(`(?m)^\s+(\S+ \S+ depends on .+|The user requested .+)$`)
	reDiffPython   = regexp.MustCompile(`(?m)^ERROR: (Package '.+' requires a different Python: .+|Packages require a different Python\. .+)$`)
)

// TestResolverDifferential: the builtin resolver gives pip's lock for
// every requirement set of the corpus (names, versions, files, URLs,
// hashes, requested, metadata), and refuses exactly what pip refuses,
// with pip's explanation. pip is the base's own, run as the resolve step
// runs it.
func TestResolverDifferential(t *testing.T) {
	start := time.Now()
	dir := t.TempDir()
	mainDir, secondDir, flDir := buildUniverse(t, dir)
	serve := func(d string, opts ...pyindex.Opt) *pyindex.Server {
		s, err := pyindex.Serve(d, opts...)
		require.NoError(t, err)
		t.Cleanup(func() { s.Close() })
		return s
	}
	srv := &diffServers{
		html:   serve(mainDir, pyindex.WithYanked(yanked)),
		pep658: serve(mainDir, pyindex.WithYanked(yanked), pyindex.WithCoreMetadata()),
		json:   serve(mainDir, pyindex.WithYanked(yanked), pyindex.WithCoreMetadata(), pyindex.WithJSON()),
		second: serve(secondDir),
	}
	root := mountBaseRoot(t, flDir)
	envOut, err := root.command(context.Background(), "python3", "-I", "-c", resolver.EnvironmentScript).Output()
	require.NoError(t, err)
	pyEnv, err := resolver.ParseEnvironment(envOut)
	require.NoError(t, err)
	// The environment script reads the tags without most of pip: they
	// must be the ones pip's own TargetPython gives.
	tagsOut, err := root.command(context.Background(), "python3", "-I", "-c",
		"import json\nfrom pip._internal.models.target_python import TargetPython\nprint(json.dumps([str(t) for t in TargetPython().get_tags()]))").Output()
	require.NoError(t, err)
	var pipTags []string
	require.NoError(t, json.Unmarshal(tagsOut, &pipTags))
	require.Equal(t, pipTags, pyEnv.Tags)

	cases := corpus(t, 220, 1)
	require.GreaterOrEqual(t, len(cases), 200)
	pipStart := time.Now()
	pip := runPip(t, root, srv, cases)
	pipTime := time.Since(pipStart)

	builtinStart := time.Now()
	classes := map[string]int{}
	for _, c := range cases {
		o := pip[c.id]
		what := fmt.Sprintf("case %s (%s): %s", c.id, c.source, strings.Join(c.lines, " | "))
		wheels := t.TempDir()
		opts := []resolver.Opt{resolver.WithEnvironment(pyEnv), resolver.WithTransport(http.DefaultTransport), resolver.WithWheelDir(wheels),
			resolver.WithRequirementsFile(diffInput + "/" + c.id + ".txt"), resolver.WithIndexURLs(srv.indexes(c.source)...)}
		if usesFindLinks(c.source) {
			opts = append(opts, resolver.WithFindLinks(flDir, diffFindLinks))
		}
		r, err := resolver.New(opts...)
		require.NoError(t, err)
		res, err := r.Resolve(context.Background(), c.lines, nil)
		var conflict *resolver.ConflictError
		var noMatch *resolver.NoMatchError
		var python *resolver.PythonError
		switch {
		case errors.Is(err, resolver.ErrUnsupported):
			classes["left to pip"]++
			assert.True(t, c.fallback, "%s: the builtin resolver left it to pip: %v", what, err)
		case c.mustFallback:
			t.Errorf("%s: expected the builtin resolver to leave it to pip, got %v", what, err)
		case err == nil:
			if !assert.Equal(t, 0, o.code, "%s: the builtin resolver locked it, pip refused it:\n%s", what, tailString(o.log, 1500)) {
				continue
			}
			classes["same lock"]++
			assert.Equal(t, normalizeLock(o.lock), normalizeLock(res.Lock), "%s: the locks differ", what)
		case errors.As(err, &conflict):
			classes["both refuse: conflict"]++
			if !assert.NotEqual(t, 0, o.code, "%s: pip locked it, the builtin resolver refused: %v", what, err) {
				continue
			}
			m := reDiffConflict.FindStringSubmatch(o.log)
			if assert.NotNil(t, m, "%s: pip did not report a conflict:\n%s", what, tailString(o.log, 1500)) {
				assert.Equal(t, m[1], textJoinPip(conflict.Triggers), what)
			}
			var causes []string
			for _, cm := range reDiffCause.FindAllStringSubmatch(o.log, -1) {
				causes = append(causes, strings.TrimSpace(cm[1]))
			}
			assert.Equal(t, causes, conflict.Causes, what)
		case errors.As(err, &noMatch):
			classes["both refuse: no matching version"]++
			if !assert.NotEqual(t, 0, o.code, "%s: pip locked it, the builtin resolver refused: %v", what, err) {
				continue
			}
			m := reDiffNoMatch.FindStringSubmatch(o.log)
			if assert.NotNil(t, m, "%s: pip did not report a missing version (builtin: %v):\n%s", what, err, tailString(o.log, 1500)) {
				assert.Equal(t, m[1], noMatch.Requirement, what)
				want := strings.Join(noMatch.Versions, ", ")
				if want == "" {
					want = "none"
				}
				assert.Equal(t, m[2], want, what)
			}
		case errors.As(err, &python):
			classes["both refuse: another Python"]++
			if !assert.NotEqual(t, 0, o.code, "%s: pip locked it, the builtin resolver refused: %v", what, err) {
				continue
			}
			m := reDiffPython.FindStringSubmatch(o.log)
			if assert.NotNil(t, m, "%s: pip did not report a Python conflict:\n%s", what, tailString(o.log, 1500)) {
				assert.Equal(t, m[1], python.Message, what)
			}
		default:
			t.Errorf("%s: %v", what, err)
		}
	}
	var summary []string
	for k, v := range classes {
		summary = append(summary, fmt.Sprintf("%s: %d", k, v))
	}
	sort.Strings(summary)
	t.Logf("%d cases (%s); pip %s, builtin %s, whole test %s", len(cases), strings.Join(summary, ", "),
		pipTime.Round(time.Millisecond), time.Since(builtinStart).Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}

// normalizeLock drops the differences a JSON round trip has no opinion on
// (empty versus absent lists).
func normalizeLock(l lock.Lock) lock.Lock {
	out := lock.Lock{}
	for _, d := range l {
		if d.Meta != nil {
			m := *d.Meta
			if len(m.RequiresDist) == 0 {
				m.RequiresDist = nil
			}
			if len(m.ProvidesExtra) == 0 {
				m.ProvidesExtra = nil
			}
			d.Meta = &m
		}
		out = append(out, d)
	}
	return out
}

func textJoinPip(parts []string) string {
	if len(parts) == 1 {
		return parts[0]
	}
	return strings.Join(parts[:len(parts)-1], ", ") + " and " + parts[len(parts)-1]
}
