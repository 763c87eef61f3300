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
//   - ResolveAdded (instead of Resolve, when an earlier image of the skill
//     recorded a lock document whose requirements the skill's only add
//     to): pip --dry-run --report without --ignore-installed, run by
//     installedview.py under the interpreter of a throwaway venv whose
//     site-packages holds only dist-info directories synthesized from the
//     recorded metadata (DistInfo: METADATA and INSTALLER, nothing else).
//     pip keeps what that view satisfies, so the report lists, and pip
//     downloads, only what was added; the engine adds it to the previous
//     lock, or resolves everything when the report replaces a locked
//     distribution.
//   - Install: the lock.Lock's files fetched by hash (llb.HTTP with a checksum,
//     or a local find-links directory), installed with the network off by
//     wheelinstall.py, one llb.Diff layer per distribution on the same venv
//     (made by mkvenv.py); every file these steps write has the epoch as its
//     time (FixedTimes), so layers need no rewrite at export;
//     ListLayers lists what the layers really hold, for the engine to check
//     (builders whose exported blobs the engine cannot read itself).
//
// Trust: the view ResolveAdded resolves on holds no file of any package
// (no module, no .pth, no script): the interpreter running pip there
// executes only the standard library and the base's pip, exactly as the
// full resolve's does, and the metadata it reads was recorded by
// skillbuild from a report whose lock passed the source checks. Source
// distributions, whose build code would run in that step, are not
// resolved that way.
//
// Steps that run package code (Resolve with source distributions allowed,
// and source builds) run as BuildUser, not root.
//
// Every exec sets its network mode explicitly and carries the build limits
// (memory, swap = memory, CPU quota) as op metadata.
package llb
