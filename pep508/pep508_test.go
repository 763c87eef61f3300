package pep508

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"sort"
	"testing"

	"github.com/skillbuild/skillbuild/pep440"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// golden is what pip's vendored packaging 21.3 made of testdata/cases.json
// (testdata/packaging21.py); PEP508_GOLDEN=1 regenerates it with the
// host's pip 23.0.x.
type golden struct {
	Requirements []struct {
		In, Kind, Name, Specifier, URL, Str, Marker string
		Extras                                      []string
	} `json:"requirements"`
	Markers []struct {
		In, Kind, Str, Eval string
	} `json:"markers"`
}

type cases struct {
	Env    Env      `json:"env"`
	Extras []string `json:"extras"`
}

func load(t *testing.T) (golden, cases) {
	t.Helper()
	if os.Getenv("PEP508_GOLDEN") == "1" {
		out, err := exec.Command("python3", "testdata/packaging21.py", "testdata/cases.json").Output()
		require.NoError(t, err)
		require.NoError(t, os.WriteFile("testdata/packaging21.json", out, 0o644))
	}
	var g golden
	var c cases
	for file, v := range map[string]any{"testdata/packaging21.json": &g, "testdata/cases.json": &c} {
		b, err := os.ReadFile(file)
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal(b, v))
	}
	return g, c
}

// TestRequirementsAgainstPackaging: every case parses (or fails) and
// renders as packaging 21.3's Requirement does.
func TestRequirementsAgainstPackaging(t *testing.T) {
	t.Parallel()
	g, _ := load(t)
	for _, c := range g.Requirements {
		r, err := ParseRequirement(c.In)
		switch c.Kind {
		case "invalid":
			assert.True(t, errors.Is(err, ErrInvalid) || errors.Is(err, pep440.ErrInvalidSpecifier), "%q: %v", c.In, err)
			continue
		case "legacy":
			assert.ErrorIs(t, err, pep440.ErrLegacySpecifier, "%q", c.In)
			continue
		}
		require.NoError(t, err, "%q", c.In)
		assert.Equal(t, c.Name, r.Name, "%q", c.In)
		ex := append([]string{}, r.Extras...)
		sort.Strings(ex)
		if len(ex) == 0 {
			ex = []string{}
		}
		assert.Equal(t, c.Extras, ex, "%q", c.In)
		assert.Equal(t, c.Specifier, r.Specifier.String(), "%q", c.In)
		assert.Equal(t, c.URL, r.URL, "%q", c.In)
		assert.Equal(t, c.Str, r.String(), "%q", c.In)
		m := ""
		if r.Marker != nil {
			m = r.Marker.String()
		}
		assert.Equal(t, c.Marker, m, "%q", c.In)
	}
}

// TestMarkersAgainstPackaging: every marker parses, renders and evaluates
// (with each extra of the cases, in the host's environment) as packaging
// 21.3 does; "E" is an evaluation packaging refuses.
func TestMarkersAgainstPackaging(t *testing.T) {
	t.Parallel()
	g, c := load(t)
	for _, m := range g.Markers {
		mk, err := ParseMarker(m.In)
		if m.Kind == "invalid" {
			assert.ErrorIs(t, err, ErrInvalid, "%q", m.In)
			continue
		}
		require.NoError(t, err, "%q", m.In)
		assert.Equal(t, m.Str, mk.String(), "%q", m.In)
		got := ""
		for _, extra := range c.Extras {
			env := Env{}
			for k, v := range c.Env {
				env[k] = v
			}
			env["extra"] = extra
			ok, err := mk.Evaluate(env)
			switch {
			case err != nil:
				assert.ErrorIs(t, err, ErrUnsupported)
				got += "E"
			case ok:
				got += "1"
			default:
				got += "0"
			}
		}
		assert.Equal(t, m.Eval, got, "%q", m.In)
	}
}
