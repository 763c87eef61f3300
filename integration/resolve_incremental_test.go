package integration

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/platforms"
	"github.com/distribution/reference"
	"github.com/skillbuild/skillbuild/internal/attest"
	"github.com/skillbuild/skillbuild/internal/pyindex"
	"github.com/skillbuild/skillbuild/labels"
	sbllb "github.com/skillbuild/skillbuild/llb"
	"github.com/skillbuild/skillbuild/lock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// lockDocument reads the lock document attached to the image tagged tag
// and the lock digest its record carries.
func lockDocument(t *testing.T, tag string) (lock.Document, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := client.New(env.socket, client.WithDefaultNamespace(namespace))
	require.NoError(t, err)
	defer c.Close()
	named, err := reference.ParseNormalizedNamed(tag)
	require.NoError(t, err)
	rec, err := c.ImageService().Get(ctx, named.String())
	require.NoError(t, err)
	sts, _, err := attest.Read(ctx, c.ContentStore(), rec.Target, platforms.Default())
	require.NoError(t, err)
	st := attest.Find(sts, lock.DocumentPredicate)
	require.NotNil(t, st, "the image of %s carries a lock document", tag)
	doc, err := lock.ParseDocument(st.Predicate)
	require.NoError(t, err)
	return doc, rec.Labels[labels.LockDigest]
}

// TestResolveIncremental: a skill whose requirements only add to the
// previous image's resolves only what was added (on a view of the
// previous lock installed, metadata only) and gets exactly the lock a full
// --refresh resolve gives (an extra of an already locked distribution
// included, which only the recorded metadata tells); a removed
// requirement, and an added one that needs a locked distribution
// upgraded, resolve everything.
func TestResolveIncremental(t *testing.T) {
	srv, dir := index(t,
		pyindex.Wheel{Name: "inc-lib", Version: "1.0"},
		pyindex.Wheel{Name: "inc-speed", Version: "1.0"},
		pyindex.Wheel{Name: "inc-a", Version: "1.0", ProvidesExtra: []string{"fast"},
			Requires: []string{"inc-lib>=1.0", `inc-speed; extra == "fast"`}},
		// inc-c needs inc-a with its extra: only inc-a's recorded metadata
		// (Provides-Extra, the extra's Requires-Dist) brings inc-speed in.
		pyindex.Wheel{Name: "inc-c", Version: "1.0", Requires: []string{"inc-a[fast]"}},
	)
	// The incremental resolve of pip's (a view of the lock installed); the
	// builtin resolver's is TestResolverBothWaysSameImage's.
	pipOnly := filepath.Join(t.TempDir(), "skill.yaml")
	require.NoError(t, os.WriteFile(pipOnly, []byte("resolver: pip\n"), 0o644))
	run := func(id string, extra []string, reqs ...string) installJSON {
		t.Helper()
		out, r := install(t, srv, id, append([]string{"-f", pipOnly}, extra...), reqs...)
		require.Equal(t, 0, r.code, r.stderr)
		require.True(t, out.Success, r.stdout)
		return out
	}
	names := func(out installJSON) []string {
		var n []string
		for _, p := range out.Packages {
			n = append(n, p.Name+"=="+p.Version)
		}
		return n
	}

	first := run("inc-skill", nil, "inc-a")
	assert.Equal(t, "full", first.Resolve)
	assert.Equal(t, []string{"inc-a==1.0", "inc-lib==1.0"}, names(first))

	// Another version of the skill adds a requirement: only it is resolved.
	added := run("inc-skill", []string{"--version", "2"}, "inc-a", "inc-c")
	assert.Equal(t, "added", added.Resolve, "fallback: %s", added.ResolveFallback)
	assert.Empty(t, added.ResolveFallback)
	assert.Contains(t, strings.Join(added.Steps, "\n"), sbllb.StepResolve+" added to 2 locked distributions (2 requirements)")
	assert.Equal(t, []string{"inc-a==1.0", "inc-c==1.0", "inc-lib==1.0", "inc-speed==1.0"}, names(added))

	// The same requirements resolved from scratch give the same lock: the
	// same files, the same requested flags, the same metadata.
	full := run("inc-full", []string{"--refresh"}, "inc-a", "inc-c")
	assert.Equal(t, "full", full.Resolve)
	addedDoc, addedDigest := lockDocument(t, added.ImageTag)
	fullDoc, fullDigest := lockDocument(t, full.ImageTag)
	assert.Equal(t, fullDigest, addedDigest)
	assert.Equal(t, fullDoc.Lock(), addedDoc.Lock())
	for _, d := range addedDoc.Lock() {
		assert.Equal(t, d.Name == "inc-a" || d.Name == "inc-c", d.Requested, d.Name)
	}

	// --refresh resolves everything, though the image of version 1 could
	// be extended.
	refreshed := run("inc-skill", []string{"--refresh"}, "inc-a", "inc-c")
	assert.Equal(t, "full", refreshed.Resolve)
	assert.Contains(t, refreshed.Steps, sbllb.StepResolve)
	assert.Equal(t, names(added), names(refreshed))

	// A removed requirement: everything is resolved again.
	removed := run("inc-skill", []string{"--version", "2"}, "inc-c")
	assert.Equal(t, "full", removed.Resolve)
	assert.Contains(t, removed.ResolveFallback, "removed or changed")
	assert.Equal(t, names(added), names(removed))

	// An added requirement that needs a locked distribution upgraded: the
	// view's resolve reports the replacement, and the full resolve runs.
	for _, w := range []pyindex.Wheel{
		{Name: "inc-lib", Version: "2.0"},
		{Name: "inc-up", Version: "1.0", Requires: []string{"inc-lib>=2.0"}},
	} {
		_, err := pyindex.BuildWheel(dir, w)
		require.NoError(t, err)
	}
	upgraded := run("inc-skill", []string{"--version", "2"}, "inc-c", "inc-up")
	assert.Equal(t, "full", upgraded.Resolve)
	assert.Contains(t, upgraded.ResolveFallback, "replace inc-lib")
	assert.Contains(t, names(upgraded), "inc-lib==2.0")
	assert.Contains(t, names(upgraded), "inc-up==1.0")
}
