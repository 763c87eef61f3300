// Package labels names the labels skillbuild writes into every skill
// image's config. The image store recognises skill images by them, the
// build writes them, and other tools read them; the verdict's labels are
// the scan package's.
package labels

const (
	// SkillID is the skill's id.
	SkillID = "org.skillbuild.skill.id"
	// SkillVersion is the skill's version.
	SkillVersion = "org.skillbuild.skill.version"
	// Lock is the hash-pinned lock, or only its pins when that is too long
	// for a label (the whole lock is always a file in the image).
	Lock = "org.skillbuild.lock"
	// LockDigest identifies the lock's content.
	LockDigest = "org.skillbuild.lock.digest"
	// Packages is the number of distributions in the lock.
	Packages = "org.skillbuild.packages"
	// Base is the base image's reference.
	Base = "org.opencontainers.image.base.name"
	// BaseDigest is the base image's manifest digest.
	BaseDigest = "org.opencontainers.image.base.digest"
	// Preload is the skill's preload list, comma-separated: the modules a
	// warm run container imports before its job comes. Absent when empty.
	Preload = "org.skillbuild.preload"
)

// SpecDigest is the digest of everything that determines a skill's build
// (see spec.Digest). It is a label of the image record in containerd
// only, not of the image config: it is a local cache key (it covers the
// find-links directories' listings), not part of the image's identity.
const SpecDigest = "org.skillbuild.spec.digest"

// IndexDigest is the digest of the index settings the image's lock was
// resolved with (see spec.IndexDigest); like SpecDigest, a label of the
// image record only. A later build of the skill with the same settings
// may resolve only what its requirements add.
const IndexDigest = "org.skillbuild.index.digest"
