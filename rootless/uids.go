package rootless

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// Run uids. Inside RootlessKit's user namespace, id 0 is the user and ids
// 1 up to the size of the user's subordinate range are those subordinate
// ids (newuidmap writes "0 UID 1" and "1 SUBSTART SUBCOUNT"). A run takes
// a uid of its own from RunUIDLow up to RunUIDHigh-1 where that is mapped
// for users and groups alike: above the ids images commonly name for
// their own users (system and login users below 32768) and below 65532,
// skillbuild's images' user, and nobody (65534). A standard range of
// 65536 subordinate ids gives 32764 run uids.
const (
	RunUIDLow  = 32768
	RunUIDHigh = 65532
)

// idRange is count ids from first, inside a user namespace.
type idRange struct{ first, count uint64 }

// parseIDMap reads /proc/PID/uid_map (or gid_map): "INSIDE OUTSIDE COUNT"
// per line; it returns the inside ranges.
func parseIDMap(r io.Reader) ([]idRange, error) {
	var out []idRange
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) != 3 {
			return nil, fmt.Errorf("id map line %q has not 3 fields", sc.Text())
		}
		in, err1 := strconv.ParseUint(f[0], 10, 32)
		_, err2 := strconv.ParseUint(f[1], 10, 32)
		n, err3 := strconv.ParseUint(f[2], 10, 32)
		if err1 != nil || err2 != nil || err3 != nil {
			return nil, fmt.Errorf("id map line %q is not numeric", sc.Text())
		}
		out = append(out, idRange{first: in, count: n})
	}
	return out, sc.Err()
}

// clip is the part of rs within [lo, hi), as one range per input range.
func clip(rs []idRange, lo, hi uint64) []idRange {
	var out []idRange
	for _, r := range rs {
		a, b := max(r.first, lo), min(r.first+r.count, hi)
		if a < b {
			out = append(out, idRange{first: a, count: b - a})
		}
	}
	return out
}

// runUIDRange is the largest block of ids in [RunUIDLow, RunUIDHigh)
// mapped in both uid and gid maps (count 0: none).
func runUIDRange(uidMap, gidMap io.Reader) (base, count uint32, err error) {
	us, err := parseIDMap(uidMap)
	if err != nil {
		return 0, 0, fmt.Errorf("uid_map: %w", err)
	}
	gs, err := parseIDMap(gidMap)
	if err != nil {
		return 0, 0, fmt.Errorf("gid_map: %w", err)
	}
	var best idRange
	for _, u := range clip(us, RunUIDLow, RunUIDHigh) {
		for _, g := range clip(gs, u.first, u.first+u.count) {
			if g.count > best.count {
				best = g
			}
		}
	}
	return uint32(best.first), uint32(best.count), nil
}

// RunUIDRange is where runs of this process take their own uid: a block
// of the user namespace's mapped ids (see RunUIDLow). Count 0 means the
// namespace maps none there (a subordinate range smaller than RunUIDLow
// ids), and runs share one uid.
func RunUIDRange() (base, count uint32, err error) {
	u, err := os.Open("/proc/self/uid_map")
	if err != nil {
		return 0, 0, err
	}
	defer u.Close()
	g, err := os.Open("/proc/self/gid_map")
	if err != nil {
		return 0, 0, err
	}
	defer g.Close()
	return runUIDRange(u, g)
}
