package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/distribution/reference"
)

// Defaults for values neither a flag nor skill.yaml sets.
const (
	DefaultRepo           = "atom-skill"
	DefaultBase           = "docker.io/library/python:3.11-slim"
	DefaultBuildMemory    = "1g"
	DefaultBuildCPUs      = "1"
	DefaultBuildPids      = "512"
	DefaultBuildTimeout   = "10m"
	DefaultRunMemory      = "256m"
	DefaultRunCPUs        = "0.5"
	DefaultRunPids        = "64"
	DefaultRunTimeout     = "30s"
	DefaultRunTmpfsSize   = "64m"
	DefaultRunOutputLimit = "1m"
	DefaultRunRuntime     = RuntimeRunc
	// The ceilings a server puts on its callers' run limits by default
	// (serve --max-*): four times the run defaults.
	DefaultMaxRunMemory      = "1g"
	DefaultMaxRunCPUs        = "2"
	DefaultMaxRunPids        = "256"
	DefaultMaxRunTimeout     = "2m"
	DefaultMaxRunTmpfsSize   = "256m"
	DefaultMaxRunOutputLimit = "4m"
	DefaultDBWarnAge         = "7d"
	DefaultDBMaxAge          = "30d"
	DefaultMinSeverity       = ""
	defaultRequirementsSrc   = "args"
)

// Flag names: the keys of Input.Set, and the names used in errors
// ("--build-memory: ..."). The CLI should declare its flags with these names.
const (
	FlagID            = "id"
	FlagVersion       = "version"
	FlagRepo          = "repo"
	FlagBase          = "base"
	FlagRequirement   = "requirement" // -r FILE
	FlagFile          = "file"        // -f skill.yaml
	FlagIndexURL      = "index-url"
	FlagExtraIndexURL = "extra-index-url"
	FlagFindLinks     = "find-links"
	FlagAllowSdist    = "allow-sdist"
	FlagBuildMemory   = "build-memory"
	FlagBuildCPUs     = "build-cpus"
	FlagBuildPids     = "build-pids"
	FlagBuildTimeout  = "build-timeout"
	FlagMemory        = "memory"
	FlagCPUs          = "cpus"
	FlagPids          = "pids"
	FlagTimeout       = "timeout"
	FlagTmpfsSize     = "tmpfs-size"
	FlagOutputLimit   = "output-limit"
	FlagRuntime       = "runtime"
	FlagAllow         = "allow"
	FlagMinSeverity   = "min-severity"
	FlagNoScan        = "no-scan"
	FlagAllowStaleDB  = "allow-stale-db"
	FlagDBWarnAge     = "db-warn-age"
	FlagDBMaxAge      = "db-max-age"
	FlagResolver      = "resolver"
)

// Input holds the raw values exactly as the CLI received them. Empty
// strings and nil slices mean "not given".
type Input struct {
	// Dir resolves relative command-line paths (-r, -f, --find-links);
	// empty means the working directory.
	Dir string

	ID, Version, Repo, Base string

	// Requirements are positional REQ arguments, one requirement each.
	Requirements []string
	// RequirementFiles are -r FILE paths.
	RequirementFiles []string
	// File is the -f skill.yaml path; empty means no file.
	File string

	IndexURL      string
	ExtraIndexURL []string
	FindLinks     []string
	AllowSdist    bool

	BuildMemory, BuildCPUs, BuildPids, BuildTimeout string

	Memory, CPUs, Pids, Timeout, TmpfsSize, OutputLimit string
	// Runtime is --runtime (runc or gvisor).
	Runtime string

	// Allow entries in the form ID[@PACKAGE]:YYYY-MM-DD:REASON.
	Allow        []string
	MinSeverity  string
	NoScan       bool
	AllowStaleDB bool
	DBWarnAge    string
	DBMaxAge     string

	// Resolver is --resolver: auto, pip or builtin (empty: the engine's
	// default).
	Resolver string

	// Preload are the modules a warm run container imports ahead of a
	// run; nil takes skill.yaml's list. (No flag sets them: an API
	// request does, and the command line sends skill.yaml's to a server.)
	Preload []string

	// Set names the flags (Flag* constants) the user set explicitly. An
	// explicit flag overrides skill.yaml; a non-empty value not in Set (a
	// CLI default) only fills what skill.yaml leaves out.
	Set map[string]bool
}

