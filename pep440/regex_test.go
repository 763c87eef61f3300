package pep440

import (
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// versionRE is packaging's VERSION_PATTERN, anchored; surrounding blanks
// are trimmed before it is applied (packaging's ^\s* and \s*$).
var versionRE = regexp.MustCompile(`(?i)^v?` +
	`(?:(?:([0-9]+)!)?` + // 1 epoch
	`([0-9]+(?:\.[0-9]+)*)` + // 2 release
	`([-_\.]?(a|b|c|rc|alpha|beta|pre|preview)[-_\.]?([0-9]+)?)?` + // 3 pre, 4 pre_l, 5 pre_n
	`((?:-([0-9]+))|(?:[-_\.]?(post|rev|r)[-_\.]?([0-9]+)?))?` + // 6 post, 7 post_n1, 8 post_l, 9 post_n2
	`([-_\.]?(dev)[-_\.]?([0-9]+)?)?` + // 10 dev, 11 dev_l, 12 dev_n
	`)` +
	`(?:\+([a-z0-9]+(?:[-_\.][a-z0-9]+)*))?$`) // 13 local

// regexParse parses t (trimmed, ASCII) with versionRE, as packaging does.
func regexParse(t string) (*Version, bool) {
	m := versionRE.FindStringSubmatch(t)
	if m == nil {
		return nil, false
	}
	v := &Version{epoch: "0"}
	if m[1] != "" {
		v.epoch = newNum(m[1])
	}
	for _, r := range strings.Split(m[2], ".") {
		v.release = append(v.release, newNum(r))
	}
	if m[4] != "" {
		l := strings.ToLower(m[4])
		switch l {
		case "alpha":
			l = "a"
		case "beta":
			l = "b"
		case "c", "pre", "preview":
			l = "rc"
		}
		v.pre = &letterNum{letter: l, n: newNum(m[5])}
	}
	switch {
	case m[8] != "":
		n := newNum(m[9])
		v.post = &n
	case m[7] != "":
		n := newNum(m[7])
		v.post = &n
	}
	if m[11] != "" {
		n := newNum(m[12])
		v.dev = &n
	}
	if m[13] != "" {
		for _, p := range splitLocal(m[13]) {
			if isDigits(p) {
				v.local = append(v.local, localPart{isNum: true, n: newNum(p)})
			} else {
				v.local = append(v.local, localPart{s: strings.ToLower(p)})
			}
		}
	}
	v.str = v.format(false)
	return v, true
}

// FuzzParse: the hand-written parser accepts exactly what packaging's
// pattern accepts, with the same parts.
func FuzzParse(f *testing.F) {
	for _, s := range benchVersions {
		f.Add(s)
	}
	for _, s := range []string{"1.0a-", "1.0a.post1", "1.0-1", "1.0-dev1", "1.0a_-1", "v1!2.0rc.3-4.dev5+ab.c-1", "1.0preview", "1.0rev", "1.0a1-1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tr := trimSpace(s)
		if !isASCII(tr) {
			return
		}
		want, wok := regexParse(tr)
		got, gok := Parse(s)
		if !wok {
			assert.Error(t, gok, "%q", s)
			return
		}
		if assert.NoError(t, gok, "%q", s) {
			assert.Equal(t, want.String(), got.String(), "%q", s)
		}
	})
}
