package signature

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	sigstoresig "github.com/sigstore/sigstore/pkg/signature"
)

// hash is the digest every signature here is over: what cosign verify
// --key checks by default for ECDSA and RSA keys.
const hash = crypto.SHA256

// minRSABits is the smallest RSA key accepted.
const minRSABits = 2048

// keyHelp says which keys work and how to make one.
const keyHelp = "use an ECDSA P-256 key (`cosign generate-key-pair`, or `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`) or RSA of 2048 bits or more"

// checkKeyType accepts the public keys whose signatures cosign and this
// package make and check the same way (SHA-256): ECDSA P-256 and RSA
// PKCS#1 v1.5. cosign signs with Ed25519ph and with SHA-384/512 for
// larger curves but verifies with SHA-256 by default, so those keys would
// sign what cosign verify refuses.
func checkKeyType(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return fmt.Errorf("ECDSA key on curve %s is not supported; %s: %w", k.Curve.Params().Name, keyHelp, errdefs.ErrInvalidArgument)
		}
		return nil
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return fmt.Errorf("RSA key of %d bits is too small; %s: %w", k.N.BitLen(), keyHelp, errdefs.ErrInvalidArgument)
		}
		return nil
	}
	return fmt.Errorf("%T keys are not supported; %s: %w", pub, keyHelp, errdefs.ErrInvalidArgument)
}

// KeyID is "sha256:" and the hex SHA-256 of the key's DER
// SubjectPublicKeyInfo: `openssl pkey -pubin -outform DER | sha256sum`.
func KeyID(pub crypto.PublicKey) (string, error) {
	der, err := cryptoutils.MarshalPublicKeyToDER(pub)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(der)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// Key is a trusted public key.
type Key struct {
	// Name says where the key came from (its file), for messages and
	// results.
	Name string
	// ID is the key's fingerprint (KeyID).
	ID string

	v sigstoresig.Verifier
}

// ParsePublicKey reads one PEM public key ("PUBLIC KEY", or "RSA PUBLIC
// KEY") named name.
func ParsePublicKey(name string, pemBytes []byte) (Key, error) {
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(pemBytes)
	if err != nil {
		return Key{}, fmt.Errorf("public key %s: %v (expected a PEM \"PUBLIC KEY\" block, as cosign.pub): %w", name, err, errdefs.ErrInvalidArgument)
	}
	return newKey(name, pub)
}

func newKey(name string, pub crypto.PublicKey) (Key, error) {
	if err := checkKeyType(pub); err != nil {
		return Key{}, fmt.Errorf("public key %s: %w", name, err)
	}
	v, err := sigstoresig.LoadVerifier(pub, hash)
	if err != nil {
		return Key{}, fmt.Errorf("public key %s: %v: %w", name, err, errdefs.ErrInvalidArgument)
	}
	id, err := KeyID(pub)
	if err != nil {
		return Key{}, fmt.Errorf("public key %s: %v: %w", name, err, errdefs.ErrInvalidArgument)
	}
	return Key{Name: name, ID: id, v: v}, nil
}

// verify checks sig (raw bytes) over payload.
func (k Key) verify(payload, sig []byte) error {
	return k.v.VerifySignature(bytes.NewReader(sig), bytes.NewReader(payload))
}

// KeySet is the set of keys an image's signature may be by.
type KeySet struct {
	keys []Key
}

// NewKeySet trusts keys. An empty set trusts nothing, and every
// verification with it fails.
func NewKeySet(keys ...Key) KeySet {
	return KeySet{keys: append([]Key(nil), keys...)}
}

// Keys are the keys of the set, in the order given.
func (s KeySet) Keys() []Key { return append([]Key(nil), s.keys...) }

// Len is the number of keys.
func (s KeySet) Len() int { return len(s.keys) }

// names lists the keys for messages.
func (s KeySet) names() string {
	var n []string
	for _, k := range s.keys {
		n = append(n, k.Name)
	}
	return strings.Join(n, ", ")
}

// PubExt is the file extension LoadKeySet reads from a trust directory.
const PubExt = ".pub"

// LoadKeySet reads trusted public keys from paths: each a PEM file, or a
// directory whose *.pub files are read (not its subdirectories). It fails
// on an unreadable or unsupported key, and when paths hold no key at all:
// an empty trust set would refuse every image, which is never what was
// meant.
func LoadKeySet(paths ...string) (KeySet, error) {
	var keys []Key
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return KeySet{}, fmt.Errorf("trusted key %s: %w", p, classifyFS(err))
		}
		files := []string{p}
		if st.IsDir() {
			files, err = filepath.Glob(filepath.Join(p, "*"+PubExt))
			if err != nil {
				return KeySet{}, fmt.Errorf("trust directory %s: %w", p, err)
			}
			sort.Strings(files)
			if len(files) == 0 {
				return KeySet{}, fmt.Errorf("trust directory %s has no *%s file (put PEM public keys there, e.g. cosign.pub): %w", p, PubExt, errdefs.ErrInvalidArgument)
			}
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				return KeySet{}, fmt.Errorf("trusted key %s: %w", f, classifyFS(err))
			}
			k, err := ParsePublicKey(f, b)
			if err != nil {
				return KeySet{}, err
			}
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return KeySet{}, fmt.Errorf("no trusted keys given: %w", errdefs.ErrInvalidArgument)
	}
	return NewKeySet(keys...), nil
}

