package config

import "fmt"

// FormatSize renders a byte count for people, in binary units with one
// decimal below 10 ("0 B", "512 B", "1.5 KiB", "12 MiB", "3.2 GiB").
func FormatSize(n int64) string {
	if n < 0 {
		return "-" + FormatSize(-n)
	}
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v := float64(n)
	i := -1
	// Divide until the value shows below 1024 once rounded ("1.0 MiB",
	// never "1024 KiB").
	for (v >= unit-0.5 || i < 0) && i < 4 {
		v /= unit
		i++
	}
	suffix := []string{"KiB", "MiB", "GiB", "TiB", "PiB"}[i]
	if v < 10 {
		return fmt.Sprintf("%.1f %s", v, suffix)
	}
	return fmt.Sprintf("%.0f %s", v, suffix)
}
