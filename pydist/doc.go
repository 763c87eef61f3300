// Package pydist reads Python distributions as a package index serves
// them, the way pip 23.0 reads them: project pages (PEP 503 HTML and PEP
// 691 JSON) into links with pip's URL cleaning, hashes, Requires-Python,
// yanked reasons and PEP 658 metadata attributes (ParseHTML, ParseJSON,
// Link); wheel file names and their tags (ParseWheelName); core metadata
// as Python's email parser reads it (ParseMetadata); and a wheel's
// METADATA (WheelMetadata).
//
// Every parser is strict where pip's behaviour turns on details this
// package does not reproduce (an unusual character in a link, an entity
// other than the common ones, a page in another encoding, a wheel with
// two .dist-info directories): it returns an ErrUnsupported error, and the
// caller leaves that project to pip. Input is untrusted; parsers bound
// what they read and never panic (they are fuzzed).
package pydist

import "errors"

// ErrUnsupported marks input pip would read in a way this package does
// not reproduce exactly.
var ErrUnsupported = errors.New("not supported by the in-process reader")
