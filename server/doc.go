// Package server is skillbuild's local HTTP/JSON API: the commands of the
// CLI (install, scan, list, remove, run, inspect) as endpoints that answer
// with the same JSON documents as their --json output, plus health,
// Prometheus metrics and the OpenAPI document. It owns the HTTP side
// only: listening (a unix socket with a group and mode 0660, or TCP on
// loopback with a bearer token), request decoding with capped bodies, the
// error document and status of a failed request, streamed build progress,
// metrics, and draining on shutdown. What
// each endpoint does is the Backend's (package skill's Service, which the
// CLI calls too), and every request and document is a type of package
// skill/api, so the server and the CLI cannot drift apart. The OpenAPI
// document (openapi.json) is generated from the route table and those
// types, and the tests check it against both.
//
// # Endpoints
//
//	GET  /v1/health              {"ok": true, ...}
//	GET  /v1/skills              the document of `skillbuild ls --json` (?unpacked=true: `ls --unpacked`)
//	POST /v1/install             api.InstallRequest → `install --json`'s document;
//	                             with "progress": true, NDJSON events then the result
//	POST /v1/scan                api.ScanRequest → `scan --json`'s document
//	POST /v1/remove              api.RemoveRequest → `rm --json`'s document
//	POST /v1/run                 api.RunRequest → `run --json`'s document
//	POST /v1/inspect             api.InspectRequest → `inspect --json`'s document
//	POST /v1/sessions            api.SessionRequest → 201 api.Session
//	POST /v1/sessions/{id}/run   api.SessionRunRequest → api.SessionRunResult
//	DELETE /v1/sessions/{id}     ends it → api.Session with "ended": "closed"
//	GET  /v1/sessions            the caller's open sessions (api.SessionList)
//	GET  /v1/openapi.json        this API as an OpenAPI 3.1 document
//	GET  /metrics                Prometheus text format
//
// Every response carries the CLI's exit code of the operation in the
// header X-Skillbuild-Exit-Code; the HTTP status follows from it (0: 200,
// 2: 400, 3: 422, 4: 404, 75: 503, others 500; 201 for a session
// opened, 429 for too many sessions). A request the server cannot decode
// gets {"error": "...", "exit_code": 2} with status 400 (413 when the body
// is too large).
//
// # Identity
//
// A session belongs to the identity that opened it, which the server
// gives the Backend with each session request: the uid of the peer of a
// unix socket connection (SO_PEERCRED, read when it connected), or the
// bearer token's holder over TCP. The Backend holds the rule.
package server
