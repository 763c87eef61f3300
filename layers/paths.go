package layers

// Fixed paths inside every skill image.
const (
	// WorkDir is the skill's directory: the working directory of its code.
	WorkDir = "/opt/skill"
	// VenvDir is the skill's virtual environment, in a layer of its own
	// above the base's; every distribution layer adds files below it.
	VenvDir = "/opt/skill/venv"
	// LockFile is the hash-pinned lock, alone in the image's last layer.
	LockFile = "/opt/skill/requirements.lock"
)
