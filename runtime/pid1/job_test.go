package pid1

import (
	"testing"
	"time"
)

func TestParseJob(t *testing.T) {
	t.Parallel()
	for line, want := range map[string]job{
		"30s":                   {limit: 30 * time.Second},
		SessionJob + "10m0s":    {limit: 10 * time.Minute, session: true},
		"session":               {limit: time.Nanosecond},
		SessionJob + "-1s":      {limit: time.Nanosecond},
		"":                      {limit: time.Nanosecond},
		"junk":                  {limit: time.Nanosecond},
		SessionJob + SessionJob: {limit: time.Nanosecond},
	} {
		if got := parseJob(line); got != want {
			t.Errorf("parseJob(%q) = %+v, want %+v", line, got, want)
		}
	}
}
