package pep508

import (
	"testing"
)

// FuzzParseRequirement: no text panics the parser, and what it accepts
// renders (packaging's str) to text that parses to the same rendering,
// the round trip pip makes of every dependency.
func FuzzParseRequirement(f *testing.F) {
	for _, s := range []string{"foo", "Foo.Bar[x,Y]>=1.0,<2; python_version >= '3.8' and (extra == 'x' or os_name != \"nt\")",
		"foo (>=1.0) ; sys_platform == 'linux'", "foo@https://x/y.whl ; os_name=='posix'", "foo===1.0", "foo~=1.4.2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRequirement(s)
		if err != nil || r.URL != "" {
			return
		}
		out := r.String()
		r2, err := ParseRequirement(out)
		if err != nil {
			// packaging renders a marker string in double quotes whatever
			// it holds: one with a '"' in it does not parse back (pip
			// fails the same way).
			return
		}
		if r2.String() != out {
			t.Fatalf("%q renders %q, which renders %q", s, out, r2.String())
		}
		if r.Marker != nil {
			env := Env{"python_version": "3.11", "python_full_version": "3.11.2", "os_name": "posix", "sys_platform": "linux",
				"platform_release": "6.1", "platform_system": "Linux", "platform_version": "#1", "platform_machine": "x86_64",
				"platform_python_implementation": "CPython", "implementation_name": "cpython", "implementation_version": "3.11.2", "extra": ""}
			a, errA := r.Marker.Evaluate(env)
			b, errB := r2.Marker.Evaluate(env)
			if (errA == nil) != (errB == nil) || a != b {
				t.Fatalf("%q and its rendering %q evaluate differently: %v/%v, %v/%v", s, out, a, errA, b, errB)
			}
		}
	})
}
