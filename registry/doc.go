// Package registry moves skill images between containerd's content store
// and OCI registries: push (only the blobs a registry lacks, the tagged
// manifest last) and pull (unpacked for a snapshotter, tagged last).
// Credentials come from a Docker config file (its auths entries and
// credential helpers, read by docker/cli's own reader); TLS uses the system
// CAs plus any given; plain HTTP is used only for hosts named insecure.
//
// It also signs pushed images and verifies them (cosign's classic
// signature artifacts, in the format of the signature package): Sign,
// Verify, a pull that verifies before it fetches (WithTrustedKeys), and
// FetchSignature for an image already here.
//
// The package links containerd's client and remotes but no BuildKit
// solver: the runtime side of a host (pull, run) does not need one.
package registry
