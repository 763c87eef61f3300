package server

import (
	"bytes"
	"strings"
	"testing"

	"github.com/skillbuild/skillbuild/skill/api"
	"github.com/stretchr/testify/assert"
)

// TestPoolMetricsPerImage: each image's pool state comes with its label,
// escaped as the text format wants, one family after the other.
func TestPoolMetricsPerImage(t *testing.T) {
	t.Parallel()
	st := api.PoolStats{Images: map[string]api.PoolImageStats{
		"docker.io/library/skill-a:v1": {Ready: 3, Starting: 1, Target: 5, Hits: 20, Misses: 1, Waited: 4},
		"odd\\name\"with\nline":        {Target: 2},
	}}
	var buf bytes.Buffer
	newMetrics().write(&buf, poolMetrics(st))
	text := buf.String()
	for _, want := range []string{
		`skillbuild_pool_image_ready{image="docker.io/library/skill-a:v1"} 3`,
		`skillbuild_pool_image_starting{image="docker.io/library/skill-a:v1"} 1`,
		`skillbuild_pool_image_target{image="docker.io/library/skill-a:v1"} 5`,
		`skillbuild_pool_image_hits_total{image="docker.io/library/skill-a:v1"} 20`,
		`skillbuild_pool_image_misses_total{image="docker.io/library/skill-a:v1"} 1`,
		`skillbuild_pool_image_waited_total{image="docker.io/library/skill-a:v1"} 4`,
		"# TYPE skillbuild_pool_image_hits_total counter",
		"# TYPE skillbuild_pool_image_target gauge",
		`skillbuild_pool_image_target{image="odd\\name\"with\nline"} 2`,
	} {
		assert.Contains(t, text, want)
	}
	// The samples of a family are together, after its one TYPE line.
	seen := map[string]bool{}
	last := ""
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		name, _, _ := strings.Cut(line, "{")
		name, _, _ = strings.Cut(name, " ")
		if name != last {
			assert.False(t, seen[name], "samples of %s apart", name)
			seen[name] = true
			last = name
		}
		if strings.HasPrefix(name, "skillbuild_pool_") {
			assert.Equal(t, 1, strings.Count(text, "# TYPE "+name+" "), name)
		}
	}
}

func TestLabelString(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"plain:v1": `{image="plain:v1"}`,
		`a"b`:      `{image="a\"b"}`,
		`a\b`:      `{image="a\\b"}`,
		"a\nb":     `{image="a\nb"}`,
		"é\tx":     "{image=\"é\tx\"}", // the format takes them as they are
		"":         `{image=""}`,
	} {
		assert.Equal(t, want, labelString(map[string]string{"image": in}), in)
	}
}
