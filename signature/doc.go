// Package signature signs and verifies skill images in cosign's classic
// format, offline: a signature artifact beside the image in its
// repository, tagged sha256-<hex>.sig after the digest it signs, whose
// layers are simple-signing payloads (the signed manifest digest and the
// repository) each carrying a base64 signature in an annotation. cosign
// verify --key accepts what Signer signs, and KeySet accepts what
// cosign sign --key signed.
//
// Keys are PEM files: ECDSA P-256 or RSA (2048 bits or more) private keys,
// plain (PKCS#8, SEC 1, PKCS#1) or encrypted (cosign.key, PKCS#8
// ENCRYPTED PRIVATE KEY); public keys as PKIX "PUBLIC KEY" blocks, one file
// each. Signatures are over SHA-256, as cosign verify checks them. There
// is no transparency log and no certificate: trust is the set of public
// keys the operator gave (see docs/signing.md).
//
// The package knows the format, the keys and a content store
// (content.Provider/Store: a registry's blobs or containerd's); moving
// artifacts to and from registries is the registry package's.
package signature
