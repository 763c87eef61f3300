package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	sbllb "github.com/skillbuild/skillbuild/llb"

	"github.com/containerd/errdefs"
	bkclient "github.com/moby/buildkit/client"
	digest "github.com/opencontainers/go-digest"
	"github.com/skillbuild/skillbuild/config"
	"github.com/skillbuild/skillbuild/internal/indexproxy"
	"github.com/skillbuild/skillbuild/lock"
)

// StepError is a failed build step, explained: which step, what went
// wrong, on which requirement, and what to do about it.
type StepError struct {
	Step   string   // the step's name, e.g. "resolve requirements"
	Reason string   // what went wrong, in one sentence
	Hint   string   // what to do
	Log    []string // the step's last output lines
	Err    error    // the underlying error
}

func (e *StepError) Error() string {
	msg := e.Step + ": " + e.Reason
	if e.Hint != "" {
		msg += "; " + e.Hint
	}
	return msg
}

func (e *StepError) Unwrap() error { return e.Err }

// collector keeps what the build's progress says about each vertex.
type collector struct {
	mu       sync.Mutex
	order    []digest.Digest
	vertices map[digest.Digest]*vertexInfo
}

type vertexInfo struct {
	name      string
	cached    bool
	completed bool
	started   bool
	canceled  bool // its last completion was a cancellation
	err       string
	logs      []byte
}

func newCollector() *collector { return &collector{vertices: map[digest.Digest]*vertexInfo{}} }

func (c *collector) get(d digest.Digest) *vertexInfo {
	v, ok := c.vertices[d]
	if !ok {
		v = &vertexInfo{}
		c.vertices[d] = v
		c.order = append(c.order, d)
	}
	return v
}

func (c *collector) add(st *bkclient.SolveStatus) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, v := range st.Vertexes {
		vi := c.get(v.Digest)
		vi.name = v.Name
		vi.cached = vi.cached || v.Cached
		vi.started = vi.started || v.Started != nil
		vi.completed = vi.completed || v.Completed != nil
		if v.Completed != nil {
			vi.canceled = isCanceled(v.Error)
		}
		if v.Error != "" {
			vi.err = v.Error
		}
	}
	for _, l := range st.Logs {
		vi := c.get(l.Vertex)
		if len(vi.logs) < 1<<20 {
			vi.logs = append(vi.logs, l.Data...)
		}
	}
}

// counts returns how many exec steps were answered from cache, and the
// names of those that ran.
func (c *collector) counts() (cached int, executed []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	executed = []string{}
	for _, d := range c.order {
		v := c.vertices[d]
		if !isStep(v.name) || !v.completed || v.canceled {
			continue
		}
		if v.cached {
			cached++
		} else {
			executed = append(executed, v.name)
		}
	}
	sort.Strings(executed)
	return cached, executed
}

// isCanceled tells a vertex that BuildKit started and then dropped (as
// progressui's CANCELED does): one answered from a cache found meanwhile,
// e.g. the registry cache, or one stopped by another step's failure. It
// produced nothing, so it did not run.
func isCanceled(err string) bool {
	return strings.HasSuffix(err, context.Canceled.Error())
}

// isStep tells exec steps (which run code) from sources and file ops.
func isStep(name string) bool {
	for _, p := range sbllb.Steps {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

func (c *collector) logLines() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, d := range c.order {
		v := c.vertices[d]
		for _, l := range strings.Split(strings.TrimRight(string(v.logs), "\n"), "\n") {
			if l != "" {
				out = append(out, v.name+": "+l)
			}
		}
	}
	return out
}

// failed returns the first vertex that reported an error.
func (c *collector) failed() *vertexInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, d := range c.order {
		if v := c.vertices[d]; v.err != "" && !strings.Contains(v.err, "context canceled") {
			return v
		}
	}
	for _, d := range c.order {
		if v := c.vertices[d]; v.err != "" {
			return v
		}
	}
	return nil
}

var (
	reNoVersion = regexp.MustCompile(`Could not find a version that satisfies the requirement (\S+) \(from versions: ([^)]*)\)`)
	reConflict  = regexp.MustCompile(`Cannot install (.+) because these package versions have conflicting dependencies`)
	// reInputLine is how pip names a line of the resolve step's
	// requirements file.
	reInputLine = regexp.MustCompile(`-r \S+ \(line (\d+)\)`)
	reCaused    = regexp.MustCompile(`(?m)^\s+(\S+ \S+ depends on .+|The user requested .+)$`)
	reExit      = regexp.MustCompile(`exit code: (\d+)`)
	// rePython is pip's UnsupportedPythonVersion.
	rePython = regexp.MustCompile(`(?m)^ERROR: (Package '.+' requires a different Python: .+|Packages require a different Python\. .+)$`)
)

