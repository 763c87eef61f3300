// Package api holds the documents of skillbuild's operations: each
// operation's request and its result, exactly as `--json` prints them and
// as the HTTP API takes and returns them. One definition serves the CLI,
// the server, the service that fills them (package skill), the tests and
// the benchmarks; the JSON tags are the contract.
//
// A request's fields with JSON tags are what an API caller may send.
// Fields tagged `json:"-"` (the Local parts) are the command line's: paths
// and streams of the host the service runs on, which no API caller can
// set.
//
// The package also maps errors to the exit codes the CLI documents and the
// API reports (ExitCode), so both faces classify failures in one place.
// It knows no engine, runtime or containerd: the server links only this.
package api
