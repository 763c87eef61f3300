// Package reuse answers an unchanged skill from containerd's image store,
// without BuildKit: when the image tagged for the skill was built from the
// same spec (spec.Digest, recorded as a label of its image record), on the
// same base image, and the vulnerability database still passes its
// recorded lock, that image is the answer and nothing is resolved,
// fetched, built or exported.
//
// It imports no BuildKit, so embedders (and the install command) can ask
// it before starting an engine.
package reuse
