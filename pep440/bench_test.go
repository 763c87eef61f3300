package pep440

import "testing"

var benchVersions = []string{"1.0", "2.31.0", "1.0rc1", "0.9.post1", "3.11.2", "1!2.0", "1.0.dev3", "2.0.0b2", "4.2.1+local.1", "10.0.0"}

func BenchmarkParse(b *testing.B) {
	for i := 0; i < b.N; i++ {
		for _, s := range benchVersions {
			if _, err := Parse(s); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func BenchmarkCompare(b *testing.B) {
	vs := make([]*Version, len(benchVersions))
	for i, s := range benchVersions {
		vs[i] = MustParse(s)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, v := range vs {
			for _, w := range vs {
				v.Compare(w)
			}
		}
	}
}
