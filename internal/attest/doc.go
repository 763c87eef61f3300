// Package attest makes and reads the attestations a skill image carries:
// an SPDX 2.3 SBOM of its lock and the scan verdict, as in-toto
// statements in the attestation-manifest layout BuildKit's --sbom and
// --provenance produce (an index holding the image manifest and an
// attestation manifest that points back at it with the annotations
// vnd.docker.reference.type=attestation-manifest and
// vnd.docker.reference.digest), so that registries, skopeo, buildx
// imagetools and docker scout read them as they read BuildKit's own.
//
// The package works on a containerd content store and links no BuildKit
// solver.
package attest
