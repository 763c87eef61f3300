// Package llb compiles a validated skill into BuildKit LLB graphs.
//
// It is pure: values in, llb.State out. Nothing here talks to a daemon,
// the network or containerd. There are two graphs per skill:
//
//   - Resolve: base image ─► pip install --dry-run --report (the base's own
//     python3, which is also the venv's), whose output directory holds
//     report.json. The build
//     package solves it, reads the report back and turns it into a lock.Lock
//     (ParseReport).
//   - Install: the lock.Lock's files fetched by hash (llb.HTTP with a checksum,
//     or a local find-links directory), installed with the network off by
//     wheelinstall.py, one llb.Diff layer per distribution on the same venv
//     (made by mkvenv.py); every file these steps write has the epoch as its
//     time (FixedTimes), so layers need no rewrite at export;
//     ListLayers lists what the layers really hold, for the engine to check
//     (builders whose exported blobs the engine cannot read itself).
//
// Steps that run package code (Resolve with source distributions allowed,
// and source builds) run as BuildUser, not root.
//
// Every exec sets its network mode explicitly and carries the build limits
// (memory, swap = memory, CPU quota) as op metadata.
package llb
