package registry

import (
	"testing"

	"github.com/containerd/errdefs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseRef(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in, want string
		bad      bool
	}{
		{in: "127.0.0.1:5000/skills/weather:v1", want: "127.0.0.1:5000/skills/weather:v1"},
		{in: "registry.example.com/a/b@sha256:" + sixtyFour, want: "registry.example.com/a/b@sha256:" + sixtyFour},
		{in: "127.0.0.1:5000/skills/weather", bad: true},
		{in: "Upper/Case:v1", bad: true},
		{in: "", bad: true},
	} {
		got, err := ParseRef(tc.in)
		if tc.bad {
			assert.True(t, errdefs.IsInvalidArgument(err), "%q: %v", tc.in, err)
			continue
		}
		require.NoError(t, err, tc.in)
		assert.Equal(t, tc.want, got.String())
	}
}

const sixtyFour = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestExpandRef(t *testing.T) {
	t.Parallel()
	got, err := ExpandRef("127.0.0.1:5000/skills/{id}:v{version}", "weather", "3")
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:5000/skills/weather:v3", got.String())

	_, err = ExpandRef("127.0.0.1:5000/skills/{name}:v1", "weather", "3")
	assert.True(t, errdefs.IsInvalidArgument(err), "%v", err)
	_, err = ExpandRef("127.0.0.1:5000/skills/{id}", "weather", "3")
	assert.True(t, errdefs.IsInvalidArgument(err), "no tag: %v", err)
}

func TestNamesRegistry(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]bool{
		"atom-skill:x-v1":                 false,
		"library/python:3":                false,
		"127.0.0.1:5000/a:b":              true,
		"localhost/skillbuild/python:3.1": true,
		"registry.example.com/a/b:c":      true,
		"docker.io/library/python:3":      false,
		"docker.io/skills/weather:v1":     true,
	} {
		assert.Equal(t, want, NamesRegistry(in), in)
	}
}