// explain turns a failed solve into an actionable error.
func explain(ctx context.Context, err error, s config.Skill, index []string, col *collector) error {
	if errors.Is(context.Cause(ctx), errBuildTimeout) {
		return &StepError{Step: "build", Reason: fmt.Sprintf("exceeded the build timeout of %s", s.Build.Timeout),
			Hint: "raise it with --build-timeout (or build.timeout in skill.yaml)", Err: err}
	}
	if ctx.Err() != nil {
		return fmt.Errorf("build interrupted: %w", ctx.Err())
	}
	v := col.failed()
	if v == nil {
		return fmt.Errorf("build failed: %w", err)
	}
	log := string(v.logs)
	se := &StepError{Step: v.name, Log: tail(log, 20), Err: err}
	code := ""
	if m := reExit.FindStringSubmatch(v.err); m != nil {
		code = m[1]
	}
	switch {
	case code == "137" || strings.Contains(log, "exit code: -9") || strings.Contains(log, "Killed"):
		se.Reason = fmt.Sprintf("was killed (exit code 137): it exceeded the build memory limit of %s", config.FormatSize(s.Build.MemoryBytes))
		se.Hint = "raise it with --build-memory (or build.memory in skill.yaml)"
	case strings.HasPrefix(v.name, sbllb.StepVenv):
		se.Reason = "the base image has no working `python3 -m venv`"
		se.Hint = "use a base with python3 and its venv module (Debian: python3-venv), e.g. `skillbuild base import --rootfs DIR --name REF`"
	case strings.HasPrefix(v.name, sbllb.StepResolve):
		explainResolve(ctx, se, log, s, index)
	case strings.Contains(log, "wheelinstall: ") && strings.Contains(log, "refused: "):
		_, refused, _ := strings.Cut(log[strings.Index(log, "wheelinstall: "):], "wheelinstall: ")
		explainRefusedWheel(se, firstLine(refused), s)
	default:
		se.Reason = "failed: " + firstLine(v.err)
		if len(se.Log) > 0 {
			se.Reason += ": " + lastErrorLine(log)
		}
	}
	return se
}

// reRefusedWheel is wheelinstall.py's refusal: "NAME VERSION (FILE):
// refused: REASON".
var reRefusedWheel = regexp.MustCompile(`^(\S+) (\S+) \(([^)]*)\): refused: (.*)$`)

// explainRefusedWheel explains a wheel the installer refused. A wheel
// that would replace a file (the virtual environment's, or one another
// distribution of the layer wrote) is named with the requirement that
// brought it in.
func explainRefusedWheel(se *StepError, line string, s config.Skill) {
	se.Reason = "refused an unsafe wheel: " + line
	se.Hint = "the file is not what the index listed or would write outside the virtual environment; remove the distribution from the requirements or fix the index"
	m := reRefusedWheel.FindStringSubmatch(line)
	if m == nil {
		return
	}
	name, version, file, why := m[1], m[2], m[3], m[4]
	dist := fmt.Sprintf("%s %s (%s; %s)", name, version, file, requestedAs(s, lock.NormalizeName(name)))
	switch {
	case strings.Contains(why, "which belongs to the virtual environment"):
		se.Reason = fmt.Sprintf("refused an unsafe wheel: %s: %s", dist, strings.TrimPrefix(why, "it "))
		se.Hint = "a distribution may only add files of its own, never replace the virtual environment's (its interpreter, pyvenv.cfg, activate scripts, standard library layout); " +
			"remove " + lock.NormalizeName(name) + " from the requirements (or the requirement that pulls it in), or pin a release of it that does not ship that file"
	case strings.Contains(why, "already wrote: no file may be replaced"):
		se.Reason = fmt.Sprintf("refused an unsafe wheel: %s: %s", dist, strings.TrimPrefix(why, "it "))
		se.Hint = "a distribution may only add files of its own; remove " + lock.NormalizeName(name) + " or the distribution that wrote the file first from the requirements"
	}
}

