package engine

import (
	"context"
	"errors"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/skillbuild/skillbuild/config"
	"github.com/skillbuild/skillbuild/lock"
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
		{"oom", "install foo==9", "exit code: 137", "", []string{"128m", "--build-memory"}},
		{"child killed", "build wheel foo==9 from source", "exit code: 1", "error: subprocess-exited-with-error\n  exit code: -9\n", []string{"128m"}},
		{"no venv", "create venv /opt/skill/venv", "exit code: 1", "Error: ensurepip", []string{"venv"}},
		{"conflicting files", "check layers for conflicting files", "exit code: 1", "conflict: /x/y.py is written by both a and b\n", []string{"/x/y.py is written by both a and b"}},
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

func TestFindConflicts(t *testing.T) {
	t.Parallel()
	lists := [][]byte{
		[]byte("a-1.0\tlib/python3.11/site-packages/ns/__init__.py\na-1.0\tlib/python3.11/site-packages/a/x.py\n"),
		[]byte("b-2.0\tlib/python3.11/site-packages/ns/__init__.py\nb-2.0\tlib/python3.11/site-packages/b/y.py\n"),
		[]byte("c-1.0\tlib/python3.11/site-packages/c/z.py\n"),
	}
	assert.Equal(t, []string{"lib/python3.11/site-packages/ns/__init__.py is written by both a-1.0 and b-2.0"}, findConflicts(lists))
	assert.Empty(t, findConflicts(lists[1:]), "namespace directories shared without a shared file are fine")
}
