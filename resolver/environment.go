package resolver

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/skillbuild/skillbuild/pep440"
	"github.com/skillbuild/skillbuild/pep508"
	"github.com/skillbuild/skillbuild/pydist"
)

// PipVersion is the pip release (major.minor) whose resolution the
// resolver reproduces; a base image with another pip is resolved by pip.
const PipVersion = "23.0"

// Environment is what resolution needs to know of the interpreter the
// lock is for: the base image's python3, as its pip sees itself.
type Environment struct {
	// Pip is the base's pip version ("23.0.1").
	Pip string `json:"pip"`
	// Packaging is the version of the packaging library pip vendors.
	Packaging string `json:"packaging"`
	// Tags are the wheel tags pip accepts, most preferred first
	// (TargetPython().get_tags()).
	Tags []string `json:"tags"`
	// PyVersion is TargetPython.py_version ("3.11").
	PyVersion string `json:"py_version"`
	// PythonVersion is sys.version_info[:3] joined ("3.11.2").
	PythonVersion string `json:"python_version"`
	// Markers are packaging's default_environment() (PEP 508 values).
	Markers map[string]string `json:"markers"`
	// Error says why the environment could not be captured (no pip).
	Error string `json:"error,omitempty"`
}

// EnvironmentScript writes the Environment of the python3 that runs it as
// JSON, to the file named by its first argument or to stdout
// (python3 -I -c EnvironmentScript [FILE]). It reads what pip's
// TargetPython().get_tags() returns with no --platform/--python-version
// options (get_supported(): cpython_tags() or generic_tags(), then
// compatible_tags(), from the packaging pip vendors) without importing
// the rest of pip (a third of the time), and the marker values pip
// evaluates with; it reads nothing else.
const EnvironmentScript = `import json, sys
try:
    import pip
    from pip._vendor.packaging import __about__, tags
    from pip._vendor.packaging.markers import default_environment
    interp = tags.interpreter_name() + tags.interpreter_version()
    if tags.interpreter_name() == "cp":
        supported = list(tags.cpython_tags())
    else:
        supported = list(tags.generic_tags(interpreter=interp))
    supported += list(tags.compatible_tags(interpreter=interp))
    out = {"pip": pip.__version__, "packaging": __about__.__version__,
           "tags": [str(t) for t in supported], "py_version": "%d.%d" % sys.version_info[:2],
           "python_version": ".".join(str(c) for c in sys.version_info[:3]),
           "markers": default_environment()}
except Exception as e:
    out = {"error": "%s: %s" % (type(e).__name__, e)}
if len(sys.argv) > 1:
    with open(sys.argv[1], "w") as f:
        f.write(json.dumps(out))
else:
    sys.stdout.write(json.dumps(out))
`

// ParseEnvironment reads EnvironmentScript's output. An environment the
// resolver cannot reproduce pip in (no pip, another pip release) is an
// ErrUnsupported.
func ParseEnvironment(b []byte) (*Environment, error) {
	var env Environment
	if err := json.Unmarshal(b, &env); err != nil {
		return nil, fmt.Errorf("read the base's python environment: %w", err)
	}
	if err := env.check(); err != nil {
		return nil, err
	}
	return &env, nil
}

func (env *Environment) check() error {
	switch {
	case env.Error != "":
		return fmt.Errorf("the base's pip could not describe its interpreter (%s): %w", env.Error, ErrUnsupported)
	case !strings.HasPrefix(env.Pip+".", PipVersion+"."):
		return fmt.Errorf("the base has pip %s; the builtin resolver reproduces pip %s: %w", env.Pip, PipVersion, ErrUnsupported)
	case env.Packaging != "21.3":
		return fmt.Errorf("the base's pip vendors packaging %s, not 21.3: %w", env.Packaging, ErrUnsupported)
	case len(env.Tags) == 0 || env.PyVersion == "" || env.Markers == nil:
		return fmt.Errorf("the base's python environment is incomplete: %w", ErrUnsupported)
	}
	if _, err := pep440.Parse(env.PythonVersion); err != nil {
		return fmt.Errorf("the base's python version %q: %w", env.PythonVersion, ErrUnsupported)
	}
	for _, t := range env.Tags {
		if _, err := pydist.ParseTag(t); err != nil {
			return fmt.Errorf("the base's python environment: %v: %w", err, ErrUnsupported)
		}
	}
	return nil
}

// markerEnv is the marker environment with extra set.
func (env *Environment) markerEnv(extra string) pep508.Env {
	m := make(pep508.Env, len(env.Markers)+1)
	for k, v := range env.Markers {
		m[k] = v
	}
	m["extra"] = extra
	return m
}
