package skill

import (
	"fmt"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/skillbuild/skillbuild/config"
	"github.com/skillbuild/skillbuild/runtime"
	"github.com/skillbuild/skillbuild/skill/api"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestErrorsSpeakTheFacesWords: the same bad request is explained with
// flags and commands to the command line, with request fields and
// endpoints to an API caller, classified alike.
func TestErrorsSpeakTheFacesWords(t *testing.T) {
	t.Parallel()
	bad := config.Input{Dir: "/", ID: "weather", Version: "1", BuildMemory: "lots", Set: map[string]bool{config.FlagBuildMemory: true}}
	for _, tc := range []struct {
		face      api.Face
		want, not string
	}{
		{api.FaceCLI, "--build-memory", "build_memory"},
		{api.FaceAPI, "build_memory", "--build-memory"},
	} {
		s, err := New(WithFace(tc.face))
		require.NoError(t, err)
		_, err = s.load(bad)
		require.Error(t, err)
		assert.ErrorIs(t, err, errdefs.ErrInvalidArgument)
		assert.Contains(t, err.Error(), tc.want)
		assert.NotContains(t, err.Error(), tc.not)

		_, err = s.scanPolicy("", false, []string{"@pip"})
		assert.ErrorIs(t, err, errdefs.ErrInvalidArgument)

		notFound := s.runError(fmt.Errorf("no such image: %w", runtime.ErrImageNotFound), config.Skill{ID: "weather", Version: "2"}, "", "atom-skill:weather-v2")
		assert.True(t, errdefs.IsNotFound(notFound))
		if tc.face == api.FaceAPI {
			assert.Contains(t, notFound.Error(), "POST /v1/install")
			assert.NotContains(t, notFound.Error(), "skillbuild install")
		} else {
			assert.Contains(t, notFound.Error(), "skillbuild install --version 2 weather")
		}
	}
}