func explainResolve(ctx context.Context, se *StepError, log string, s config.Skill, index []string) {
	if m := reConflict.FindStringSubmatch(log); m != nil {
		se.Reason, se.Hint = explainConflict(m[1], reCaused.FindAllStringSubmatch(log, -1), s)
		return
	}
	if m := reNoVersion.FindStringSubmatch(log); m != nil {
		explainNoVersion(ctx, se, m[1], strings.TrimSpace(m[2]), s, index)
		return
	}
	if m := rePython.FindStringSubmatch(log); m != nil {
		explainPython(se, m[1])
		return
	}
	if reason, hint := probeIndex(ctx, index, "", s.Index.AllowSdist); reason != "" {
		se.Reason, se.Hint = reason, hint
		return
	}
	se.Reason = "pip could not resolve the requirements: " + lastErrorLine(log)
}

// explainNoVersion explains pip's "Could not find a version that
// satisfies the requirement REQ (from versions: VERSIONS)".
func explainNoVersion(ctx context.Context, se *StepError, req, versions string, s config.Skill, index []string) {
	name := lock.NormalizeName(strings.FieldsFunc(req, func(r rune) bool { return strings.ContainsRune("<>=!~[; (", r) })[0])
	where := requirementLine(s, name)
	if versions == "none" {
		if reason, hint := probeIndex(ctx, index, name, s.Index.AllowSdist); reason != "" {
			se.Reason, se.Hint = reason, hint
			return
		}
		se.Reason = fmt.Sprintf("no distribution of %s found for requirement %q%s", name, req, where)
		se.Hint = "check the project name and that " + sources(s, index) + " has wheels for this Python and platform"
		return
	}
	se.Reason = fmt.Sprintf("no version of %s matches %q%s; the index has: %s", name, req, where, versions)
	se.Hint = "pick one of those versions"
}

// explainPython explains pip's UnsupportedPythonVersion (its first line).
func explainPython(se *StepError, msg string) {
	se.Reason = "the requirements need another Python: " + msg
	se.Hint = "use a base image with a Python they support, or change the requirements"
}

// explainConflict says which of the user's requirements fight over which
// package, and what each side needs. pip names the requirements as lines
// of the requirements file the resolve step reads; they are mapped back
// to the user's own lines and where they came from.
func explainConflict(who string, causes [][]string, s config.Skill) (reason, hint string) {
	// pip lists them as "A, B and C": each is a line of the requirements
	// file ("-r FILE (line N)") or a requirement as the user wrote it.
	var parts []string
	if head, last, ok := strings.Cut(who, " and "); ok {
		parts = append(strings.Split(head, ", "), last)
	} else {
		parts = []string{who}
	}
	lines := make([]string, len(causes))
	for i, c := range causes {
		lines[i] = c[1]
	}
	return explainConflictParts(parts, lines, s)
}

// explainConflictParts is explainConflict of pip's requirements in
// conflict, one each, and its "The conflict is caused by" lines.
func explainConflictParts(parts, causes []string, s config.Skill) (reason, hint string) {
	parts = append([]string{}, parts...)
	for i, p := range parts {
		parts[i] = userRequirement(p, s)
	}
	var who string
	switch len(parts) {
	case 0:
		who = "the requested packages"
	case 1:
		who = parts[0]
	default:
		who = strings.Join(parts[:len(parts)-1], ", ") + " and " + parts[len(parts)-1]
	}
	reason = "the requirements " + who + " have conflicting dependencies"
	var cs []string
	count := map[string]int{}
	contested := ""
	for _, c := range causes {
		line := strings.TrimSpace(c)
		cs = append(cs, line)
		if n := dependencyName(line); n != "" {
			count[n]++
			if count[n] > count[contested] {
				contested = n
			}
		}
	}
	switch {
	case contested != "" && count[contested] > 1:
		reason += fmt.Sprintf(": they need different versions of %s (%s)", contested, strings.Join(cs, "; "))
		hint = "change one of these requirements so that they agree on a version of " + contested
	case len(cs) > 0:
		reason += " (" + strings.Join(cs, "; ") + ")"
		hint = "loosen or change one of the conflicting requirements"
	default:
		hint = "loosen or change one of the conflicting requirements"
	}
	return reason, hint
}

