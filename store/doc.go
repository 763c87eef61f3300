// Package store is containerd's image store as skillbuild uses it: dial
// containerd, recognise skill images by their labels, list, remove and
// measure them, import base images from a rootfs, an OCI archive or an OCI
// layout, and tag. It links no BuildKit, so commands that only read or run
// images never load the solver.
package store
