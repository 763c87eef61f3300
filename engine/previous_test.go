package engine

import (
	"os"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/skillbuild/skillbuild/config"
	"github.com/skillbuild/skillbuild/lock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestLockStoreKeepsWholeLocks: a kept lock comes back whole (with the
// URLs and file names the image's own lock lacks), found by its digest,
// and a file that does not hold that lock is refused.
func TestLockStoreKeepsWholeLocks(t *testing.T) {
	t.Parallel()
	ls := lockStore{dir: t.TempDir() + "/locks"}
	l := lock.Lock{{Name: "a", Version: "1.0", Filename: "a-1.0-py3-none-any.whl", URL: "http://127.0.0.1:9/files/a-1.0-py3-none-any.whl",
		SHA256: strings.Repeat("a", 64), Requested: true}}
	require.NoError(t, ls.save(l))
	got, err := ls.load(l.Digest())
	require.NoError(t, err)
	assert.Equal(t, l, got)

	other := lock.Lock{{Name: "b", Version: "2.0", SHA256: strings.Repeat("b", 64)}}
	_, err = ls.load(other.Digest())
	assert.True(t, os.IsNotExist(err), "no such lock: %v", err)

	// A file that holds another lock than its name says.
	require.NoError(t, ls.save(other))
	require.NoError(t, os.Rename(ls.path(other.Digest()), ls.path(l.Digest())))
	_, err = ls.load(l.Digest())
	assert.True(t, errdefs.IsDataLoss(err), "%v", err)

	require.NoError(t, ls.prune())
	_, err = os.Stat(ls.dir)
	assert.True(t, os.IsNotExist(err))
}

func TestRequirementsLabelFitsALabel(t *testing.T) {
	t.Parallel()
	s := config.Skill{Requirements: []config.Requirement{{Raw: "a==1"}, {Raw: "b>2"}}}
	assert.Equal(t, "a==1\nb>2\n", requirementsLabel(s))
	for range 400 {
		s.Requirements = append(s.Requirements, config.Requirement{Raw: "long-requirement-name>=1.0"})
	}
	assert.Empty(t, requirementsLabel(s), "too long for a label: not recorded (the next build resolves from scratch)")
}