// userRequirement maps pip's name for one of the resolve step's
// requirements back to the line the user wrote, and where it came from.
func userRequirement(p string, s config.Skill) string {
	describe := func(r config.Requirement) string {
		if r.Source != "" && r.Line > 0 {
			return fmt.Sprintf("%q (%s:%d)", r.Raw, r.Source, r.Line)
		}
		return strconv.Quote(r.Raw)
	}
	if m := reInputLine.FindStringSubmatch(p); m != nil {
		if n, err := strconv.Atoi(m[1]); err == nil && n >= 1 && n <= len(s.Requirements) {
			return describe(s.Requirements[n-1])
		}
		return p
	}
	for _, r := range s.Requirements {
		if r.Raw == p || r.String() == p {
			return describe(r)
		}
	}
	return p
}

// dependencyName is the project a line of pip's "The conflict is caused
// by" names as needed: "a 1.0 depends on c==1.0" and "The user requested
// c==2.0" both name c.
func dependencyName(cause string) string {
	spec := ""
	if _, after, ok := strings.Cut(cause, " depends on "); ok {
		spec = after
	} else if after, ok := strings.CutPrefix(cause, "The user requested "); ok {
		spec = after
	}
	spec = strings.TrimPrefix(strings.TrimSpace(spec), "(constraint) ")
	f := strings.FieldsFunc(spec, func(r rune) bool { return strings.ContainsRune("<>=!~[; (", r) })
	if len(f) == 0 {
		return ""
	}
	return lock.NormalizeName(f[0])
}

// sources names where packages came from, without credentials.
func sources(s config.Skill, index []string) string {
	var out []string
	for _, u := range index {
		out = append(out, "index "+indexproxy.Redact(u))
	}
	for _, d := range s.Index.FindLinks {
		out = append(out, "find-links "+d)
	}
	return strings.Join(out, " or ")
}

func requirementLine(s config.Skill, name string) string {
	for _, r := range s.Requirements {
		if r.Name == name {
			if r.Source != "" && r.Line > 0 {
				return fmt.Sprintf(" (%s:%d)", r.Source, r.Line)
			}
			return ""
		}
	}
	return " (pulled in as a dependency)"
}

// requestedAs says how the skill asked for the project name: the user's
// requirement and where it was written, or as a dependency.
func requestedAs(s config.Skill, name string) string {
	for _, r := range s.Requirements {
		if r.Name == name {
			if r.Source != "" && r.Line > 0 {
				return fmt.Sprintf("requirement %q at %s:%d", r.Raw, r.Source, r.Line)
			}
			return fmt.Sprintf("requirement %q", r.Raw)
		}
	}
	return "pulled in as a dependency"
}

// probeIndex looks at the index from the host to tell "unreachable" and
// "only source distributions" apart from "no such project".
func probeIndex(ctx context.Context, index []string, name string, allowSdist bool) (reason, hint string) {
	cl := &http.Client{Timeout: 5 * time.Second}
	for _, u := range index {
		base := strings.TrimRight(u, "/") + "/"
		req, err := http.NewRequestWithContext(context.WithoutCancel(ctx), http.MethodGet, base+name+"/", nil)
		if err != nil {
			continue
		}
		resp, err := cl.Do(req)
		if err != nil {
			return fmt.Sprintf("the package index %s is unreachable (%v)", indexproxy.Redact(u), unwrapNet(err)),
				"check --index-url and that the index is up"
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
		resp.Body.Close()
		if name == "" {
			continue
		}
		if resp.StatusCode == http.StatusOK && !allowSdist {
			page := string(body)
			if !strings.Contains(page, ".whl") && (strings.Contains(page, ".tar.gz") || strings.Contains(page, ".zip")) {
				return fmt.Sprintf("%s is only available as a source distribution, and source builds run arbitrary code at build time, so they are refused", name),
					"pass --allow-sdist (or index.allow_sdist in skill.yaml) to allow it"
			}
		}
	}
	return "", ""
}

func unwrapNet(err error) error {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err
		}
		err = u
	}
}

func tail(s string, n int) []string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines
}

func lastErrorLine(log string) string {
	lines := tail(log, 200)
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], "ERROR") || strings.Contains(lines[i], "Error") {
			return strings.TrimSpace(lines[i])
		}
	}
	if len(lines) > 0 {
		return strings.TrimSpace(lines[len(lines)-1])
	}
	return ""
}

var _ = errdefs.ErrUnknown
