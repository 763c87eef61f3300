// Package cli is the skillbuild command line: each command parses its
// flags into a request of package skill/api, makes one call to the
// service (package skill), and prints the document it returns, as text or
// as one --json document. Errors are printed once, by Main, and mapped
// there to the documented exit codes (api.ExitCode).
package cli
