package pep440

import "testing"

// FuzzSpecifierSet: no text panics the parser; an accepted set renders to
// a set that parses to the same rendering and matches versions alike.
func FuzzSpecifierSet(f *testing.F) {
	for _, s := range []string{">=1.0,<2", "==1.*,!=1.0.*", "~=1.4.2", "===foo", ">1.0.post1", "<=2.0+local"} {
		f.Add(s, "1.0")
	}
	f.Fuzz(func(t *testing.T, spec, version string) {
		set, err := ParseSpecifierSet(spec)
		if err != nil {
			return
		}
		out := set.String()
		set2, err := ParseSpecifierSet(out)
		if err != nil || set2.String() != out {
			t.Fatalf("%q renders %q, which does not read back (%v)", spec, out, err)
		}
		v, err := Parse(version)
		if err != nil {
			return
		}
		yes := true
		if set.Contains(v, nil) != set2.Contains(v, nil) || set.Contains(v, &yes) != set2.Contains(v, &yes) {
			t.Fatalf("%q and %q disagree on %s", spec, out, v)
		}
	})
}
