package resolver

import (
	"errors"
	"fmt"
	"strings"
)

// ErrUnsupported marks a resolution the builtin resolver leaves to pip;
// the error's text says why.
var ErrUnsupported = errors.New("not supported by the builtin resolver")

func errorsIs(err, target error) bool { return errors.Is(err, target) }

// ConflictError is pip's ResolutionImpossible for requirements that
// cannot all be met: what pip would print as "Cannot install TRIGGERS
// because these package versions have conflicting dependencies" and "The
// conflict is caused by: CAUSES".
type ConflictError struct {
	// Triggers are pip's names for the requirements in conflict, sorted:
	// "-r FILE (line N)" for a line of the requirements file, a project
	// name for a dependency of one, "NAME==VERSION" otherwise.
	Triggers []string
	// Causes are "NAME VERSION depends on REQ" or "The user requested REQ".
	Causes []string
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("Cannot install %s because these package versions have conflicting dependencies. The conflict is caused by: %s",
		textJoin(e.Triggers), strings.Join(e.Causes, "; "))
}

func textJoin(parts []string) string {
	switch len(parts) {
	case 0:
		return "the requested packages"
	case 1:
		return parts[0]
	}
	return strings.Join(parts[:len(parts)-1], ", ") + " and " + parts[len(parts)-1]
}

// NoMatchError is pip's "Could not find a version that satisfies the
// requirement REQ (from versions: VERSIONS)".
type NoMatchError struct {
	// Name is the project's canonical name.
	Name string
	// Requirement is the requirement as pip prints it, with "(from
	// PARENT)" for a dependency.
	Requirement string
	// Versions are every version the sources have of the project (files
	// this interpreter can use), sorted; empty for "none".
	Versions []string
}

func (e *NoMatchError) Error() string {
	v := strings.Join(e.Versions, ", ")
	if v == "" {
		v = "none"
	}
	return fmt.Sprintf("Could not find a version that satisfies the requirement %s (from versions: %s)", e.Requirement, v)
}

// PythonError is pip's UnsupportedPythonVersion: a distribution the
// resolution needs requires another Python.
type PythonError struct {
	Message string
}

func (e *PythonError) Error() string { return e.Message }
