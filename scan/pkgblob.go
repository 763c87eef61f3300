package scan

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// A package's blob in the per-package index (see pkgIndexMagic): unsigned
// varints (u), strings as u length + bytes (s).
//
//	u versions, then per version: s — one string per PEP 440 equal class, ascending
//	u entries, then per entry (withdrawn records left out):
//	  u match length, match: u explicit versions, their ranks ascending (delta-coded);
//	                         u ranges, per range: byte all, u limits (ranks),
//	                         u events, per event: byte kind (|eventZero for introduced "0"), u rank unless zero
//	  u info length, info:   s id, u aliases, s each, s summary, byte severity, s cvss, u fixed, s each
//
// Ranks index the version list; events keep compile's order. A scan skips
// an entry's info unless the entry matches.

// eventZero marks introduced "0" in an event's kind byte.
const eventZero = 0x80

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
	for _, s := range reps {
		b = appendString(b, s)
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
		var m []byte
		ranks := make([]uint64, 0, len(e.versions))
		for _, v := range e.versions {
			ranks = append(ranks, rank[v])
		}
		slices.Sort(ranks)
		ranks = slices.Compact(ranks)
		m = binary.AppendUvarint(m, uint64(len(ranks)))
		prev := uint64(0)
		for _, r := range ranks {
			m = binary.AppendUvarint(m, r-prev)
			prev = r
		}
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

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// blobReader decodes a blob; the first error sticks and later reads
// return zero values.
type blobReader struct {
	b   []byte
	err error
}

var errShortBlob = errors.New("truncated record")

func (r *blobReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errShortBlob
		return 0
	}
	r.b = r.b[n:]
	return v
}

// count reads a length or count, which can never exceed the bytes left.
func (r *blobReader) count() int {
	v := r.uvarint()
	if v > uint64(len(r.b)) {
		if r.err == nil {
			r.err = errShortBlob
		}
		return 0
	}
	return int(v)
}

func (r *blobReader) byte() byte {
	if r.err != nil {
		return 0
	}
	if len(r.b) == 0 {
		r.err = errShortBlob
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *blobReader) bytes(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n > len(r.b) {
		r.err = errShortBlob
		return nil
	}
	out := r.b[:n:n]
	r.b = r.b[n:]
	return out
}

func (r *blobReader) str() string { return string(r.bytes(r.count())) }

// matchPkg returns the findings (not yet merged) of the package blob b,
// named name, at version v (raw as given).
func matchPkg(b []byte, name, raw string, v version) ([]Finding, error) {
	r := blobReader{b: b}
	nv := r.count()
	reps := make([][]byte, nv)
	for i := range reps {
		reps[i] = r.bytes(r.count())
	}
	if r.err != nil {
		return nil, r.err
	}
	// Place v among the versions: q is 2·rank+1 when v equals the version
	// of that rank, else 2·(the number of versions below v). Comparing v
	// with the version of rank k is then comparing q with 2k+1.
	lo, hi, eq := 0, nv, -1
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		pv, err := parseVersion(string(reps[m]))
		if err != nil {
			return nil, fmt.Errorf("version %q: %w", reps[m], err)
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

var errBadRank = errors.New("version rank out of range")

// affectsRank is entry.affects on an encoded entry's match part, for a
// version placed at q (see matchPkg) among nv versions.
func affectsRank(m *blobReader, q, nv uint64) bool {
	// at returns the comparison of the version at q with rank k: <0, 0, >0.
	at := func(k uint64) int {
		if k >= nv {
			m.err = errBadRank
		}
		switch p := 2*k + 1; {
		case q < p:
			return -1
		case q > p:
			return 1
		}
		return 0
	}
	nx := m.count()
	rk, listed := uint64(0), false
	for range nx {
		rk += m.uvarint() // the first is the rank itself
		if at(rk) == 0 {
			listed = true
		}
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
				m.err = fmt.Errorf("event kind %d", k)
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
	} else if r.err == nil {
		r.err = fmt.Errorf("severity code %d", s)
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
