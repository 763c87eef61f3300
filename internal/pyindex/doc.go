// Package pyindex builds Python package fixtures in pure Go and serves them
// from a local PEP 503 "simple" index, so integration tests and benchmarks
// can install packages without PyPI and without a Python toolchain to build
// them.
//
// Building:
//
//	BuildWheel(dir string, w Wheel) (path string, err error)
//	BuildSdist(dir string, s Sdist) (path string, err error)
//	GenerateSet(dir, prefix string, n int) ([]string, error)
//	CopyDebianWheels(dst string) ([]string, error)
//
// BuildWheel writes a PEP 427 wheel (name-version[-build]-tag.whl, tag
// py3-none-any unless Wheel.Tag says otherwise) with a
// package, extra files, METADATA, WHEEL, entry_points.txt and a RECORD whose
// hashes and sizes match. BuildSdist writes name-version.tar.gz with PKG-INFO
// and a setup.py (ConnectProbe makes a setup.py prelude that records whether
// a TCP connection succeeded). Both are deterministic: the same input gives
// the same bytes, and so the same sha256. GenerateSet writes n small distinct
// wheels for tests that need many packages. CopyDebianWheels copies Debian's
// pip, setuptools and wheel wheels (the build backend an sdist needs under
// build isolation) into an index directory.
//
// Serving:
//
//	Serve(dir string, opts ...Opt) (*Server, error)
//	WithCoreMetadata() Opt            // also serve wheels' METADATA (PEP 658/714), like PyPI
//	WithJSON() Opt                    // PEP 691 JSON pages to clients that ask for them
//	WithYanked(map[string]string) Opt // files yanked (PEP 592), with their reasons
//	(*Server).URL() string           // http://127.0.0.1:PORT/simple
//	(*Server).Addr() string          // 127.0.0.1:PORT
//	(*Server).Requests() []string    // every request path, in order
//	(*Server).Downloads() []string   // distribution files served (not .metadata, not 404s)
//	(*Server).ResetRequests()
//	(*Server).Close() error
//
// The server rescans dir on every request, so tests may add files after it
// started. It serves:
//
//	/simple/                      links to every project (PEP 503-normalized names)
//	/simple/<name>/               one anchor per file: href="../../files/<file>#sha256=<hex>",
//	                              and data-requires-python when the metadata has Requires-Python
//	/files/<file>                 the distribution file
//	/files/<wheel>.metadata       with WithCoreMetadata: the wheel's METADATA (PEP 658), and
//	                              the anchors carry data-dist-info-metadata/data-core-metadata
//
// A project page requested under a non-normalized name, or without its
// trailing slash, redirects (301) to the normalized URL, as PyPI does; an
// unknown project is 404.
package pyindex
