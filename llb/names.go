package llb

import "github.com/skillbuild/skillbuild/layers"

// Fixed paths inside every skill image (package layers owns the image's
// layout), and inside build steps.
const (
	VenvDir      = layers.VenvDir
	WorkDir      = layers.WorkDir
	LockFile     = layers.LockFile
	FindLinksDir = "/run/skillbuild/find-links" // find-links directory N is mounted at FindLinksDir/N
	inputDir     = "/run/skillbuild/in"
	filesDir     = "/run/skillbuild/files"
	reportDir    = "/run/skillbuild/out"
	reportSub    = "/r" // owned by BuildUser, so pip can write there when the step runs as that user
	// ReportFile is the path of the resolution report inside the resolve
	// graph's output state.
	ReportFile = reportSub + "/report.json"
	// EnvironmentFile is the path of the base's python environment inside
	// PythonEnvironment's output state.
	EnvironmentFile = reportSub + "/environment.json"
	// RequirementsFile is where the resolve step reads the requirement
	// lines (pip names them "-r RequirementsFile (line N)").
	RequirementsFile = inputDir + "/requirements.txt"
	// User is the non-root user skill code runs as.
	User = layers.User
	// BuildUser is the unprivileged user of the steps that run package
	// code at build time: resolving with source distributions allowed
	// (pip runs their setup.py for metadata) and building a source
	// distribution into a wheel. 65534 is "nobody", which Debian-based
	// images list in /etc/passwd (build tools look the user up). Installs
	// run no package code and stay root: they write into the root-owned
	// venv.
	BuildUser = "65534:65534"
	BuildUID  = 65534
	BuildGID  = 65534
)

// Step names: every exec step's name starts with one of these, so the
// engine can tell steps that run code from sources and file operations,
// and explain a failure by the kind of step that failed.
const (
	// StepVenv creates the skill's virtual environment.
	StepVenv = "create venv"
	// StepInspect asks the base's python what the builtin resolver needs
	// to know of it (tags, marker values), once per base.
	StepInspect = "inspect python"
	// StepResolve resolves the requirements to a lock (pip --dry-run --report).
	StepResolve = "resolve requirements"
	// StepInstall installs one distribution, or one bucket of them.
	StepInstall = "install "
	// StepBuildWheel builds a wheel from a source distribution.
	StepBuildWheel = "build wheel "
	// StepCheckLayers lists the layers' real contents for the engine to
	// check (nothing outside the venv, the locked dist-info, no file in
	// two layers).
	StepCheckLayers = "check layers"
)

// Steps lists the step-name prefixes in the order a build runs them.
var Steps = []string{StepVenv, StepInspect, StepResolve, StepBuildWheel, StepInstall, StepCheckLayers}
