package integration

import (
	"context"
	"testing"

	"github.com/skillbuild/skillbuild/internal/pyindex"
	sbllb "github.com/skillbuild/skillbuild/llb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The embedded builder checks the distribution layers from the exported
// image, after the export and before the tag: two distributions writing
// one file still fail the build with the path and both names, the skill's
// tag stays on its last good image, nothing of the build is left (staging
// image, temporary leases, step containers), and a rebuild whose layer
// lists come from the cache fails the same way.
func TestLayerCheckOfExportedLayersFailsBeforeTheTag(t *testing.T) {
	srv, _ := index(t,
		pyindex.Wheel{Name: "tagclash-one", Version: "1.0", NoPackage: true, Files: map[string]string{"tagclash/__init__.py": "WHO = 1\n"}},
		pyindex.Wheel{Name: "tagclash-two", Version: "1.0", NoPackage: true, Files: map[string]string{"tagclash/__init__.py": "WHO = 2\n"}},
	)
	good, r := install(t, srv, "tagclash", nil, "tagclash-one")
	require.Equal(t, 0, r.code, r.stderr)

	for _, attempt := range []string{"first", "lists from the cache"} {
		bad, r := install(t, srv, "tagclash", nil, "tagclash-one", "tagclash-two")
		assert.Equal(t, 1, r.code, attempt)
		assert.False(t, bad.Success, attempt)
		assert.Contains(t, bad.Error, "overwrite each other's files", attempt)
		assert.Contains(t, bad.Error, "tagclash/__init__.py is written by both tagclash-one==1.0 and tagclash-two==1.0", attempt)
		for _, s := range bad.Steps {
			assert.NotContains(t, s, sbllb.StepCheckLayers, "%s: no listing step: the engine reads the exported layers", attempt)
		}

		img, err := suiteClient(t).ImageService().Get(context.Background(), fullName(t, "atom-skill:tagclash-v1"))
		require.NoError(t, err)
		assert.Equal(t, good.Digest, img.Target.Digest.String(), "%s: the failed rebuild did not move the tag", attempt)
		assertRootClean(t, env.root)
	}
}
