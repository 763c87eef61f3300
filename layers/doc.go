// Package layers knows the layout of a skill image and checks it from the
// layer blobs themselves: the base's layers, then the virtual
// environment's (VenvDir), one layer per distribution (or bucket of
// them) that may only add files of its own below the venv, and the lock
// file's last (LockFile). It lists a layer blob's files (caching the list
// by the blob's digest) and checks the lists: nothing outside the venv,
// exactly the locked distributions' dist-info directories, no file of the
// venv's own replaced or deleted, no file written by two layers.
//
// The build uses it on what it exported before it tags an image;
// admission uses it on an image that came from elsewhere before it runs.
// It reads a content store only, and links no BuildKit.
package layers
