// Package scan matches a resolved set of Python distributions against an
// offline OSV database of PyPI advisories and applies a vulnerability policy.
//
// The database is an OSV bulk export for the PyPI ecosystem (a zip archive of
// <ID>.json members, the layout of osv.dev's PyPI/all.zip). [Update] and
// [Import] install one under a state root with a manifest, [Status] reports
// the manifest, and [Open] loads it for scanning. [OpenFile] loads an export
// file directly; its age counts from the file's modification time.
//
// [Import] and [Update] also write a per-package index beside the export:
// each package's advisories compiled, with every version replaced by its
// rank in PEP 440 order. [Open] uses it while it matches the installed
// export, so a scan reads and decodes only the packages it checks and
// matches them with integer comparisons; otherwise it loads the whole
// export (and rewrites the index).
//
// [Check] decides, for a set of pinned packages, which advisories apply (per
// the OSV schema's range semantics and PEP 440 ordering), which of them the
// policy allows, and whether the set is refused; a refusal is a
// [*VulnerableError].
//
// Scanning never touches the network; only [Update] does.
package scan
