package config

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestFormatSize(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   int64
		want string
	}{
		{0, "0 B"},
		{1, "1 B"},
		{1023, "1023 B"},
		{1024, "1.0 KiB"},
		{1536, "1.5 KiB"},
		{10 << 10, "10 KiB"},
		{1<<20 - 1, "1.0 MiB"},
		{1023<<10 + 600, "1.0 MiB"},
		{1023 << 10, "1023 KiB"},
		{12 << 20, "12 MiB"},
		{3<<30 + 1<<28, "3.2 GiB"},
		{5 << 40, "5.0 TiB"},
		{2 << 50, "2.0 PiB"},
		{-1536, "-1.5 KiB"},
	}
	for _, tc := range cases {
		t.Run(tc.want, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tc.want, FormatSize(tc.in))
		})
	}
}
