package llb

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/skillbuild/skillbuild/config"
	"github.com/skillbuild/skillbuild/labels"
	"github.com/skillbuild/skillbuild/lock"
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
	locked := lock.Lock{{Name: "a", Version: "1", SHA256: strings.Repeat("c", 64)}}
	out, err := ImageConfig(b, s, locked, "docker.io/library/python@sha256:abc", "sha256:abc", map[string]string{"org.skillbuild.scan": "passed"})
	require.NoError(t, err)
	var img ocispec.Image
	require.NoError(t, json.Unmarshal(out, &img))

	assert.Equal(t, "65532:65532", img.Config.User, "non-root")
	assert.Equal(t, "/opt/skill", img.Config.WorkingDir)
	assert.Nil(t, img.Config.Entrypoint)
	assert.Equal(t, []string{"PATH=/opt/skill/venv/bin:/usr/local/bin:/usr/bin:/bin", "VIRTUAL_ENV=/opt/skill/venv", "PYTHONDONTWRITEBYTECODE=1", "LANG=C.UTF-8"}, img.Config.Env)
	l := img.Config.Labels
	assert.Equal(t, "weather", l[labels.SkillID])
	assert.Equal(t, "3", l[labels.SkillVersion])
	assert.Equal(t, "a==1 --hash=sha256:"+strings.Repeat("c", 64)+"\n", l[labels.Lock])
	assert.Equal(t, locked.Digest().String(), l[labels.LockDigest])
	assert.Equal(t, "passed", l["org.skillbuild.scan"])
	assert.Equal(t, "x", l["maintainer"], "base labels kept")
	assert.Equal(t, int64(0), img.Created.Unix(), "reproducible: created is the epoch")
	assert.NotContains(t, l, labels.Preload, "no preload list, no label")

	s.Preload = []string{"json", "xml.dom"}
	out, err = ImageConfig(b, s, locked, "docker.io/library/python@sha256:abc", "sha256:abc", nil)
	require.NoError(t, err)
	img = ocispec.Image{}
	require.NoError(t, json.Unmarshal(out, &img))
	assert.Equal(t, "json,xml.dom", img.Config.Labels[labels.Preload], "the warm runner's modules")
}

func TestLockLabelFitsContainerdLimit(t *testing.T) {
	t.Parallel()
	var locked lock.Lock
	for i := range 200 {
		locked = append(locked, lock.Dist{Name: fmt.Sprintf("p%03d", i), Version: "1.0", SHA256: strings.Repeat("d", 64)})
	}
	assert.LessOrEqual(t, len(LockLabel(locked[:10])), maxLabel)
	assert.Contains(t, LockLabel(locked[:10]), "--hash=sha256:")
	assert.NotContains(t, LockLabel(locked[:100]), "--hash", "past the limit only the pins")
	assert.LessOrEqual(t, len(LockLabel(locked[:100])), maxLabel)
	assert.Empty(t, LockLabel(append(locked, locked...)), "nothing rather than a label containerd refuses")
}
