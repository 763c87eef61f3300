package store

import (
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/skillbuild/skillbuild/labels"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSkillImage(t *testing.T) {
	t.Parallel()
	created := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	dgst := digest.FromString("manifest")
	skillLabels := map[string]string{
		labels.SkillID: "weather", labels.SkillVersion: "3", labels.Packages: "12", labels.LockDigest: "sha256:abc",
	}
	cases := []struct {
		name string
		img  images.Image
		want SkillImage
		ok   bool
	}{{
		name: "skill image",
		img:  images.Image{Name: "docker.io/library/atom-skill:weather-v3", Labels: skillLabels, Target: ocispec.Descriptor{Digest: dgst}, CreatedAt: created},
		want: SkillImage{ID: "weather", Version: "3", Tag: "atom-skill:weather-v3", Name: "docker.io/library/atom-skill:weather-v3",
			Digest: dgst, Packages: 12, LockDigest: "sha256:abc", Created: created},
		ok: true,
	}, {
		name: "other repository",
		img:  images.Image{Name: "registry.example/team/skills:weather-v3", Labels: skillLabels},
		want: SkillImage{ID: "weather", Version: "3", Tag: "registry.example/team/skills:weather-v3", Name: "registry.example/team/skills:weather-v3",
			Packages: 12, LockDigest: "sha256:abc"},
		ok: true,
	}, {
		name: "no packages label",
		img:  images.Image{Name: "docker.io/library/atom-skill:empty-v1", Labels: map[string]string{labels.SkillID: "empty", labels.SkillVersion: "1"}},
		want: SkillImage{ID: "empty", Version: "1", Tag: "atom-skill:empty-v1", Name: "docker.io/library/atom-skill:empty-v1"},
		ok:   true,
	}, {
		name: "base image",
		img:  images.Image{Name: "localhost/skillbuild/python:3.11-bookworm", Labels: map[string]string{}},
	}, {
		name: "staging name",
		img:  images.Image{Name: StagingPrefix + "weather:0123456789abcdef", Labels: skillLabels},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, ok := skillImage(tc.img)
			assert.Equal(t, tc.ok, ok)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestSortImages(t *testing.T) {
	t.Parallel()
	imgs := []SkillImage{
		{ID: "b", Version: "1"},
		{ID: "a", Version: "10"},
		{ID: "a", Version: "2"},
		{ID: "a", Version: "2.1"},
		{ID: "a", Version: "1.10"},
		{ID: "a", Version: "1.9"},
	}
	sortImages(imgs)
	var got []string
	for _, s := range imgs {
		got = append(got, s.ID+"@"+s.Version)
	}
	assert.Equal(t, []string{"a@1.9", "a@1.10", "a@2", "a@2.1", "a@10", "b@1"}, got)
}

func TestLessVersion(t *testing.T) {
	t.Parallel()
	cases := []struct {
		a, b string
		want bool
	}{
		{"1", "2", true},
		{"2", "10", true},
		{"10", "2", false},
		{"1", "1", false},
		{"1", "1.0", true},
		{"1.2", "1.10", true},
		{"x", "y", true}, // not numeric: string order
		{"1.x", "1.2", false},
	}
	for _, tc := range cases {
		t.Run(tc.a+"<"+tc.b, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tc.want, lessVersion(tc.a, tc.b))
		})
	}
}

func TestListOptions(t *testing.T) {
	t.Parallel()
	var o listOptions
	require.NoError(t, WithSkill("weather", "")(&o))
	assert.True(t, o.match(SkillImage{ID: "weather", Version: "1"}))
	assert.True(t, o.match(SkillImage{ID: "weather", Version: "2"}))
	assert.False(t, o.match(SkillImage{ID: "weather-x", Version: "1"}))

	require.NoError(t, WithSkill("weather", "2")(&o))
	assert.False(t, o.match(SkillImage{ID: "weather", Version: "1"}))
	assert.True(t, o.match(SkillImage{ID: "weather", Version: "2"}))

	assert.True(t, listOptions{}.match(SkillImage{ID: "any", Version: "9"}), "no filter matches all")

	assert.ErrorIs(t, WithSkill("", "1")(&o), errdefs.ErrInvalidArgument)
	assert.ErrorIs(t, WithUnpackedSize("")(&o), errdefs.ErrInvalidArgument)
}

func TestUsageSub(t *testing.T) {
	t.Parallel()
	before := Usage{Blobs: 10, ContentBytes: 5000, Snapshots: 4, SnapshotBytes: 9000}
	after := Usage{Blobs: 7, ContentBytes: 3000, Snapshots: 3, SnapshotBytes: 1000}
	assert.Equal(t, Usage{Blobs: 3, ContentBytes: 2000, Snapshots: 1, SnapshotBytes: 8000}, before.Sub(after))
	assert.Equal(t, Usage{}, before.Sub(before))
}
