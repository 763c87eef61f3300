// Package lock is the fully resolved, hash-pinned set of distributions a
// skill installs: parsed from pip's installation report, rendered as a
// requirements file and an image label, and named by PEP 503. A lock
// written by a step that ran package code is untrusted until checked.
package lock
