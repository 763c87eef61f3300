package pep440

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// golden is what pip's vendored packaging 21.3 said about testdata/cases.json
// (testdata/packaging21.py). PEP440_GOLDEN=1 regenerates it with the
// host's pip (23.0.x).
type golden struct {
	Versions []struct {
		In        string `json:"in"`
		Valid     bool   `json:"valid"`
		Str       string `json:"str"`
		Canonical string `json:"canonical"`
		Public    string `json:"public"`
		Base      string `json:"base"`
		Pre       bool   `json:"pre"`
		Post      bool   `json:"post"`
		Local     string `json:"local"`
	} `json:"versions"`
	Order      []int `json:"order"`
	Specifiers []struct {
		In          string `json:"in"`
		Kind        string `json:"kind"`
		Str         string `json:"str"`
		Prereleases bool   `json:"prereleases"`
		Contains    string `json:"contains"`
		ContainsPre string `json:"contains_pre"`
	} `json:"specifiers"`
	Sets []struct {
		In          string   `json:"in"`
		Kind        string   `json:"kind"`
		Str         string   `json:"str"`
		Prereleases *bool    `json:"prereleases"`
		Contains    string   `json:"contains"`
		ContainsPre string   `json:"contains_pre"`
		Filter      []string `json:"filter"`
		FilterPre   []string `json:"filter_pre"`
	} `json:"sets"`
}

func loadGolden(t *testing.T) golden {
	t.Helper()
	if os.Getenv("PEP440_GOLDEN") == "1" {
		out, err := exec.Command("python3", "testdata/packaging21.py", "testdata/cases.json").Output()
		require.NoError(t, err)
		require.NoError(t, os.WriteFile("testdata/packaging21.json", out, 0o644))
	}
	b, err := os.ReadFile("testdata/packaging21.json")
	require.NoError(t, err)
	var g golden
	require.NoError(t, json.Unmarshal(b, &g))
	return g
}

// TestVersionsAgainstPackaging: parsing, normalizing and ordering agree
// with packaging 21.3 on every case.
func TestVersionsAgainstPackaging(t *testing.T) {
	t.Parallel()
	g := loadGolden(t)
	var valid []*Version
	for _, c := range g.Versions {
		v, err := Parse(c.In)
		if !c.Valid {
			assert.ErrorIs(t, err, ErrInvalidVersion, "%q", c.In)
			continue
		}
		require.NoError(t, err, "%q", c.In)
		valid = append(valid, v)
		assert.Equal(t, c.Str, v.String(), "str(%q)", c.In)
		assert.Equal(t, c.Canonical, v.Canonical(), "canonical(%q)", c.In)
		assert.Equal(t, c.Public, v.Public().String(), "public(%q)", c.In)
		assert.Equal(t, c.Base, v.Base().String(), "base(%q)", c.In)
		assert.Equal(t, c.Pre, v.IsPrerelease(), "pre(%q)", c.In)
		assert.Equal(t, c.Post, v.IsPostrelease(), "post(%q)", c.In)
		assert.Equal(t, c.Local, v.Local(), "local(%q)", c.In)
	}
	require.Len(t, g.Order, len(valid))
	for i := range valid {
		for j := range valid {
			want := cmpInt(g.Order[i], g.Order[j])
			assert.Equal(t, want, valid[i].Compare(valid[j]), "compare(%s, %s)", valid[i], valid[j])
		}
	}
}

func bits(vs []*Version, f func(*Version) bool) string {
	b := make([]byte, len(vs))
	for i, v := range vs {
		b[i] = '0'
		if f(v) {
			b[i] = '1'
		}
	}
	return string(b)
}

// TestSpecifiersAgainstPackaging: every clause and set parses, prints,
// matches and filters the versions as packaging 21.3 does, with and
// without pre-releases allowed.
func TestSpecifiersAgainstPackaging(t *testing.T) {
	t.Parallel()
	g := loadGolden(t)
	var valid []*Version
	for _, c := range g.Versions {
		if c.Valid {
			valid = append(valid, MustParse(c.In))
		}
	}
	yes := true
	for _, c := range g.Specifiers {
		sp, err := ParseSpecifier(c.In)
		switch c.Kind {
		case "invalid":
			assert.ErrorIs(t, err, ErrInvalidSpecifier, "%q", c.In)
			continue
		case "legacy":
			assert.ErrorIs(t, err, ErrLegacySpecifier, "%q", c.In)
			continue
		}
		require.NoError(t, err, "%q", c.In)
		assert.Equal(t, c.Str, sp.String(), "%q", c.In)
		assert.Equal(t, c.Prereleases, sp.Prereleases(), "prereleases(%q)", c.In)
		assert.Equal(t, c.Contains, bits(valid, func(v *Version) bool { return sp.Contains(v, nil) }), "contains(%q)", c.In)
		assert.Equal(t, c.ContainsPre, bits(valid, func(v *Version) bool { return sp.Contains(v, &yes) }), "contains(%q, pre)", c.In)
	}
	for _, c := range g.Sets {
		set, err := ParseSpecifierSet(c.In)
		switch c.Kind {
		case "invalid":
			assert.True(t, errors.Is(err, ErrInvalidSpecifier), "%q: %v", c.In, err)
			continue
		case "legacy":
			assert.ErrorIs(t, err, ErrLegacySpecifier, "%q", c.In)
			continue
		}
		require.NoError(t, err, "%q", c.In)
		assert.Equal(t, c.Str, set.String(), "%q", c.In)
		assert.Equal(t, c.Prereleases, set.Prereleases(), "prereleases(%q)", c.In)
		assert.Equal(t, c.Contains, bits(valid, func(v *Version) bool { return set.Contains(v, nil) }), "contains(%q)", c.In)
		assert.Equal(t, c.ContainsPre, bits(valid, func(v *Version) bool { return set.Contains(v, &yes) }), "contains(%q, pre)", c.In)
		assert.Equal(t, c.Filter, strs(set.Filter(valid, nil)), "filter(%q)", c.In)
		assert.Equal(t, c.FilterPre, strs(set.Filter(valid, &yes)), "filter(%q, pre)", c.In)
	}
}

func strs(vs []*Version) []string {
	out := []string{}
	for _, v := range vs {
		out = append(out, v.String())
	}
	return out
}

func TestAnd(t *testing.T) {
	t.Parallel()
	a, err := ParseSpecifierSet(">=1.0,<2")
	require.NoError(t, err)
	b, err := ParseSpecifierSet(">=1.0.0,!=1.5")
	require.NoError(t, err)
	assert.Equal(t, "!=1.5,<2,>=1.0", a.And(b).String())
	assert.Equal(t, 3, a.And(b).Len())
}
