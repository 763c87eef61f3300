// Package scan matches a resolved set of Python distributions against an
// offline OSV database of PyPI advisories and applies a vulnerability policy.
//
// The database is an OSV bulk export for the PyPI ecosystem (a zip archive of
// <ID>.json members, the layout of osv.dev's PyPI/all.zip). [Update] and
// [Import] install one under a state root with a manifest, [Status] reports
// the manifest, and [Open] loads it for scanning. [OpenFile] loads an export
// file directly; its age counts from the file's modification time.
//
// [Check] decides, for a set of pinned packages, which advisories apply (per
// the OSV schema's range semantics and PEP 440 ordering), which of them the
// policy allows, and whether the set is refused; a refusal is a
// [*VulnerableError].
//
// Scanning never touches the network; only [Update] does.
package scan
