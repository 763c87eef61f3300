package engine

import (
	"context"
	"errors"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/skillbuild/skillbuild/config"
	"github.com/skillbuild/skillbuild/layers"
	sbllb "github.com/skillbuild/skillbuild/llb"
	"github.com/skillbuild/skillbuild/lock"
	"github.com/skillbuild/skillbuild/resolver"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestExplainResolveFailures(t *testing.T) {
	t.Parallel()
	s := config.Skill{Requirements: []config.Requirement{{Name: "foo", Raw: "foo==9", Source: "requirements.txt", Line: 3}}, Build: config.BuildLimits{MemoryBytes: 128 << 20}}
	cases := []struct {
		name, vertex, verr, log string
		want                    []string
	}{
		{"missing version", "resolve requirements", "exit code: 1",
			"ERROR: Could not find a version that satisfies the requirement foo==9 (from versions: 1.0, 2.0)\nERROR: No matching distribution found for foo==9\n",
			[]string{"foo", "requirements.txt:3", "1.0, 2.0"}},
		{"conflict", "resolve requirements", "exit code: 1",
			"ERROR: Cannot install a==1 and b==1 because these package versions have conflicting dependencies.\n\nThe conflict is caused by:\n    a 1 depends on c==1\n    b 1 depends on c==2\n",
			[]string{"a==1 and b==1", "a 1 depends on c==1", "b 1 depends on c==2"}},
		{"oom", "install foo==9", "exit code: 137", "", []string{"128 MiB", "--build-memory"}},
		{"child killed", "build wheel foo==9 from source", "exit code: 1", "error: subprocess-exited-with-error\n  exit code: -9\n", []string{"128 MiB"}},
		{"no venv", "create venv /opt/skill/venv", "exit code: 1", "Error: ensurepip", []string{"venv"}},
		{"unsafe wheel", "install evil==1.0", "exit code: 1", "wheelinstall: evil 1.0 (evil-1.0-py3-none-any.whl): refused: unsafe console script name '/etc/x'\n",
			[]string{"refused an unsafe wheel: evil 1.0", "unsafe console script name '/etc/x'"}},
		{"wheel over the venv", "install foo==9", "exit code: 1",
			"wheelinstall: foo 9 (foo-9-py3-none-any.whl): refused: it writes /opt/skill/venv/pyvenv.cfg (from 'foo-9.data/data/pyvenv.cfg'), which belongs to the virtual environment\n",
			[]string{`refused an unsafe wheel: foo 9 (foo-9-py3-none-any.whl; requirement "foo==9" at requirements.txt:3): writes /opt/skill/venv/pyvenv.cfg (from 'foo-9.data/data/pyvenv.cfg'), which belongs to the virtual environment`,
				"a distribution may only add files of its own", "remove foo from the requirements"}},
		{"dependency over another's file", "install bar==1", "exit code: 1",
			"wheelinstall: bar 1 (bar-1-py3-none-any.whl): refused: it writes /opt/skill/venv/bin/x (from 'entry point x'), which baz 2 already wrote: no file may be replaced\n",
			[]string{"bar 1 (bar-1-py3-none-any.whl; pulled in as a dependency): writes /opt/skill/venv/bin/x (from 'entry point x'), which baz 2 already wrote",
				"remove bar or the distribution that wrote the file first"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			col := newCollector()
			v := col.get("sha256:1")
			v.name, v.err, v.logs = tc.vertex, tc.verr, []byte(tc.log)
			err := explain(context.Background(), errors.New("solve failed"), s, nil, col)
			var se *StepError
			require.ErrorAs(t, err, &se)
			for _, w := range tc.want {
				assert.Contains(t, se.Error(), w)
			}
		})
	}
}

// TestExplainConflictNamesTheUsersLines feeds pip's own output for two
// requirements that need different versions of a third (as pip 23 prints
// it at its default verbosity) and expects the user's lines, where they
// came from, the package they fight over and what each side needs.
func TestExplainConflictNamesTheUsersLines(t *testing.T) {
	t.Parallel()
	s := config.Skill{Requirements: []config.Requirement{
		{Name: "a", Raw: "a>=1", Source: "skill.yaml", Line: 7},
		{Name: "b", Raw: "b", Source: "reqs/requirements.txt", Line: 2},
	}}
	log := `Processing /run/skillbuild/find-links/0/a-1.0-py3-none-any.whl (from -r /run/skillbuild/in/requirements.txt (line 1))
ERROR: Cannot install -r /run/skillbuild/in/requirements.txt (line 1) and -r /run/skillbuild/in/requirements.txt (line 2) because these package versions have conflicting dependencies.

The conflict is caused by:
    a 1.0 depends on c==1.0
    b 1.0 depends on c==2.0

To fix this you could try to:
1. loosen the range of package versions you've specified
`
	col := newCollector()
	v := col.get("sha256:1")
	v.name, v.err, v.logs = "resolve requirements", "exit code: 1", []byte(log)
	var se *StepError
	require.ErrorAs(t, explain(context.Background(), errors.New("solve failed"), s, nil, col), &se)
	msg := se.Error()
	for _, w := range []string{`"a>=1" (skill.yaml:7)`, `"b" (reqs/requirements.txt:2)`, "different versions of c", "a 1.0 depends on c==1.0", "b 1.0 depends on c==2.0"} {
		assert.Contains(t, msg, w)
	}
	assert.NotContains(t, msg, "/run/skillbuild", "no paths inside the build step")
	assert.Contains(t, se.Hint, "c")

	// A requirement of the user's own against a dependency's.
	log = "ERROR: Cannot install -r /run/skillbuild/in/requirements.txt (line 1) and c==2.0 because these package versions have conflicting dependencies.\n\nThe conflict is caused by:\n    The user requested c==2.0\n    a 1.0 depends on c==1.0\n"
	v.logs = []byte(log)
	require.ErrorAs(t, explain(context.Background(), errors.New("solve failed"), s, nil, col), &se)
	assert.Contains(t, se.Error(), "different versions of c")
	assert.Contains(t, se.Error(), "The user requested c==2.0")
}

func TestBaseMissingIsNotFound(t *testing.T) {
	t.Parallel()
	err := baseMissing("docker.io/library/python:3.11-slim", errors.New("dial tcp: no such host"))
	assert.True(t, errdefs.IsNotFound(err))
	assert.Contains(t, err.Error(), "skillbuild base import --rootfs")
}

func TestCheckSdists(t *testing.T) {
	t.Parallel()
	locked := lock.Lock{{Name: "a", Version: "1", Filename: "a-1.tar.gz", Sdist: true}}
	err := checkSdists(locked, false)
	assert.True(t, errdefs.IsInvalidArgument(err))
	assert.Contains(t, err.Error(), "--allow-sdist")
	assert.NoError(t, checkSdists(locked, true))
}

// TestLayerRefusalIsTheCheckStepsFailure: a layer check's refusal comes
// out of the build as the failure of the step that checks layers, with
// its reason and hint.
func TestLayerRefusalIsTheCheckStepsFailure(t *testing.T) {
	t.Parallel()
	err := layerStepError(layers.Check(nil, []lock.Lock{{{Name: "a", Version: "1"}}}, [][]byte{[]byte(`["f", "/etc/x"]`)}))
	var se *StepError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, sbllb.StepCheckLayers, se.Step)
	assert.Contains(t, se.Reason, "a==1 writes /etc/x")
	assert.NotEmpty(t, se.Hint)
	plain := errors.New("list the layer")
	assert.Equal(t, plain, layerStepError(plain), "other errors pass as they are")
}

