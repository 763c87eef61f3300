package spec

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/skillbuild/skillbuild/config"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func skill(t *testing.T) config.Skill {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "a-1.0-py3-none-any.whl"), []byte("wheel"), 0o644))
	return config.Skill{
		ID: "weather", Version: "1", Repo: "docker.io/library/atom-skill", Base: "docker.io/library/python:3.11-slim",
		Requirements: []config.Requirement{{Raw: "requests>=2", Name: "requests", Specifier: ">=2"}},
		Index:        config.Index{URL: "http://127.0.0.1:9/simple", FindLinks: []string{dir}},
		Build:        config.BuildLimits{MemoryBytes: 512 << 20, CPUs: 1, Pids: 100, Timeout: time.Minute},
	}
}

// TestDigestCoversWhatDeterminesTheBuild: every input that changes what a
// build produces changes the digest; limits and the vulnerability policy
// (checked again on every reuse) do not.
func TestDigestCoversWhatDeterminesTheBuild(t *testing.T) {
	t.Parallel()
	s := skill(t)
	want, err := Digest(s, Layering{})
	require.NoError(t, err)
	again, err := Digest(s, Layering{})
	require.NoError(t, err)
	require.Equal(t, want, again, "deterministic")

	changes := map[string]func(*config.Skill, *Layering){
		"requirement": func(s *config.Skill, _ *Layering) { s.Requirements[0].Raw = "requests>=3" },
		"more reqs": func(s *config.Skill, _ *Layering) {
			s.Requirements = append(s.Requirements, config.Requirement{Raw: "idna"})
		},
		"version":      func(s *config.Skill, _ *Layering) { s.Version = "2" },
		"id":           func(s *config.Skill, _ *Layering) { s.ID = "other" },
		"repo":         func(s *config.Skill, _ *Layering) { s.Repo = "docker.io/library/other" },
		"base":         func(s *config.Skill, _ *Layering) { s.Base = "docker.io/library/python:3.12-slim" },
		"index":        func(s *config.Skill, _ *Layering) { s.Index.URL = "http://127.0.0.1:10/simple" },
		"extra index":  func(s *config.Skill, _ *Layering) { s.Index.ExtraURLs = []string{"http://127.0.0.1:11/simple"} },
		"allow sdist":  func(s *config.Skill, _ *Layering) { s.Index.AllowSdist = true },
		"max layers":   func(_ *config.Skill, l *Layering) { l.MaxLayers = 5 },
		"single layer": func(_ *config.Skill, l *Layering) { l.SingleLayer = true },
		"preload":      func(s *config.Skill, _ *Layering) { s.Preload = []string{"json"} },
		"new wheel in find-links": func(s *config.Skill, _ *Layering) {
			require.NoError(t, os.WriteFile(filepath.Join(s.Index.FindLinks[0], "a-2.0-py3-none-any.whl"), []byte("wheel"), 0o644))
		},
	}
	for name, change := range changes {
		s, l := skill(t), Layering{}
		base, err := Digest(s, l)
		require.NoError(t, err)
		s.Requirements = append([]config.Requirement(nil), s.Requirements...)
		change(&s, &l)
		got, err := Digest(s, l)
		require.NoError(t, err)
		assert.NotEqual(t, base, got, "changing %s changes the digest", name)
	}

	same := map[string]func(*config.Skill){
		"build limits": func(s *config.Skill) {
			s.Build = config.BuildLimits{MemoryBytes: 1 << 30, CPUs: 2, Pids: 10, Timeout: time.Hour}
		},
		"run limits": func(s *config.Skill) { s.Run.MemoryBytes = 1 << 20 },
		"policy":     func(s *config.Skill) { s.Policy = config.Policy{MinSeverity: "high", AllowStaleDB: true} },
		"requirement source": func(s *config.Skill) {
			s.Requirements = []config.Requirement{{Raw: "requests>=2", Name: "requests", Source: "requirements.txt", Line: 3}}
		},
	}
	for name, change := range same {
		s := skill(t)
		base, err := Digest(s, Layering{})
		require.NoError(t, err)
		change(&s)
		got, err := Digest(s, Layering{})
		require.NoError(t, err)
		assert.Equal(t, base, got, "changing %s keeps the digest", name)
	}
}

func TestDigestMissingFindLinksDir(t *testing.T) {
	t.Parallel()
	s := skill(t)
	s.Index.FindLinks = []string{filepath.Join(t.TempDir(), "missing")}
	_, err := Digest(s, Layering{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "missing")
}

// TestIndexDigest: the index settings' digest changes with the index URLs,
// the find-links listings and allow-sdist, and not with anything an
// incremental resolve extends (requirements, version, base, limits).
func TestIndexDigest(t *testing.T) {
	t.Parallel()
	s := skill(t)
	want, err := IndexDigest(s)
	require.NoError(t, err)
	same := map[string]func(*config.Skill){
		"requirements": func(s *config.Skill) {
			s.Requirements = append(s.Requirements, config.Requirement{Raw: "idna", Name: "idna"})
		},
		"version": func(s *config.Skill) { s.Version = "2" },
		"base":    func(s *config.Skill) { s.Base = "docker.io/library/python:3.12-slim" },
		"limits":  func(s *config.Skill) { s.Build.MemoryBytes = 1 << 30 },
	}
	for name, change := range same {
		c := skill(t)
		c.Index.FindLinks = s.Index.FindLinks
		change(&c)
		got, err := IndexDigest(c)
		require.NoError(t, err)
		assert.Equal(t, want, got, name)
	}
	changed := map[string]func(*config.Skill){
		"index url":   func(s *config.Skill) { s.Index.URL = "http://127.0.0.1:10/simple" },
		"extra url":   func(s *config.Skill) { s.Index.ExtraURLs = []string{"http://127.0.0.1:11/simple"} },
		"allow sdist": func(s *config.Skill) { s.Index.AllowSdist = true },
		"find-links listing": func(s *config.Skill) {
			require.NoError(t, os.WriteFile(filepath.Join(s.Index.FindLinks[0], "a-2.0-py3-none-any.whl"), []byte("w"), 0o644))
		},
	}
	for name, change := range changed {
		c := skill(t)
		c.Index.FindLinks = []string{t.TempDir()}
		require.NoError(t, os.WriteFile(filepath.Join(c.Index.FindLinks[0], "a-1.0-py3-none-any.whl"), []byte("wheel"), 0o644))
		base, err := IndexDigest(c)
		require.NoError(t, err)
		change(&c)
		got, err := IndexDigest(c)
		require.NoError(t, err)
		assert.NotEqual(t, base, got, name)
	}
}
