package scan

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// A package's blob in the per-package index (see pkgIndexMagic): unsigned
// varints (u), strings as u length + bytes (s), u32 little-endian.
//
//	u versions (n), n × u32 end offsets, then the version strings concatenated:
//	  one per PEP 440 equal class, ascending
//	u entries, then per entry (withdrawn records left out):
//	  u match length, match:
//	    byte explicit-version form: 0 = u count + ascending ranks delta-coded,
//	                                1 = u length + bitmap of ranks (bit k of byte k/8)
//	    u ranges, per range: byte all, u limits, a rank each,
//	                         u events, per event: byte kind (|eventZero for introduced "0"), u rank unless zero
//	  u info length, info: s id, u aliases, s each, s summary, byte severity, s cvss, u fixed, s each
//
// Ranks index the version list; events keep compile's order. A scan finds
// a version with a binary search over the offsets (parsing only the
// versions it compares with), and skips an entry's info unless the entry
// matches.

// eventZero marks introduced "0" in an event's kind byte.
const eventZero = 0x80

// Forms of an entry's explicit versions: whichever is smaller.
const (
	explicitList   = 0
	explicitBitmap = 1
)

// severityCodes are the severities as stored in a blob, by code.
var severityCodes = []string{SeverityUnknown, SeverityNone, SeverityLow, SeverityMedium, SeverityHigh, SeverityCritical}

// encodePkg encodes the compiled entries of one package.
func encodePkg(es []entry) []byte {
	// Every parsed version the entries refer to, in PEP 440 order; equal
	// versions ("1.0", "1.0.0") share a rank.
	var all []version
	for i := range es {
		all = append(all, es[i].versions...)
		for _, r := range es[i].ranges {
			all = append(all, r.limits...)
			for _, ev := range r.events {
				if !ev.zero {
					all = append(all, ev.v)
				}
			}
		}
	}
	slices.SortStableFunc(all, func(x, y version) int { return x.Compare(y) })
	rank := make(map[version]uint64, len(all))
	var reps []string
	for i, v := range all {
		if i == 0 || v.Compare(all[i-1]) != 0 {
			reps = append(reps, v.String())
		}
		rank[v] = uint64(len(reps) - 1)
	}

	var b []byte
	b = binary.AppendUvarint(b, uint64(len(reps)))
	end := 0
	for _, s := range reps {
		end += len(s)
		b = binary.LittleEndian.AppendUint32(b, uint32(end))
	}
	for _, s := range reps {
		b = append(b, s...)
	}
	live := 0
	for i := range es {
		if es[i].rec.Withdrawn == "" {
			live++
		}
	}
	b = binary.AppendUvarint(b, uint64(live))
	for i := range es {
		e := &es[i]
		if e.rec.Withdrawn != "" {
			continue // never reported
		}
		m := appendExplicit(nil, e.versions, rank)
		m = binary.AppendUvarint(m, uint64(len(e.ranges)))
		for _, r := range e.ranges {
			all := byte(0)
			if r.all {
				all = 1
			}
			m = append(m, all)
			m = binary.AppendUvarint(m, uint64(len(r.limits)))
			for _, l := range r.limits {
				m = binary.AppendUvarint(m, rank[l])
			}
			m = binary.AppendUvarint(m, uint64(len(r.events)))
			for _, ev := range r.events {
				if ev.zero {
					m = append(m, byte(ev.kind)|eventZero)
					continue
				}
				m = append(m, byte(ev.kind))
				m = binary.AppendUvarint(m, rank[ev.v])
			}
		}
		var info []byte
		info = appendString(info, e.rec.ID)
		info = binary.AppendUvarint(info, uint64(len(e.rec.Aliases)))
		for _, a := range e.rec.Aliases {
			info = appendString(info, a)
		}
		info = appendString(info, e.rec.Summary)
		info = append(info, byte(max(0, slices.Index(severityCodes, e.severity))))
		info = appendString(info, e.cvss)
		info = binary.AppendUvarint(info, uint64(len(e.fixed)))
		for _, f := range e.fixed {
			info = appendString(info, f)
		}
		b = binary.AppendUvarint(b, uint64(len(m)))
		b = append(b, m...)
		b = binary.AppendUvarint(b, uint64(len(info)))
		b = append(b, info...)
	}
	return b
}