func TestSocketDirMustLeaveRoomForBuildKitSockets(t *testing.T) {
	t.Parallel()
	assert.NoError(t, checkSocketDir("/run/user/1000/skillbuild/t-5bac3db9"))
	err := checkSocketDir("/tmp/skillbuild-rootless-2487137422/run/skillbuild/tmp-5bac3db9f302")
	assert.True(t, errdefs.IsInvalidArgument(err), "%v", err)
	assert.ErrorContains(t, err, "too long")
}

// TestExplainBuiltinAsPipExplains: the builtin resolver's refusals read
// as the pip path's do for the same refusal: the user's lines and where
// they came from, what each side needs, the versions the index has.
func TestExplainBuiltinAsPipExplains(t *testing.T) {
	t.Parallel()
	s := config.Skill{Requirements: []config.Requirement{
		{Name: "a", Raw: "a>=1", Source: "skill.yaml", Line: 7},
		{Name: "b", Raw: "b", Source: "reqs/requirements.txt", Line: 2},
	}}
	conflict := &resolver.ConflictError{
		Triggers: []string{"-r /run/skillbuild/in/requirements.txt (line 1)", "-r /run/skillbuild/in/requirements.txt (line 2)"},
		Causes:   []string{"a 1.0 depends on c==1.0", "b 1.0 depends on c==2.0"},
	}
	var se *StepError
	require.ErrorAs(t, explainBuiltin(context.Background(), conflict, s, nil), &se)
	assert.Equal(t, sbllb.StepResolve, se.Step)
	for _, w := range []string{`"a>=1" (skill.yaml:7)`, `"b" (reqs/requirements.txt:2)`, "different versions of c", "a 1.0 depends on c==1.0", "b 1.0 depends on c==2.0"} {
		assert.Contains(t, se.Error(), w)
	}
	assert.NotContains(t, se.Error(), "/run/skillbuild")

	// The same refusal through the pip path's log gives the same words.
	col := newCollector()
	v := col.get("sha256:1")
	v.name, v.err = "resolve requirements", "exit code: 1"
	v.logs = []byte("ERROR: Cannot install -r /run/skillbuild/in/requirements.txt (line 1) and -r /run/skillbuild/in/requirements.txt (line 2) because these package versions have conflicting dependencies.\n\nThe conflict is caused by:\n    a 1.0 depends on c==1.0\n    b 1.0 depends on c==2.0\n")
	var pse *StepError
	require.ErrorAs(t, explain(context.Background(), errors.New("solve failed"), s, nil, col), &pse)
	assert.Equal(t, pse.Reason, se.Reason)
	assert.Equal(t, pse.Hint, se.Hint)

	noMatch := &resolver.NoMatchError{Name: "b", Requirement: "b>=9", Versions: []string{"1.0", "2.0"}}
	require.ErrorAs(t, explainBuiltin(context.Background(), noMatch, s, nil), &se)
	assert.Contains(t, se.Error(), `no version of b matches "b>=9" (reqs/requirements.txt:2); the index has: 1.0, 2.0`)

	python := &resolver.PythonError{Message: "Package 'a' requires a different Python: 3.11.2 not in '>=3.12'"}
	require.ErrorAs(t, explainBuiltin(context.Background(), python, s, nil), &se)
	assert.Contains(t, se.Error(), "requires a different Python: 3.11.2 not in '>=3.12'")
	v.logs = []byte("ERROR: Ignored the following versions that require a different python version: 2.0 Requires-Python >=3.12\n" +
		"ERROR: Package 'a' requires a different Python: 3.11.2 not in '>=3.12'\n")
	require.ErrorAs(t, explain(context.Background(), errors.New("solve failed"), s, nil, col), &pse)
	assert.Equal(t, pse.Reason, se.Reason)
	assert.Equal(t, pse.Hint, se.Hint)
}
