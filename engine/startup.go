package engine

import "sync"

// startupListing holds what one listing of a containerd store, taken as
// the engine starts, says about each key, until done: BuildKit's worker
// and controller ask containerd about every cache record and result one
// round trip at a time while they load, and the wrappers beside it
// (snapstat.go, contentstat.go, leasestat.go) answer those calls from a
// listing instead. A nil map means the listing is over (or failed): every
// call goes to containerd.
type startupListing[K comparable, V any] struct {
	mu sync.Mutex
	m  map[K]V
}

// get returns what the listing holds for k.
func (l *startupListing[K, V]) get(k K) (v V, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	v, ok = l.m[k]
	return v, ok
}

// set records k while the listing is in use.
func (l *startupListing[K, V]) set(k K, v V) {
	l.mu.Lock()
	if l.m != nil {
		l.m[k] = v
	}
	l.mu.Unlock()
}

// drop forgets k (it changed or is gone) and reports whether it was
// listed, and whether the listing is still in use.
func (l *startupListing[K, V]) drop(k K) (ok, listed bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok = l.m[k]
	delete(l.m, k)
	return ok, l.m != nil
}

// done ends the start-up.
func (l *startupListing[K, V]) done() {
	l.mu.Lock()
	l.m = nil
	l.mu.Unlock()
}