// appendExplicit appends an entry's explicit versions as ranks, in the
// smaller of the two forms.
func appendExplicit(b []byte, vs []version, rank map[version]uint64) []byte {
	ranks := make([]uint64, 0, len(vs))
	for _, v := range vs {
		ranks = append(ranks, rank[v])
	}
	slices.Sort(ranks)
	ranks = slices.Compact(ranks)
	list := binary.AppendUvarint(nil, uint64(len(ranks)))
	prev := uint64(0)
	for _, r := range ranks {
		list = binary.AppendUvarint(list, r-prev)
		prev = r
	}
	bitmap := []byte{explicitBitmap}
	if len(ranks) > 0 {
		bits := make([]byte, ranks[len(ranks)-1]/8+1)
		for _, r := range ranks {
			bits[r/8] |= 1 << (r % 8)
		}
		bitmap = append(binary.AppendUvarint(bitmap, uint64(len(bits))), bits...)
	} else {
		bitmap = binary.AppendUvarint(bitmap, 0)
	}
	if len(bitmap) < 1+len(list) {
		return append(b, bitmap...)
	}
	b = append(b, explicitList)
	return append(b, list...)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// blobReader decodes a blob; the first error sticks and later reads
// return zero values. It moves an offset, never the slice, so reading
// writes no pointers.
type blobReader struct {
	b   []byte
	off int
	err error
}

var errShortBlob = errors.New("truncated record")

func (r *blobReader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
	r.off = len(r.b)
}

func (r *blobReader) uvarint() uint64 {
	if r.off < len(r.b) && r.b[r.off] < 0x80 { // one byte: most ranks and lengths
		r.off++
		return uint64(r.b[r.off-1])
	}
	v, n := binary.Uvarint(r.b[r.off:])
	if n <= 0 {
		r.fail(errShortBlob)
		return 0
	}
	r.off += n
	return v
}

// count reads a length or count, which can never exceed the bytes left.
func (r *blobReader) count() int {
	v := r.uvarint()
	if v > uint64(len(r.b)-r.off) {
		r.fail(errShortBlob)
		return 0
	}
	return int(v)
}

func (r *blobReader) byte() byte {
	if r.off >= len(r.b) {
		r.fail(errShortBlob)
		return 0
	}
	r.off++
	return r.b[r.off-1]
}

func (r *blobReader) bytes(n int) []byte {
	if n > len(r.b)-r.off {
		r.fail(errShortBlob)
		return nil
	}
	r.off += n
	return r.b[r.off-n : r.off : r.off]
}

func (r *blobReader) u32() uint32 {
	if b := r.bytes(4); b != nil {
		return binary.LittleEndian.Uint32(b)
	}
	return 0
}

func (r *blobReader) str() string { return string(r.bytes(r.count())) }

// matchPkg returns the findings (not yet merged) of the package blob b,
// named name, at version v (raw as given).
func matchPkg(b []byte, name, raw string, v version) ([]Finding, error) {
	r := blobReader{b: b}
	nv := r.count()
	ends := r.bytes(4 * nv)
	strs := r.bytes(versionsLen(ends))
	if r.err != nil {
		return nil, r.err
	}
	rep := func(k int) ([]byte, error) {
		start := uint32(0)
		if k > 0 {
			start = binary.LittleEndian.Uint32(ends[4*(k-1):])
		}
		end := binary.LittleEndian.Uint32(ends[4*k:])
		if start > end || int(end) > len(strs) {
			return nil, errShortBlob
		}
		return strs[start:end], nil
	}
	// Place v among the versions: q is 2·rank+1 when v equals the version
	// of that rank, else 2·(the number of versions below v). Comparing v
	// with the version of rank k is then comparing q with 2k+1.
	lo, hi, eq := 0, nv, -1
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		s, err := rep(m)
		if err != nil {
			return nil, err
		}
		pv, err := parseVersion(string(s))
		if err != nil {
			return nil, fmt.Errorf("version %q: %w", s, err)
		}
		switch c := pv.Compare(v); {
		case c < 0:
			lo = m + 1
		case c == 0:
			eq, hi = m, m
		default:
			hi = m
		}
	}
	q := uint64(2 * lo)
	if eq == lo {
		q++
	}
	var hits []Finding
	ne := r.count()
	for range ne {
		m := blobReader{b: r.bytes(r.count())}
		info := r.bytes(r.count())
		if r.err != nil {
			return nil, r.err
		}
		hit := affectsRank(&m, q, uint64(nv))
		if m.err != nil {
			return nil, m.err
		}
		if !hit {
			continue
		}
		f, err := decodeFinding(info, name, raw)
		if err != nil {
			return nil, err
		}
		hits = append(hits, f)
	}
	return hits, r.err
}

