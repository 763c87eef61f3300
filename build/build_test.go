package build

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/skillbuild/skillbuild/config"
	sbllb "github.com/skillbuild/skillbuild/llb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestImageConfig(t *testing.T) {
	t.Parallel()
	base := ocispec.Image{Config: ocispec.ImageConfig{
		Env:        []string{"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8", "VIRTUAL_ENV=/old"},
		Entrypoint: []string{"/docker-entrypoint.sh"},
		User:       "0",
		Labels:     map[string]string{"maintainer": "x"},
	}}
	b, err := json.Marshal(base)
	require.NoError(t, err)
	s := config.Skill{ID: "weather", Version: "3"}
	lock := sbllb.Lock{{Name: "a", Version: "1", SHA256: strings.Repeat("c", 64)}}
	out, err := imageConfig(b, s, lock, "docker.io/library/python@sha256:abc", "sha256:abc", map[string]string{"org.skillbuild.scan": "passed"})
	require.NoError(t, err)
	var img ocispec.Image
	require.NoError(t, json.Unmarshal(out, &img))

	assert.Equal(t, "65532:65532", img.Config.User, "non-root")
	assert.Equal(t, "/opt/skill", img.Config.WorkingDir)
	assert.Nil(t, img.Config.Entrypoint)
	assert.Equal(t, []string{"PATH=/opt/skill/venv/bin:/usr/local/bin:/usr/bin:/bin", "VIRTUAL_ENV=/opt/skill/venv", "PYTHONDONTWRITEBYTECODE=1", "LANG=C.UTF-8"}, img.Config.Env)
	l := img.Config.Labels
	assert.Equal(t, "weather", l[LabelSkillID])
	assert.Equal(t, "3", l[LabelSkillVersion])
	assert.Equal(t, "a==1 --hash=sha256:"+strings.Repeat("c", 64)+"\n", l[LabelLock])
	assert.Equal(t, lock.Digest().String(), l[LabelLockDigest])
	assert.Equal(t, "passed", l["org.skillbuild.scan"])
	assert.Equal(t, "x", l["maintainer"], "base labels kept")
	assert.Equal(t, int64(0), img.Created.Unix(), "reproducible: created is the epoch")
}

func TestLockLabelFitsContainerdLimit(t *testing.T) {
	t.Parallel()
	var lock sbllb.Lock
	for i := range 200 {
		lock = append(lock, sbllb.Dist{Name: fmt.Sprintf("p%03d", i), Version: "1.0", SHA256: strings.Repeat("d", 64)})
	}
	assert.LessOrEqual(t, len(lockLabel(lock[:10])), maxLabel)
	assert.Contains(t, lockLabel(lock[:10]), "--hash=sha256:")
	assert.NotContains(t, lockLabel(lock[:100]), "--hash", "past the limit only the pins")
	assert.LessOrEqual(t, len(lockLabel(lock[:100])), maxLabel)
	assert.Empty(t, lockLabel(append(lock, lock...)), "nothing rather than a label containerd refuses")
}

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
		{"unsafe wheel", "install evil==1.0", "exit code: 1", "wheelinstall: evil 1.0 (evil-1.0-py3-none-any.whl): refused: unsafe console script name '/etc/x'\n",
			[]string{"refused an unsafe wheel: evil 1.0", "unsafe console script name '/etc/x'"}},
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
	lock := sbllb.Lock{{Name: "a", Version: "1", Filename: "a-1.tar.gz", Sdist: true}}
	err := checkSdists(lock, false)
	assert.True(t, errdefs.IsInvalidArgument(err))
	assert.Contains(t, err.Error(), "--allow-sdist")
	assert.NoError(t, checkSdists(lock, true))
}

