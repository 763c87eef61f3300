package layers

import "strings"

// Fixed paths inside every skill image.
const (
	// WorkDir is the skill's directory: the working directory of its code.
	WorkDir = "/opt/skill"
	// VenvDir is the skill's virtual environment, in a layer of its own
	// above the base's; every distribution layer adds files below it.
	VenvDir = "/opt/skill/venv"
	// LockFile is the hash-pinned lock, alone in the image's last layer.
	LockFile = "/opt/skill/requirements.lock"
	// User is the image's USER: the non-root user skill code runs as.
	User = "65532:65532"
)

// Env is a skill image's environment, from its base's: the venv's bin
// first on PATH, VIRTUAL_ENV set, no bytecode written, and the base's other
// variables (but its VIRTUAL_ENV and PYTHONHOME) as they are.
func Env(base []string) []string {
	path := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	var rest []string
	for _, kv := range base {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "PATH":
			path = v
			continue
		case "VIRTUAL_ENV", "PYTHONHOME":
			continue
		}
		rest = append(rest, kv)
	}
	return append([]string{
		"PATH=" + VenvDir + "/bin:" + path,
		"VIRTUAL_ENV=" + VenvDir,
		"PYTHONDONTWRITEBYTECODE=1",
	}, rest...)
}