// origin says where a value came from, for error messages.
type origin struct {
	source string // file path, "flags", "args" or "defaults"
	line   int
	field  string // "--memory" or "run.memory"
}

// value is a raw string value and its origin.
type value struct {
	s string
	origin
}

// loader carries the state of one Load.
type loader struct {
	in      Input
	dir     string     // base for command-line paths
	file    string     // skill.yaml path as given ("" if none)
	fileDir string     // base for paths in skill.yaml
	fs      *fileSkill // nil when there is no file
	errs    []error
}

// Load turns the CLI's raw input and the skill.yaml it names into a
// validated Skill. Precedence, per value: an explicit flag (in Input.Set),
// then skill.yaml, then a non-empty CLI default, then the package default.
// Lists (requirements, extra index URLs, find-links, allow entries) are
// replaced, not merged. All problems found are reported together; each
// wraps errdefs.ErrInvalidArgument and names its file and line, field or
// flag.
func Load(in Input) (Skill, error) {
	l := &loader{in: in, dir: in.Dir}
	if l.dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return Skill{}, fmt.Errorf("working directory: %w", err)
		}
		l.dir = wd
	}
	if in.File != "" {
		l.file = in.File
		path := l.abs(l.dir, in.File)
		l.fileDir = filepath.Dir(path)
		data, err := readFile(path)
		if err != nil {
			return Skill{}, &Error{Source: in.File, Field: "--" + FlagFile, Msg: err.Error()}
		}
		fs, err := decodeFile(in.File, data)
		if err != nil {
			return Skill{}, err
		}
		l.fs = fs
	} else {
		l.fs = &fileSkill{}
	}
	fs := l.fs

	var s Skill
	if v := l.pick(FlagID, in.ID, fs.ID, "id", ""); l.check(v, ValidateID(v.s)) {
		s.ID = v.s
	}
	if v := l.pick(FlagVersion, in.Version, fs.Version, "version", ""); l.check(v, ValidateVersion(v.s)) {
		s.Version = v.s
	}
	v := l.pick(FlagRepo, in.Repo, fs.Repo, "repo", DefaultRepo)
	repo, err := NormalizeRepo(v.s)
	if l.check(v, err) {
		s.Repo = repo
	}
	v = l.pick(FlagBase, in.Base, fs.Base, "base", DefaultBase)
	base, err := NormalizeBase(v.s)
	if l.check(v, err) {
		s.Base = base
	}
	if s.ID != "" && s.Version != "" && s.Repo != "" {
		if _, err := reference.ParseNormalizedNamed(s.Tag()); err != nil {
			l.errs = append(l.errs, &Error{Field: "id", Msg: fmt.Sprintf("image tag %s is invalid: %v", quote(s.Tag()), err)})
		}
	}
	s.Requirements = l.requirements()
	if s.Requirements == nil {
		s.Requirements = []Requirement{} // a skill with no packages
	}
	s.Index = l.index()
	s.Build = BuildLimits{
		MemoryBytes: l.size(l.pick(FlagBuildMemory, in.BuildMemory, fs.Build.Memory, "build.memory", DefaultBuildMemory)),
		CPUs:        l.cpus(l.pick(FlagBuildCPUs, in.BuildCPUs, fs.Build.CPUs, "build.cpus", DefaultBuildCPUs)),
		Pids:        l.pids(l.pick(FlagBuildPids, in.BuildPids, fs.Build.Pids, "build.pids", DefaultBuildPids)),
		Timeout:     l.duration(l.pick(FlagBuildTimeout, in.BuildTimeout, fs.Build.Timeout, "build.timeout", DefaultBuildTimeout)),
	}
	s.Run = RunLimits{
		MemoryBytes:      l.size(l.pick(FlagMemory, in.Memory, fs.Run.Memory, "run.memory", DefaultRunMemory)),
		CPUs:             l.cpus(l.pick(FlagCPUs, in.CPUs, fs.Run.CPUs, "run.cpus", DefaultRunCPUs)),
		Pids:             l.pids(l.pick(FlagPids, in.Pids, fs.Run.Pids, "run.pids", DefaultRunPids)),
		Timeout:          l.duration(l.pick(FlagTimeout, in.Timeout, fs.Run.Timeout, "run.timeout", DefaultRunTimeout)),
		TmpfsBytes:       l.size(l.pick(FlagTmpfsSize, in.TmpfsSize, fs.Run.TmpfsSize, "run.tmpfs_size", DefaultRunTmpfsSize)),
		OutputLimitBytes: l.size(l.pick(FlagOutputLimit, in.OutputLimit, fs.Run.OutputLimit, "run.output_limit", DefaultRunOutputLimit)),
	}
	if v := l.pick(FlagRuntime, in.Runtime, fs.Run.Runtime, "run.runtime", DefaultRunRuntime); l.check(v, ValidateRuntime(v.s)) {
		s.Run.Runtime = v.s
	}
	s.Policy = l.policy()
	if v := l.pick(FlagResolver, in.Resolver, fs.Resolver, "resolver", ""); v.s != "" && l.check(v, ValidateResolver(v.s)) {
		s.Resolver = v.s
	}
	if in.Preload != nil {
		for i, m := range in.Preload {
			v := value{m, origin{source: "request", field: fmt.Sprintf("preload[%d]", i)}}
			if l.check(v, ValidateModuleName(v.s)) {
				s.Preload = append(s.Preload, v.s)
			}
		}
	} else if fs.Preload != nil {
		for i, sc := range *fs.Preload {
			v := value{sc.Value, l.fileOrigin(sc, fmt.Sprintf("preload[%d]", i))}
			if l.check(v, ValidateModuleName(v.s)) {
				s.Preload = append(s.Preload, v.s)
			}
		}
	}
	if err := errors.Join(l.errs...); err != nil {
		return Skill{}, err
	}
	return s, nil
}

