package engine

import (
	"testing"

	digest "github.com/opencontainers/go-digest"
	"github.com/skillbuild/skillbuild/lock"
	"github.com/stretchr/testify/assert"
)

// TestAddedApplies: a previous lock is extended only on the base it was
// resolved on, without source distributions, and when the requirements
// only add to its own.
func TestAddedApplies(t *testing.T) {
	t.Parallel()
	base := digest.FromString("base")
	d := lock.Dist{Name: "a", Version: "1", Filename: "a-1-py3-none-any.whl", URL: "http://x/a-1-py3-none-any.whl", SHA256: "ab",
		Meta: &lock.Metadata{Name: "a"}}
	prev := lock.NewDocument([]string{"a"}, lock.Lock{d}, base.String())
	assert.Empty(t, addedApplies(&prev, []string{"a", "b"}, base, false))
	for name, tc := range map[string]struct {
		reqs  []string
		base  digest.Digest
		sdist bool
		why   string
	}{
		"another base":   {[]string{"a", "b"}, digest.FromString("other"), false, "another base"},
		"sdists allowed": {[]string{"a", "b"}, base, true, "source distributions"},
		"removed":        {[]string{"b"}, base, false, "removed"},
		"nothing added":  {[]string{"a"}, base, false, "no requirement added"},
	} {
		assert.Contains(t, addedApplies(&prev, tc.reqs, tc.base, tc.sdist), tc.why, name)
	}
}
