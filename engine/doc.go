// Package engine owns BuildKit: it runs BuildKit's controller inside the
// skillbuild process with the containerd worker (no build daemon), holds
// the state root's lock, solves the llb package's graphs (resolve, then
// the per-distribution installs), checks the resolved lock's sources
// (lock.Lock.Check) and passes it through a Gate (the vulnerability scan)
// before anything is fetched, fetches only through the index proxy's
// policy, checks every layer's real contents (the embedded builder from the
// exported layer blobs, before the tag; other builders in a listing step
// before the export), exports the result and tags it last. It is the only
// package that links BuildKit's solver.
//
// WithBuilder picks where the graphs are solved: in-process with the
// containerd worker (the default), in-process with the OCI worker and no
// containerd (BuilderEmbeddedOCI), or on a running buildkitd (tcp://,
// unix://) through the same client and session. Results go to Outputs
// (OCIArchive, OCILayout) and, for the embedded builder or with Load, to
// containerd; each output names the image only once the build succeeded,
// and treats an existing path the same on every builder (Export writes
// the embedded builder's image by the same rules).
//
// The embedded builder runs the per-layer install steps that start
// together (within a few milliseconds: a cold build's installs) as one
// container: its executor binds the other steps' root filesystems, each
// with its own mounts, below the first step's /tmp, and one Python process
// forks a chroot per step that runs that step's own installer, so every
// layer is byte for byte the one its step makes alone and the graph, its
// cache keys and the layer digests do not change. Each step keeps its own
// exit status and log (a refused wheel fails only its step); steps that
// differ in anything but the installer's arguments (limits, env, network,
// user) never share a container. The container has one step's limits,
// but for the CPU quota: N steps' for the N installs it runs at once (each
// a single-threaded process); an install killed under the shared memory
// limit runs again alone. The embedded-oci and remote builders run one
// container per step.
//
// With Request.Previous (reuse.Previous: the lock document an earlier
// image of the skill carries, as every image now does next to its SBOM),
// a build whose requirements only add to that image's resolves only what
// they add (llb.ResolveAdded) and extends its lock; a report that
// replaces a locked distribution, or a step that fails, falls back to the
// full resolve. Either way the whole lock is checked and gated.
//
// Several state roots may build at once in one containerd namespace: the
// leases of an engine carry its root, so it lists and clears only its
// own, and a closing engine clears what a dead process of any root left
// (its lock is free) — step containers, staging images, mounts, build
// cgroup, leases.
//
// One call builds a skill:
//
//	e, err := engine.New(ctx, engine.WithAddress(sock), engine.WithRoot(dir))
//	res, err := e.Build(ctx, engine.Request{Skill: s, Gate: scan.Gate(open, s.Policy, nil)})
package engine