// readFile reads a configuration file of bounded size (see ReadInput).
func readFile(path string) ([]byte, error) { return ReadInput(path, maxFileSize) }

func (l *loader) abs(base, p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(base, p)
}

func (l *loader) flagOrigin(flag string) origin { return origin{source: "flags", field: "--" + flag} }

func (l *loader) fileOrigin(sc scalar, field string) origin {
	return origin{source: l.file, line: sc.Line, field: field}
}

// pick applies the precedence rules to one string value.
func (l *loader) pick(flag, flagVal string, fileVal scalar, field, def string) value {
	switch {
	case l.in.Set[flag]:
		return value{flagVal, l.flagOrigin(flag)}
	case fileVal.Set:
		return value{fileVal.Value, l.fileOrigin(fileVal, field)}
	case flagVal != "":
		return value{flagVal, l.flagOrigin(flag)}
	default:
		return value{def, origin{source: "defaults", field: field}}
	}
}

// pickBool applies the precedence rules to a boolean.
func (l *loader) pickBool(flag string, flagVal bool, fileVal scalar, field string) bool {
	if l.in.Set[flag] || !fileVal.Set {
		return flagVal
	}
	switch strings.ToLower(fileVal.Value) {
	case "true":
		return true
	case "false":
		return false
	}
	l.errs = append(l.errs, &Error{Source: l.file, Line: fileVal.Line, Field: field,
		Msg: fmt.Sprintf("expected true or false, found %s", quote(fileVal.Value))})
	return false
}

// pickList applies the precedence rules to a list.
func (l *loader) pickList(flag string, flagVal []string, fileVal *[]scalar, field string) ([]value, bool) {
	if l.in.Set[flag] || (fileVal == nil && len(flagVal) > 0) {
		vs := make([]value, len(flagVal))
		for i, s := range flagVal {
			vs[i] = value{s, l.flagOrigin(flag)}
		}
		return vs, true
	}
	if fileVal == nil {
		return nil, false
	}
	vs := make([]value, len(*fileVal))
	for i, sc := range *fileVal {
		vs[i] = value{sc.Value, l.fileOrigin(sc, fmt.Sprintf("%s[%d]", field, i))}
	}
	return vs, false
}

// check records err located at v's origin and reports whether v is valid.
func (l *loader) check(v value, err error) bool {
	if err == nil {
		return true
	}
	l.errs = append(l.errs, locate(err, v.origin, false))
	return false
}