func TestCheckLayerContents(t *testing.T) {
	t.Parallel()
	const site = sbllb.VenvDir + "/lib/python3.11/site-packages"
	list := func(entries ...string) []byte {
		var b strings.Builder
		for _, e := range entries {
			typ, p, _ := strings.Cut(e, " ")
			fmt.Fprintf(&b, "[%q, %q]\n", typ, p)
		}
		return []byte(b.String())
	}
	a := sbllb.Lock{{Name: "a", Version: "1.0"}}
	b := sbllb.Lock{{Name: "b-c", Version: "2.0-1"}}
	good := [][]byte{
		list("d /opt", "d /opt/skill", "d "+sbllb.VenvDir, "d "+site, "d "+site+"/a-1.0.dist-info", "f "+site+"/ns/__init__.py", "d "+site+"/ns"),
		list("d "+site, "d "+site+"/B_c-2.0_1.dist-info", "d "+site+"/ns", "f "+site+"/ns/b.py",
			"d "+site+"/b_c/_vendor/x-9.dist-info", "l "+sbllb.VenvDir+"/bin/b-link"),
	}
	require.NoError(t, checkLayerContents([]sbllb.Lock{a, b}, good))

	tests := []struct {
		name  string
		locks []sbllb.Lock
		lists [][]byte
		want  []string
	}{
		{"file outside the venv", []sbllb.Lock{a}, [][]byte{list("d /etc", "f /etc/x", "d "+site+"/a-1.0.dist-info")},
			[]string{"writes outside the virtual environment", "a==1.0 writes /etc/x", "a==1.0 writes /etc;"}},
		{"link beside the venv", []sbllb.Lock{a}, [][]byte{list("l /opt/skill/venv2", "d "+site+"/a-1.0.dist-info")},
			[]string{"a==1.0 writes /opt/skill/venv2"}},
		{"another distribution's dist-info", []sbllb.Lock{a}, [][]byte{list("d "+site+"/a-1.0.dist-info", "d "+site+"/evil-6.6.dist-info")},
			[]string{"does not hold the distribution its lock entry names", "the layer of a==1.0 contains evil-6.6.dist-info"}},
		{"wrong version", []sbllb.Lock{a}, [][]byte{list("d " + site + "/a-2.0.dist-info")},
			[]string{"contains a-2.0.dist-info", "has no dist-info of a 1.0"}},
		{"no dist-info", []sbllb.Lock{a}, [][]byte{list("f " + site + "/a.py")}, []string{"has no dist-info of a 1.0"}},
		{"same file in two layers", []sbllb.Lock{a, b}, [][]byte{
			list("d "+site+"/a-1.0.dist-info", "f "+site+"/ns/__init__.py"),
			list("d "+site+"/b_c-2.0_1.dist-info", "f "+site+"/ns/__init__.py")},
			[]string{"overwrite each other's files", site + "/ns/__init__.py is written by both a==1.0 and b-c==2.0-1"}},
		{"a file where another layer has a directory", []sbllb.Lock{a, b}, [][]byte{
			list("d "+site+"/a-1.0.dist-info", "d "+site+"/x"),
			list("d "+site+"/b_c-2.0_1.dist-info", "f "+site+"/x")},
			[]string{site + "/x is written by both"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := checkLayerContents(tt.locks, tt.lists)
			var se *StepError
			require.ErrorAs(t, err, &se)
			assert.Equal(t, checkStep, se.Step)
			for _, w := range tt.want {
				assert.Contains(t, se.Error(), w)
			}
		})
	}
}

func TestCheckLayerContentsNamesAtMostTenProblems(t *testing.T) {
	t.Parallel()
	var entries []string
	for i := range 500 {
		entries = append(entries, fmt.Sprintf(`["f", "/etc/x%d"]`, i))
	}
	err := checkLayerContents([]sbllb.Lock{{{Name: "a", Version: "1"}}}, [][]byte{[]byte(strings.Join(entries, "\n"))})
	require.Error(t, err)
	assert.Equal(t, maxLayerProblems, strings.Count(err.Error(), " writes /etc/"))
	assert.Contains(t, err.Error(), "and 490 more")
}
