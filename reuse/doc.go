// Package reuse answers an unchanged skill from containerd's image store,
// without BuildKit: when the image tagged for the skill was built from the
// same spec (spec.Digest, recorded as a label of its image record), on the
// same base image, and the vulnerability database still passes its
// recorded lock, that image is the answer and nothing is resolved,
// fetched, built or exported.
//
// Previous finds, for a skill that changed, the lock document of an
// earlier image of it that a build may extend instead of resolving every
// requirement again (same base, same index settings, requirements that
// only add to its own).
//
// It imports no BuildKit, so embedders (and the install command) can ask
// it before starting an engine.
package reuse
