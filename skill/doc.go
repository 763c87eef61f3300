// Package skill is skillbuild's service: every operation of the product
// (install, scan, run, pull, push, load, inspect, list, remove, prune,
// base import, the vulnerability database) with its order and its rules —
// the scan gate before anything is installed, admission before anything
// runs, which names an image may take, the sweep of what dead processes
// left. The command line (package cli) and the HTTP API (package server)
// each turn their input into a request of package skill/api, make one
// call to a Service and print or send the document it returns, so the two
// faces cannot drift apart.
//
// Sessions (OpenSession, SessionRun, CloseSession, ListSessions) are a
// server's: one warm container whose interpreter serves a sequence of
// calls, opened under the same resolution, ceilings and admission as a
// run, bound to its opener's identity, capped in number and ended when
// idle, at its lifetime, by a call that kills it, or at Close.
//
// A Service holds what the operations share: one containerd client
// (dialled when first needed), the state root and its database, how
// builders are started, the runner and, for a server, the warm pool, and
// the registry settings. It never reads flags, files of its own choosing or
// the environment, and never prints to stdout: warnings go to the writer
// given with WithLog.
package skill
