package runtime

import (
	"testing"

	"github.com/containerd/errdefs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWithRunUIDRange(t *testing.T) {
	t.Parallel()
	o := defaultOptions()
	assert.Equal(t, uidRange{base: RunUIDBase, count: RunUIDCount}, o.runUIDs, "root's default range")
	require.NoError(t, WithRunUIDRange(32768, 32764)(&o))
	assert.Equal(t, uidRange{base: 32768, count: 32764}, o.runUIDs)

	for _, bad := range []struct {
		name        string
		base, count uint32
	}{
		{"empty", 32768, 0},
		{"holds 0", 0, 100},
		{"holds DefaultUID", 65500, 100},
		{"past the last id", 1<<32 - 10, 100},
	} {
		err := WithRunUIDRange(bad.base, bad.count)(&o)
		assert.True(t, errdefs.IsInvalidArgument(err), "%s: %v", bad.name, err)
	}
}

func TestLeaseUIDStaysInItsRange(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := uidRange{base: 40000, count: 4} // small: 64 random tries find the one free id (miss: (3/4)^64)
	var leases []*uidLease
	seen := map[uint32]bool{}
	for range 4 {
		l, err := leaseUID(dir, r)
		require.NoError(t, err)
		assert.GreaterOrEqual(t, l.uid, r.base)
		assert.Less(t, l.uid, r.base+r.count)
		assert.False(t, seen[l.uid], "uid %d leased twice", l.uid)
		seen[l.uid] = true
		leases = append(leases, l)
	}
	_, err := leaseUID(dir, r)
	assert.True(t, errdefs.IsUnavailable(err), "every uid of the range is held: %v", err)
	leases[2].release()
	l, err := leaseUID(dir, r)
	require.NoError(t, err, "a released uid is free again")
	assert.Equal(t, leases[2].uid, l.uid)
	for _, l := range append(leases, l) {
		l.release()
	}
}
