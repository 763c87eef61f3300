// Package client is the Go client of skillbuild's HTTP API (`skillbuild
// serve`, package server). Its methods take the requests and return the
// documents of package skill/api with the same signatures as the service's
// (package skill), so a caller that makes one call runs an operation
// locally or on a server alike: the command line's --host is this client.
//
// What a request's Local part holds (paths and streams of the caller's
// host, pulls, admission overrides) does not travel: the client refuses a
// request that sets any of it, except a run's Stdout and Stderr, which get
// the code's output once the run is over (the API does not stream it).
// The caller turns skill.yaml and -r files into the request's fields first
// (the requests' Wire methods).
//
// A failure the server reports is an *Error whose exit code is the one the
// server reported: it unwraps to the errdefs class of that code (or to the
// refusal for known vulnerabilities, with the findings), so api.ExitCode
// classifies it as the server did. A server that cannot be reached is
// errdefs.ErrUnavailable (exit code 75, try again).
//
// The package links net/http and skill/api only: no engine, runtime or
// containerd.
package client