// locate points every *Error in err at o. With prefix, an error's own
// field is appended to o.field (policy.allow[0] + reason); otherwise
// o.field replaces it.
func locate(err error, o origin, prefix bool) error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var errs []error
		for _, e := range j.Unwrap() {
			errs = append(errs, locate(e, o, prefix))
		}
		return errors.Join(errs...)
	}
	ce, ok := err.(*Error)
	if !ok {
		return &Error{Source: o.source, Line: o.line, Field: o.field, Msg: err.Error()}
	}
	e := *ce
	if e.Source == "" {
		e.Source, e.Line = o.source, o.line
	}
	switch {
	case prefix && e.Field != "" && strings.HasPrefix(o.field, "--"):
		// A flag is one string: keep the flag name, mention the part.
		e.Msg = e.Field + ": " + e.Msg
		e.Field = o.field
	case prefix && e.Field != "":
		e.Field = o.field + "." + e.Field
	default:
		e.Field = o.field
	}
	return &e
}

func (l *loader) size(v value) int64 {
	n, err := ParseSize(v.s)
	l.check(v, err)
	return n
}

func (l *loader) cpus(v value) float64 {
	n, err := ParseCPUs(v.s)
	l.check(v, err)
	return n
}

func (l *loader) pids(v value) int64 {
	n, err := ParsePids(v.s)
	l.check(v, err)
	return n
}

func (l *loader) duration(v value) time.Duration {
	d, err := ParseDuration(v.s)
	l.check(v, err)
	return d
}

// requirements collects requirements from REQ arguments and -r files when
// either is given, otherwise from skill.yaml, and rejects duplicates
// across all of them.
func (l *loader) requirements() []Requirement {
	in, fs := l.in, l.fs
	var reqs []Requirement
	failed := false
	fail := func(err error) {
		l.errs = append(l.errs, err)
		failed = true
	}
	add := func(rs []Requirement, err error) {
		if err != nil {
			fail(err)
			return
		}
		reqs = append(reqs, rs...)
	}
	switch {
	case len(in.Requirements) > 0 || len(in.RequirementFiles) > 0:
		if len(in.Requirements) > 0 {
			add(ParseRequirementArgs(in.Requirements))
		}
		for _, f := range in.RequirementFiles {
			add(l.requirementsFile(f, l.abs(l.dir, f), origin{source: "flags", field: "-r"}))
		}
	case fs.Requirements != nil && fs.RequirementsFile.Set:
		fail(&Error{Source: l.file, Line: fs.RequirementsFile.Line, Field: "requirements_file",
			Msg: "set either requirements or requirements_file, not both"})
	case fs.Requirements != nil:
		for i, sc := range *fs.Requirements {
			req, err := l.fileRequirement(sc)
			if err != nil {
				fail(&Error{Source: l.file, Line: sc.Line, Field: fmt.Sprintf("requirements[%d]", i), Msg: err.Error()})
				continue
			}
			reqs = append(reqs, req)
		}
	case fs.RequirementsFile.Set:
		rf := fs.RequirementsFile
		display := rf.Value
		if !filepath.IsAbs(rf.Value) {
			display = filepath.Join(filepath.Dir(l.file), rf.Value)
		}
		add(l.requirementsFile(display, l.abs(l.fileDir, rf.Value), l.fileOrigin(rf, "requirements_file")))
	}
	if !failed {
		if err := checkDuplicates(reqs); err != nil {
			fail(err)
		}
	}
	return reqs
}

// fileRequirement parses one item of skill.yaml's requirements list.
func (l *loader) fileRequirement(sc scalar) (Requirement, error) {
	if strings.ContainsAny(sc.Value, "\r\n") {
		return Requirement{}, fmt.Errorf("%s: one requirement per list item, on one line", quote(sc.Value))
	}
	text, err := cleanLine(sc.Value)
	if err == nil && text == "" {
		err = errors.New("empty requirement")
	}
	if err != nil {
		return Requirement{}, err
	}
	req, err := parseRequirementLine(text)
	req.Source, req.Line = l.file, sc.Line
	return req, err
}

// requirementsFile reads one requirements file; display names it in errors.
func (l *loader) requirementsFile(display, path string, o origin) ([]Requirement, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, &Error{Source: o.source, Line: o.line, Field: o.field, Msg: fmt.Sprintf("requirements file: %v", err)}
	}
	return ParseRequirements(display, strings.NewReader(string(data)))
}

