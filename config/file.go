package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// maxFileSize bounds skill.yaml and requirement files.
const maxFileSize = 4 << 20

// scalar is one YAML scalar kept as the text written, with its line, so that
// "version: 3" and "version: 1.2.0" both stay strings and errors can point
// at the line.
type scalar struct {
	Value string
	Line  int
	Set   bool
}

// UnmarshalYAML accepts any scalar (string, number, bool, date) as text.
// A null leaves the value unset.
func (s *scalar) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind != yaml.ScalarNode {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: expected a single value, found a %s", n.Line, nodeKind(n.Kind))}}
	}
	s.Value, s.Line, s.Set = n.Value, n.Line, true
	return nil
}

func nodeKind(k yaml.Kind) string {
	switch k {
	case yaml.SequenceNode:
		return "list"
	case yaml.MappingNode:
		return "mapping"
	default:
		return "non-scalar value"
	}
}

// fileSkill is the skill.yaml document. Lists are pointers so that an
// explicit empty list ("requirements: []") differs from an absent one.
type fileSkill struct {
	ID               scalar     `yaml:"id"`
	Version          scalar     `yaml:"version"`
	Repo             scalar     `yaml:"repo"`
	Base             scalar     `yaml:"base"`
	Requirements     *[]scalar  `yaml:"requirements"`
	RequirementsFile scalar     `yaml:"requirements_file"`
	Index            fileIndex  `yaml:"index"`
	Build            fileBuild  `yaml:"build"`
	Run              fileRun    `yaml:"run"`
	Policy           filePolicy `yaml:"policy"`
	Preload          *[]scalar  `yaml:"preload"`
	Resolver         scalar     `yaml:"resolver"`
}

type fileIndex struct {
	URL        scalar    `yaml:"url"`
	ExtraURLs  *[]scalar `yaml:"extra_urls"`
	FindLinks  *[]scalar `yaml:"find_links"`
	AllowSdist scalar    `yaml:"allow_sdist"`
}

type fileBuild struct {
	Memory  scalar `yaml:"memory"`
	CPUs    scalar `yaml:"cpus"`
	Pids    scalar `yaml:"pids"`
	Timeout scalar `yaml:"timeout"`
}

type fileRun struct {
	Memory      scalar `yaml:"memory"`
	CPUs        scalar `yaml:"cpus"`
	Pids        scalar `yaml:"pids"`
	Timeout     scalar `yaml:"timeout"`
	TmpfsSize   scalar `yaml:"tmpfs_size"`
	OutputLimit scalar `yaml:"output_limit"`
	Runtime     scalar `yaml:"runtime"`
}

type filePolicy struct {
	NoScan       scalar       `yaml:"no_scan"`
	MinSeverity  scalar       `yaml:"min_severity"`
	AllowStaleDB scalar       `yaml:"allow_stale_db"`
	DBWarnAge    scalar       `yaml:"db_warn_age"`
	DBMaxAge     scalar       `yaml:"db_max_age"`
	Allow        *[]fileAllow `yaml:"allow"`
}

type fileAllow struct {
	ID      scalar `yaml:"id"`
	Package scalar `yaml:"package"`
	Reason  scalar `yaml:"reason"`
	Expires scalar `yaml:"expires"`
}

// line returns the first line any field of the entry was written on.
func (a fileAllow) line() int {
	for _, s := range []scalar{a.ID, a.Package, a.Reason, a.Expires} {
		if s.Set {
			return s.Line
		}
	}
	return 0
}

// typeNames maps the decoder's Go type names to skill.yaml sections.
var typeNames = strings.NewReplacer(
	"config.fileSkill", "skill (a mapping)",
	"config.fileIndex", "index (a mapping)",
	"config.fileBuild", "build (a mapping)",
	"config.fileRun", "run (a mapping)",
	"config.filePolicy", "policy (a mapping)",
	"*[]config.fileAllow", "policy.allow (a list)",
	"[]config.fileAllow", "policy.allow (a list)",
	"config.fileAllow", "an allow entry (a mapping)",
	"*[]config.scalar", "a list",
	"[]config.scalar", "a list",
	"config.scalar", "a single value",
)

var (
	yamlLineRE    = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)
	unknownKeyRE  = regexp.MustCompile(`^field (\S+) not found in type (.*)$`)
	yamlPrefixRE  = regexp.MustCompile(`^yaml: `)
	yamlUnmarshal = regexp.MustCompile("^cannot unmarshal (!!\\w+)(?: `(.*)`)? into (.*)$")
)

// decodeFile parses a skill.yaml document strictly: unknown fields,
// duplicate keys, non-scalar values and extra documents are errors naming
// source and line.
func decodeFile(source string, data []byte) (*fileSkill, error) {
	if len(data) > maxFileSize {
		return nil, &Error{Source: source, Msg: fmt.Sprintf("file is larger than %d bytes", maxFileSize)}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var fs fileSkill
	if err := dec.Decode(&fs); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Error{Source: source, Msg: "file is empty; it needs at least id and version"}
		}
		return nil, yamlError(source, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, yamlError(source, err)
		}
		return nil, &Error{Source: source, Line: extra.Line, Msg: "more than one YAML document; a skill file holds one"}
	}
	return &fs, nil
}

// yamlError turns a yaml.v3 error into *Error values naming source and line.
func yamlError(source string, err error) error {
	var msgs []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{err.Error()}
	}
	var errs []error
	for _, m := range msgs {
		e := &Error{Source: source, Msg: yamlPrefixRE.ReplaceAllString(m, "")}
		if sm := yamlLineRE.FindStringSubmatch(m); sm != nil {
			e.Line, _ = strconv.Atoi(sm[1])
			e.Msg = sm[2]
		}
		if sm := unknownKeyRE.FindStringSubmatch(e.Msg); sm != nil {
			e.Field = sm[1]
			e.Msg = fmt.Sprintf("unknown field %s in %s", quote(sm[1]), strings.TrimSuffix(typeNames.Replace(sm[2]), " (a mapping)"))
		} else if sm := yamlUnmarshal.FindStringSubmatch(e.Msg); sm != nil {
			e.Msg = fmt.Sprintf("expected %s, found %s", typeNames.Replace(sm[3]), yamlKind(sm[1], sm[2]))
		} else {
			e.Msg = typeNames.Replace(e.Msg)
		}
		errs = append(errs, e)
	}
	return errors.Join(errs...)
}

func yamlKind(tag, value string) string {
	switch tag {
	case "!!seq":
		return "a list"
	case "!!map":
		return "a mapping"
	default:
		return fmt.Sprintf("the value %s", quote(value))
	}
}
