package lock

import (
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func docDistOf(name, version string, requested bool) Dist {
	file := strings.ReplaceAll(name, "-", "_") + "-" + version + "-py3-none-any.whl"
	return Dist{Name: name, Version: version, Filename: file, URL: "http://127.0.0.1:9/files/" + file,
		SHA256: strings.Repeat("a", 64), Requested: requested, Meta: &Metadata{Name: name, RequiresDist: []string{"x>=1"}}}
}

func TestDocumentRoundTrip(t *testing.T) {
	t.Parallel()
	locked := Lock{docDistOf("a", "1.0", true), docDistOf("b", "2.0", false)}
	locked[1].Meta.ProvidesExtra = []string{"fast"}
	locked[1].Meta.RequiresPython = ">=3.8"
	b, err := NewDocument([]string{"a>=1"}, locked, "sha256:base").Marshal()
	require.NoError(t, err)
	assert.NotContains(t, string(locked.Text()), "x>=1", "metadata is not part of the lock's text")
	doc, err := ParseDocument(b)
	require.NoError(t, err)
	assert.Equal(t, locked, doc.Lock())
	assert.Equal(t, locked.Digest(), doc.Lock().Digest())
	assert.Equal(t, "sha256:base", doc.BaseDigest)
	assert.Equal(t, []string{"a>=1"}, doc.Requirements)

	for name, bad := range map[string]string{
		"not JSON":          "{",
		"other version":     `{"version": 2, "distributions": []}`,
		"entry without URL": `{"version": 1, "distributions": [{"name": "a", "version": "1", "sha256": "ab", "filename": "a-1-py3-none-any.whl"}]}`,
		"unnormalized name": `{"version": 1, "distributions": [{"name": "A_b", "version": "1", "sha256": "ab", "filename": "f", "url": "http://x/f"}]}`,
	} {
		_, err := ParseDocument([]byte(bad))
		assert.Error(t, err, name)
	}
}

func TestDocumentIncremental(t *testing.T) {
	t.Parallel()
	doc := NewDocument([]string{"a>=1", "b"}, Lock{docDistOf("a", "1.0", true), docDistOf("b", "2.0", true)}, "sha256:base")
	noMeta := NewDocument([]string{"a>=1"}, Lock{{Name: "a", Version: "1.0"}}, "sha256:base")
	for _, tc := range []struct {
		name string
		doc  Document
		reqs []string
		ok   bool
		why  string
	}{
		{"one added", doc, []string{"a>=1", "b", "c"}, true, ""},
		{"added, order and blanks differ", doc, []string{" c", "b ", "a>=1"}, true, ""},
		{"nothing added", doc, []string{"b", "a>=1"}, false, "no requirement added"},
		{"one removed", doc, []string{"a>=1", "c"}, false, `"b" was removed or changed`},
		{"one changed", doc, []string{"a>=2", "b", "c"}, false, `"a>=1" was removed or changed`},
		{"older document without metadata", noMeta, []string{"a>=1", "c"}, false, "no metadata recorded for a 1.0"},
	} {
		ok, why := tc.doc.Incremental(tc.reqs)
		assert.Equal(t, tc.ok, ok, tc.name)
		assert.Contains(t, why, tc.why, tc.name)
	}
}

func TestExtend(t *testing.T) {
	t.Parallel()
	prev := Lock{docDistOf("a", "1.0", true), docDistOf("lib", "1.0", false)}
	added := Lock{docDistOf("c", "1.0", true), docDistOf("speed", "1.0", false)}
	got, err := Extend(prev, added, []string{"a", "C", "Lib"})
	require.NoError(t, err)
	var pins []string
	for _, d := range got {
		pins = append(pins, d.Name+"=="+d.Version+map[bool]string{true: " requested"}[d.Requested])
	}
	assert.Equal(t, []string{"a==1.0 requested", "c==1.0 requested", "lib==1.0 requested", "speed==1.0"}, pins,
		"sorted; requested as the requirement names say (lib is named now)")
	assert.False(t, prev[1].Requested, "prev is not modified")

	_, err = Extend(prev, Lock{docDistOf("lib", "2.0", false)}, []string{"a"})
	require.Error(t, err, "an upgrade of a locked distribution")
	assert.True(t, errdefs.IsFailedPrecondition(err))
	assert.Contains(t, err.Error(), "replace lib")
	_, err = Extend(prev, Lock{docDistOf("lib", "1.0", false)}, []string{"a"})
	assert.Error(t, err, "a reinstall of a locked distribution")
}

func TestParseReportKeepsMetadata(t *testing.T) {
	t.Parallel()
	rep := `{"version": "1", "install": [{"download_info": {"url": "http://x/My_Pkg-1.0-py3-none-any.whl",
	  "archive_info": {"hashes": {"sha256": "AB"}}}, "requested": true,
	  "metadata": {"name": "My.Pkg", "version": "1.0", "requires_dist": ["dep>=1", "speed; extra == \"fast\""],
	    "requires_python": ">=3.8", "provides_extra": ["fast"], "summary": "not kept"}}]}`
	l, err := ParseReport([]byte(rep))
	require.NoError(t, err)
	require.Len(t, l, 1)
	assert.Equal(t, "my-pkg", l[0].Name)
	assert.Equal(t, &Metadata{Name: "My.Pkg", RequiresDist: []string{"dep>=1", `speed; extra == "fast"`}, RequiresPython: ">=3.8", ProvidesExtra: []string{"fast"}}, l[0].Meta)
}
