package llb

// Fixed paths inside every skill image.
const (
	VenvDir = "/opt/skill/venv"
	WorkDir = "/opt/skill"
	// LockFile is the hash-pinned lock inside every skill image.
	LockFile     = "/opt/skill/requirements.lock"
	FindLinksDir = "/run/skillbuild/find-links" // find-links directory N is mounted at FindLinksDir/N
	inputDir     = "/run/skillbuild/in"
	filesDir     = "/run/skillbuild/files"
	reportDir    = "/run/skillbuild/out"
	// ReportFile is the path of the resolution report inside the resolve
	// graph's output state.
	ReportFile = "/report.json"
	// User is the non-root user skill code runs as.
	User = "65532:65532"
)

// Step names: every exec step's name starts with one of these, so the
// engine can tell steps that run code from sources and file operations,
// and explain a failure by the kind of step that failed.
const (
	// StepVenv creates the skill's virtual environment.
	StepVenv = "create venv"
	// StepResolve resolves the requirements to a lock (pip --dry-run --report).
	StepResolve = "resolve requirements"
	// StepInstall installs one distribution, or one bucket of them.
	StepInstall = "install "
	// StepBuildWheel builds a wheel from a source distribution.
	StepBuildWheel = "build wheel "
	// StepCheckLayers checks the layers for files two distributions write.
	StepCheckLayers = "check layers for conflicting files"
)

// Steps lists the step-name prefixes in the order a build runs them.
var Steps = []string{StepVenv, StepResolve, StepBuildWheel, StepInstall, StepCheckLayers}
