package reuse

import (
	"strings"
	"testing"

	"github.com/skillbuild/skillbuild/labels"
	"github.com/skillbuild/skillbuild/lock"
	"github.com/stretchr/testify/assert"
)

func TestRecordedLock(t *testing.T) {
	t.Parallel()
	l := lock.Lock{
		{Name: "a", Version: "1.0", SHA256: strings.Repeat("a", 64)},
		{Name: "b-c", Version: "2", SHA256: strings.Repeat("b", 64)},
	}
	whole := map[string]string{labels.Packages: "2", labels.LockDigest: l.Digest().String()}
	pins := "a==1.0\nb-c==2\n"
	for _, tc := range []struct {
		name     string
		cfg, rec map[string]string
		wantPkgs int
		wantWhy  string
	}{
		{"whole lock", map[string]string{labels.Lock: l.Text()}, whole, 2, ""},
		{"pins only", map[string]string{labels.Lock: pins}, map[string]string{labels.Packages: "2"}, 2, ""},
		{"empty lock", map[string]string{}, map[string]string{labels.Packages: "0"}, 0, ""},
		{"no label", map[string]string{}, whole, -1, "too long"},
		{"tampered lock", map[string]string{labels.Lock: strings.Replace(l.Text(), "1.0", "0.9", 1)}, whole, -1, "digest"},
		{"count mismatch", map[string]string{labels.Lock: pins}, map[string]string{labels.Packages: "3"}, -1, "count"},
		{"junk", map[string]string{labels.Lock: "not a pin\n"}, whole, -1, "name==version"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, why := recordedLock(tc.cfg, tc.rec)
			if tc.wantPkgs < 0 {
				assert.Nil(t, got)
				assert.Contains(t, why, tc.wantWhy)
				return
			}
			assert.Empty(t, why)
			assert.Len(t, got, tc.wantPkgs)
		})
	}
}
