// Package resolver resolves Python requirements to a lock in process,
// giving the lock pip 23.0 in the base image gives (same distributions,
// versions, files, URLs and hashes) for the common case: wheels only,
// from http(s) indexes and find-links directories, requirements by name.
//
// It is pip's resolver ported, not a look-alike: resolvelib 0.8.1's
// backtracking (resolution.go), pip's provider and factory
// (preferences, candidate order, extras, Requires-Python, yanked files,
// installed distributions preferred, provider.go), pip's package finder
// (link evaluation, tag priorities, pre-release filtering, finder.go) and
// packaging 21.3's versions and markers (packages pep440, pep508). The
// interpreter's side (tags, marker values, version) comes from the base
// image itself (Environment, captured once per base by running its pip).
//
// Every network request goes through the http.RoundTripper it is given
// (the build's index proxy). Whatever pip would handle by rules not
// reproduced here (source distributions, URLs in requirements, legacy
// versions, an unreadable index, another pip version in the base) is an
// error wrapping ErrUnsupported with the reason: the caller then resolves
// with pip. A resolution pip would refuse is a *ConflictError, a
// *NoMatchError or a *PythonError, carrying what pip would report.
package resolver
