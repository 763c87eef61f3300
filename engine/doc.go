// Package engine owns BuildKit: it runs BuildKit's controller inside the
// skillbuild process with the containerd worker (no build daemon), holds
// the state root's lock, solves the llb package's graphs (resolve, then
// the per-distribution installs), checks the resolved lock's sources
// (lock.Lock.Check) and passes it through a Gate (the vulnerability scan)
// before anything is fetched, fetches only through the index proxy's
// policy, checks every layer's real contents, exports the result and tags
// it last. It is the only package that links BuildKit's solver.
//
// One call builds a skill:
//
//	e, err := engine.New(ctx, engine.WithAddress(sock), engine.WithRoot(dir))
//	res, err := e.Build(ctx, engine.Request{Skill: s, Gate: scan.Gate(open, s.Policy, nil)})
package engine
