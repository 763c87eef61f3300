// Package rootless runs skillbuild for an ordinary user: containerd inside
// RootlessKit's user and mount namespaces, started and stopped as the
// user's systemd unit where a systemd user manager runs and as a plain
// background process where none does, and the way back into those
// namespaces for the skillbuild process itself.
//
// # The daemon
//
// Start runs `rootlesskit --net=host --copy-up=/etc --copy-up=/run
// --propagation=rslave CHILD...` in a new session, with its state directory
// under the user's runtime directory (Paths). CHILD is the caller's own
// binary in child mode (ChildMain): inside the namespaces it replaces the
// host's /run/containerd (where containerd 1.6 keeps shim sockets and
// FIFOs, a path it does not let a config move) with a user-owned directory,
// then becomes containerd with a generated config: root under
// $XDG_DATA_HOME, state and socket under $XDG_RUNTIME_DIR. The network is
// the host's: containerd itself needs none, and every build step and run
// gets a network namespace of its own anyway (slirp4netns would need
// /dev/net/tun, which not every host opens to users).
//
// With systemd, Unit is the user unit (ExecStart: the binary in
// Foreground mode, which becomes RootlessKit; Delegate=yes; KillMode=mixed),
// Systemd installs it and Start and Stop go through `systemctl --user`
// (WithSystemd, StopSystemd).
//
// Stop ends RootlessKit (which ends containerd), then kills whatever is
// left in the instance's user namespace — shims and their containers
// outlive containerd by design — so no process, mount or state directory
// survives it.
//
// # Entering the namespaces
//
// The embedded BuildKit worker mounts snapshots itself, which needs the
// mount namespace containerd sees, as root of its user namespace. Reexec
// replaces the calling process with `nsenter -U -m -t CHILD_PID
// --preserve-credentials` of itself, CHILD_PID being the pid RootlessKit
// records in its state directory (nerdctl does the same); InNamespace tells
// the re-executed process that it arrived.
//
// # Limits
//
// Run and build limits need cgroups. cgroup v1 delegates by ownership: root
// may run DelegateCgroups once to give a user a subtree of every
// hierarchy; DetectLimits finds it. cgroup v2 delegates a subtree whose
// directory and delegation files the user owns, and only root may move a
// process into it (cgroup2.go): with systemd, Delegate=yes on the user unit
// gives one, and Foreground moves RootlessKit into a leaf of it and enables
// the controllers for containers beside it; without systemd, root's
// DelegateCgroups makes one and moves the running instance into its leaf.
// Runs and build steps (containerd tasks, started by the daemon's shims)
// then get cgroups below it. Without any, limits fall back to rlimits,
// and the callers report which mechanism held each limit.
//
// # Run uids
//
// Inside the user namespace id 0 is the user and ids 1..N its subordinate
// ids; RunUIDRange is the block of them runs take a uid of their own from
// (RunUIDLow..RunUIDHigh-1), so concurrent runs share no uid on the host.
package rootless