// classifyFS classifies a key file that cannot be read: one that does not
// exist is bad input (a flag or setting naming nothing), not a missing
// image.
func classifyFS(err error) error {
	if os.IsNotExist(err) {
		return fmt.Errorf("%v: %w", err, errdefs.ErrInvalidArgument)
	}
	if os.IsPermission(err) {
		return fmt.Errorf("%v: %w", err, errdefs.ErrPermissionDenied)
	}
	return err
}

// Signer signs images with one private key.
type Signer struct {
	// Name says where the key came from (its file).
	Name string
	sv   sigstoresig.SignerVerifier
	key  Key
}

// encryptedTypes are the PEM block types that need a password.
var encryptedTypes = map[string]bool{
	"ENCRYPTED SIGSTORE PRIVATE KEY": true, // cosign generate-key-pair
	"ENCRYPTED COSIGN PRIVATE KEY":   true, // older cosign
	"ENCRYPTED PRIVATE KEY":          true, // PKCS#8, openssl -aes256
}

// ParsePrivateKey reads a PEM private key named name: PKCS#8 "PRIVATE
// KEY", SEC 1 "EC PRIVATE KEY", PKCS#1 "RSA PRIVATE KEY", or encrypted
// with password: cosign's "ENCRYPTED SIGSTORE PRIVATE KEY" (cosign.key;
// cosign allows an empty password, so a nil password is tried as empty)
// or PKCS#8 "ENCRYPTED PRIVATE KEY". The key is decoded and decrypted by
// sigstore's cryptoutils, the same code cosign uses.
func ParsePrivateKey(name string, pemBytes, password []byte) (*Signer, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, fmt.Errorf("signing key %s: no PEM block (expected a PEM private key, e.g. cosign.key): %w", name, errdefs.ErrInvalidArgument)
	}
	if password == nil {
		password = []byte{}
	}
	priv, err := cryptoutils.UnmarshalPEMToPrivateKey(pemBytes, func(bool) ([]byte, error) { return password, nil })
	if err != nil {
		if encryptedTypes[block.Type] {
			return nil, fmt.Errorf("signing key %s is encrypted (%s) and could not be decrypted with the password given (%v); give its password (cosign's COSIGN_PASSWORD): %w",
				name, block.Type, err, errdefs.ErrInvalidArgument)
		}
		return nil, fmt.Errorf("signing key %s: %v: %w", name, err, errdefs.ErrInvalidArgument)
	}
	signer, ok := priv.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("signing key %s: %T cannot sign; %s: %w", name, priv, keyHelp, errdefs.ErrInvalidArgument)
	}
	if err := checkKeyType(signer.Public()); err != nil {
		return nil, fmt.Errorf("signing key %s: %w", name, err)
	}
	sv, err := sigstoresig.LoadSignerVerifier(priv, hash)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %v: %w", name, err, errdefs.ErrInvalidArgument)
	}
	key, err := newKey(name, signer.Public())
	if err != nil {
		return nil, err
	}
	return &Signer{Name: name, sv: sv, key: key}, nil
}

// LoadPrivateKey reads the PEM private key file path (see
// ParsePrivateKey).
func LoadPrivateKey(path string, password []byte) (*Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", path, classifyFS(err))
	}
	return ParsePrivateKey(path, b, password)
}

// Key is the signer's public key, as a verifier would trust it.
func (s *Signer) Key() Key { return s.key }

// PublicKeyPEM is the signer's public key as a PEM "PUBLIC KEY" block,
// what cosign.pub holds and a trust directory wants.
func (s *Signer) PublicKeyPEM() ([]byte, error) {
	pub, err := s.sv.PublicKey()
	if err != nil {
		return nil, err
	}
	return cryptoutils.MarshalPublicKeyToPEM(pub)
}

// sign signs payload (SHA-256, ASN.1 DER for ECDSA).
func (s *Signer) sign(payload []byte) ([]byte, error) {
	return s.sv.SignMessage(bytes.NewReader(payload))
}
