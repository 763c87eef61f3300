// Package config turns command-line flags and a skill.yaml file into a
// validated Skill. It is the only package that reads flags, files and the
// environment; everything downstream receives plain values.
//
// # Loading
//
// The CLI fills an Input with the raw values it received and calls Load
// once. For every value the first of these wins:
//
//  1. a flag the user set explicitly (named in Input.Set, keys are the
//     Flag* constants);
//  2. the value in skill.yaml (-f FILE);
//  3. a non-empty Input value the user did not set (a CLI-side default);
//  4. the package default (Default* constants).
//
// Lists are replaced, never merged: REQ arguments and -r files together
// replace skill.yaml's requirements, --extra-index-url replaces
// index.extra_urls, --find-links replaces index.find_links and --allow
// replaces policy.allow. Relative paths on the command line are resolved
// against Input.Dir (the working directory by default); relative paths in
// skill.yaml against the directory of skill.yaml. Find-links directories are
// stored as absolute paths and must exist. Repo and Base are stored fully
// qualified ("atom-skill" becomes "docker.io/library/atom-skill",
// "python:3.11-slim" becomes "docker.io/library/python:3.11-slim").
//
// Every problem is reported before anything runs, all at once (joined), as
// *Error values wrapping errdefs.ErrInvalidArgument that name the file and
// line, the skill.yaml field or the flag, e.g.
//
//	skill.yaml:7: run.memory: size "256q" has unknown unit "q": use k, m, g or t
//	requirements.txt:3: "-i https://x/simple": pip option -i is not allowed in requirements: ...
//
// # skill.yaml
//
// Unknown fields, duplicate keys and values of the wrong shape are errors.
// Scalars are kept as written, so "version: 3" and "version: 1.2.0" both
// work.
//
//	id: weather                    # required: [a-z0-9][a-z0-9._-]*, at most 63 characters
//	version: 3                     # required: positive integer or dotted numbers (1.2.0)
//	repo: atom-skill               # image repository; the tag is REPO:ID-vVERSION
//	base: docker.io/library/python:3.11-slim
//	requirements:                  # PEP 508 lines, one per item; or instead:
//	  - requests>=2.31             # requirements_file: requirements.txt (relative to skill.yaml)
//	  - tzdata ; sys_platform == "win32"
//	index:
//	  url: https://pypi.org/simple # http(s); empty means PyPI
//	  extra_urls: []
//	  find_links: [./wheels]       # local directories, relative to skill.yaml
//	  allow_sdist: false           # allow building source distributions
//	build: {memory: 1g, cpus: 1, pids: 512, timeout: 10m}
//	run: {memory: 256m, cpus: 0.5, pids: 64, timeout: 30s, tmpfs_size: 64m, output_limit: 1m}
//	preload: [numpy]               # modules serve's warm containers import before a run comes
//	resolver: auto                 # auto (builtin, pip when it cannot), pip or builtin; --resolver
//	policy:
//	  min_severity: high           # low, medium, high, critical; empty reports all
//	  no_scan: false
//	  allow_stale_db: false
//	  db_warn_age: 7d              # warn when the OSV database is older
//	  db_max_age: 30d              # refuse when it is older (unless allow_stale_db)
//	  allow:
//	    - {id: PYSEC-2023-228, package: pip, reason: "pip is not used at run time", expires: 2027-01-31}
//
// Sizes are bytes with an optional binary unit, case-insensitive: 512k,
// 256m, 1g, 64MiB, 1.5g, 1073741824. CPUs are a positive number (0.5).
// Pids are a positive integer. Durations use Go syntax (30s, 10m, 1h30m) or
// whole days (7d); all must be positive.
//
// # Requirements
//
// Requirement lines (REQ arguments, -r files, requirements_file, and the
// requirements list) are PEP 508 requirements without URLs:
//
//	name[extra,...] specifier,... ; marker
//
// with specifiers ~= == != <= >= < > === (PEP 440 versions; "==1.2.*"
// wildcards; the parenthesised form "name (>=1,<2)" too) and markers built
// from the PEP 508 variables, quoted strings, comparison operators, in,
// not in, and, or and parentheses. Names are normalized per PEP 503. A
// comment starts at a '#' at the start of a line or after whitespace. The
// following are rejected, each with its own message, because they would
// let a requirement file choose where code comes from or hide what is
// installed: pip options (-i, --index-url, --extra-index-url, -f,
// --find-links, --trusted-host, -r, -c, -e, --hash, anything starting with
// '-'), URLs and "name @ url" direct references, local paths and archive
// files (./x, /x, x.whl, x.tar.gz), line continuations ('\' at the end of a
// line), environment variables ($VAR, ${VAR}), control characters and
// invalid UTF-8. A project required twice is an error naming both lines.
// An empty requirement set is allowed.
//
// # Allowing a known vulnerability
//
// In skill.yaml an allow entry has id, reason and expires (YYYY-MM-DD), and
// optionally package. On the command line it is one string:
//
//	--allow ID[@PACKAGE]:YYYY-MM-DD:REASON
//	--allow PYSEC-2023-228@pip:2027-01-31:pip is not used at run time
//
// The id runs to the first ':', the date follows, and the reason is the
// rest (it may contain ':'). An entry is valid through the end of its
// expiry day UTC (AllowEntry.Expired). An expired entry is not a
// configuration error: the scanner reports it at scan time. Only malformed
// entries are rejected here.
package config
