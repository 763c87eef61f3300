package skill

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestLimitsWarningNamesWhatCgroupsDoNotHold(t *testing.T) {
	t.Parallel()
	assert.Empty(t, limitsWarning(map[string]string{"memory": "cgroup", "cpus": "cgroup", "pids": "cgroup"}))
	w := limitsWarning(map[string]string{"memory": "rlimit", "cpus": "rlimit", "pids": "none"})
	assert.Contains(t, w, "memory by rlimit per process")
	assert.Contains(t, w, "pids not enforced")
	assert.Contains(t, w, "skillbuild rootless setup --user")
}
