package api

import (
	"context"
	"errors"
	"syscall"

	"github.com/containerd/errdefs"
	"github.com/skillbuild/skillbuild/scan"
)

// Exit codes of the CLI, which the API reports beside each answer (the
// X-Skillbuild-Exit-Code header and the documents' exit_code). They are
// part of the contract (see the README).
const (
	ExitOK          = 0
	ExitFailed      = 1   // the build or run failed
	ExitBadInput    = 2   // invalid flags, skill.yaml, requirements or request
	ExitVulnerable  = 3   // refused: known vulnerabilities
	ExitNotFound    = 4   // image, skill or database not found
	ExitTempFail    = 75  // temporary: containerd unreachable, lock busy, too many sessions; try again
	ExitInterrupted = 130 // Ctrl-C or SIGTERM (128+SIGINT); what was started is cleaned up
	ExitBrokenPipe  = 141 // stdout or stderr closed by its reader (128+SIGPIPE)
)

// ExitCode classifies err into an exit code.
func ExitCode(err error) int {
	switch {
	case err == nil:
		return ExitOK
	case IsVulnerable(err):
		return ExitVulnerable
	case errors.Is(err, syscall.EPIPE):
		return ExitBrokenPipe
	case IsInterrupted(err):
		return ExitInterrupted
	case errdefs.IsInvalidArgument(err):
		return ExitBadInput
	case errdefs.IsNotFound(err):
		return ExitNotFound
	case errdefs.IsUnavailable(err), errdefs.IsAborted(err), errdefs.IsResourceExhausted(err):
		return ExitTempFail
	default:
		return ExitFailed
	}
}

// IsVulnerable reports whether err is a refusal for known vulnerabilities.
func IsVulnerable(err error) bool {
	var ve *scan.VulnerableError
	return errors.As(err, &ve)
}

// IsInterrupted reports whether err comes from a cancelled operation
// (Ctrl-C, SIGTERM, a client that went away).
func IsInterrupted(err error) bool {
	return errors.Is(err, context.Canceled) || errdefs.IsCanceled(err)
}

// ErrorDocument is the answer to a request that failed before its
// operation produced a document of its own.
type ErrorDocument struct {
	Error    string `json:"error"`
	ExitCode int    `json:"exit_code"`
}

// Finding is a known vulnerability of a package; AllowedFinding one that
// an allow entry accepts.
type (
	Finding        = scan.Finding
	AllowedFinding = scan.AllowedFinding
)

// VulnerableError is the refusal for known vulnerabilities; a client of
// a server makes one of the findings the server reported, so that the
// refusal classifies as it does where it happened.
type VulnerableError = scan.VulnerableError

// Findings are the blocking findings of a refusal for known
// vulnerabilities; ok is false for any other error.
func Findings(err error) (fs []Finding, ok bool) {
	var ve *scan.VulnerableError
	if errors.As(err, &ve) {
		return ve.Findings, true
	}
	return nil, false
}

// Face is whom a service's errors advise: the command line's user (flags,
// commands to type) or an API caller (request fields, endpoints).
type Face int

// The faces of the service.
const (
	FaceCLI Face = iota
	FaceAPI
)
