// Package spec identifies what determines a skill's build: Digest hashes
// the skill's build inputs with the version of the graph skillbuild
// generates from them, so an image recorded with the same digest (on the
// same base) is what a new build would produce.
package spec