// index builds the package index configuration.
func (l *loader) index() Index {
	in, fi := l.in, l.fs.Index
	var idx Index
	if v := l.pick(FlagIndexURL, in.IndexURL, fi.URL, "index.url", ""); v.s != "" && l.check(v, ValidateIndexURL(v.s)) {
		idx.URL = v.s
	}
	extra, _ := l.pickList(FlagExtraIndexURL, in.ExtraIndexURL, fi.ExtraURLs, "index.extra_urls")
	for _, v := range extra {
		if l.check(v, ValidateIndexURL(v.s)) {
			idx.ExtraURLs = append(idx.ExtraURLs, v.s)
		}
	}
	links, fromFlags := l.pickList(FlagFindLinks, in.FindLinks, fi.FindLinks, "index.find_links")
	for _, v := range links {
		base := l.fileDir
		if fromFlags {
			base = l.dir
		}
		if v.s == "" {
			l.check(v, errors.New("find-links directory is empty"))
			continue
		}
		path := l.abs(base, v.s)
		fi, err := os.Stat(path)
		switch {
		case err != nil:
			l.check(v, fmt.Errorf("find-links directory %s: %w", quote(v.s), errors.Unwrap(err)))
		case !fi.IsDir():
			l.check(v, fmt.Errorf("find-links %s is not a directory", quote(v.s)))
		default:
			idx.FindLinks = append(idx.FindLinks, path)
		}
	}
	idx.AllowSdist = l.pickBool(FlagAllowSdist, in.AllowSdist, fi.AllowSdist, "index.allow_sdist")
	return idx
}

// LoadPolicy is the vulnerability policy of the flags in (a server's, which
// admits images from elsewhere under it): Allow, MinSeverity,
// AllowStaleDB, DBWarnAge and DBMaxAge, with the same checks and defaults
// as a skill's.
func LoadPolicy(in Input) (Policy, error) {
	l := &loader{in: in, fs: &fileSkill{}}
	p := l.policy()
	if err := errors.Join(l.errs...); err != nil {
		return Policy{}, err
	}
	return p, nil
}

// policy builds the vulnerability policy.
func (l *loader) policy() Policy {
	in, fp := l.in, l.fs.Policy
	var p Policy
	p.NoScan = l.pickBool(FlagNoScan, in.NoScan, fp.NoScan, "policy.no_scan")
	p.AllowStaleDB = l.pickBool(FlagAllowStaleDB, in.AllowStaleDB, fp.AllowStaleDB, "policy.allow_stale_db")
	if v := l.pick(FlagMinSeverity, in.MinSeverity, fp.MinSeverity, "policy.min_severity", DefaultMinSeverity); l.check(v, ValidateSeverity(v.s)) {
		p.MinSeverity = v.s
	}
	p.WarnAge = l.duration(l.pick(FlagDBWarnAge, in.DBWarnAge, fp.DBWarnAge, "policy.db_warn_age", DefaultDBWarnAge))
	p.MaxAge = l.duration(l.pick(FlagDBMaxAge, in.DBMaxAge, fp.DBMaxAge, "policy.db_max_age", DefaultDBMaxAge))
	if p.WarnAge > 0 && p.MaxAge > 0 && p.WarnAge > p.MaxAge {
		l.errs = append(l.errs, &Error{Field: "policy.db_warn_age", Msg: fmt.Sprintf("warn age %s is longer than max age %s", p.WarnAge, p.MaxAge)})
	}
	if l.in.Set[FlagAllow] || (fp.Allow == nil && len(in.Allow) > 0) {
		for _, s := range in.Allow {
			a, err := ParseAllow(s)
			if err != nil {
				l.errs = append(l.errs, locate(err, l.flagOrigin(FlagAllow), true))
				continue
			}
			p.Allow = append(p.Allow, a)
		}
		return p
	}
	if fp.Allow != nil {
		for i, fa := range *fp.Allow {
			a, err := NewAllowEntry(fa.ID.Value, fa.Package.Value, fa.Reason.Value, fa.Expires.Value)
			if err != nil {
				l.errs = append(l.errs, locate(err, origin{source: l.file, line: fa.line(), field: fmt.Sprintf("policy.allow[%d]", i)}, true))
				continue
			}
			p.Allow = append(p.Allow, a)
		}
	}
	return p
}
