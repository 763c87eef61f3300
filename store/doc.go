// Package store is containerd's image store as skillbuild uses it: dial
// containerd, recognise skill images by their labels, list, remove and
// measure them, import base images from a rootfs, and images from an OCI
// archive or layout (untrusted input: bounded reads, nothing named until
// the caller names it), and tag (all names or none). It links no BuildKit,
// so commands that only read or run images never load the solver.
package store