// versionsLen is the length of the version strings whose end offsets are
// ends.
func versionsLen(ends []byte) int {
	if len(ends) < 4 {
		return 0
	}
	return int(binary.LittleEndian.Uint32(ends[len(ends)-4:]))
}

var errBadRank = errors.New("version rank out of range")

// affectsRank is entry.affects on an encoded entry's match part, for a
// version placed at q (see matchPkg) among nv versions.
func affectsRank(m *blobReader, q, nv uint64) bool {
	// at compares the version at q with the version of rank k: <0, 0, >0.
	at := func(k uint64) int {
		if k >= nv {
			m.fail(errBadRank)
		}
		switch p := 2*k + 1; {
		case q < p:
			return -1
		case q > p:
			return 1
		}
		return 0
	}
	listed := false
	switch form := m.byte(); form {
	case explicitList:
		n := m.count()
		rk := uint64(0)
		for range n {
			rk += m.uvarint() // the first is the rank itself
			if at(rk) == 0 {
				listed = true
			}
		}
	case explicitBitmap:
		bitmap := m.bytes(m.count())
		if uint64(len(bitmap))*8 > nv+7 {
			m.fail(errBadRank)
		}
		if k := q / 2; q%2 == 1 && k/8 < uint64(len(bitmap)) {
			listed = bitmap[k/8]&(1<<(k%8)) != 0
		}
	default:
		m.fail(fmt.Errorf("explicit versions form %d", form))
	}
	if listed {
		return m.err == nil
	}
	nr := m.count()
	for range nr {
		all := m.byte() != 0
		nl := m.count()
		below := nl == 0
		for range nl {
			if at(m.uvarint()) < 0 {
				below = true
			}
		}
		affected := false
		nev := m.count()
		for range nev {
			k := m.byte()
			if k&eventZero != 0 {
				affected = true // introduced "0"
				continue
			}
			c := at(m.uvarint())
			switch eventKind(k) {
			case evIntroduced:
				if c >= 0 {
					affected = true
				}
			case evFixed:
				if c >= 0 {
					affected = false
				}
			case evLastAffected:
				if c > 0 {
					affected = false
				}
			default:
				m.fail(fmt.Errorf("event kind %d", k))
			}
		}
		if m.err != nil {
			return false
		}
		if all || (below && affected) {
			return true
		}
	}
	return false
}

// decodeFinding decodes an entry's info part into its finding for name at
// version raw.
func decodeFinding(info []byte, name, raw string) (Finding, error) {
	r := blobReader{b: info}
	f := Finding{ID: r.str(), Package: name, Version: raw}
	if n := r.count(); n > 0 {
		f.Aliases = make([]string, n)
		for i := range f.Aliases {
			f.Aliases[i] = r.str()
		}
	}
	f.Summary = r.str()
	if s := int(r.byte()); s < len(severityCodes) {
		f.Severity = severityCodes[s]
	} else {
		r.fail(fmt.Errorf("severity code %d", s))
	}
	f.CVSS = r.str()
	if n := r.count(); n > 0 {
		f.Fixed = make([]string, n)
		for i := range f.Fixed {
			f.Fixed[i] = r.str()
		}
	}
	return f, r.err
}
