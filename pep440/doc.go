// Package pep440 is Python's version scheme (PEP 440) as pip's vendored
// packaging 21.3 implements it: Version parses, normalizes and orders
// versions; Specifier and SpecifierSet match them, with that release's
// rules for pre-releases, post-releases, local versions and prefix
// matching.
//
// The vulnerability scan (package scan) orders the versions of OSV records
// with it, and the in-process resolver (package resolver) matches
// candidates with it exactly as pip in the base image would.
//
// Strings packaging 21.3 would keep as a LegacyVersion or a
// LegacySpecifier (anything that is not PEP 440) are errors here:
// ErrInvalidVersion, ErrLegacySpecifier. Callers decide what such input
// means (junk in data, or a case to leave to pip). Versions must be ASCII.
package pep440
