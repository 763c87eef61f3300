package signature

import (
	"crypto/elliptic"
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The keys in testdata/keys were made with:
//
//	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ec-pkcs8.key
//	openssl ecparam -name prime256v1 -genkey -noout -out ec-sec1.key
//	openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa.key
//	openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -out rsa1024.key
//	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out ec-p384.key
//	openssl genpkey -algorithm ED25519 -out ed25519.key
//	openssl pkcs8 -topk8 -in ec-pkcs8.key -v2 aes-256-cbc -passout pass:'test password' -out ec-pkcs8-encrypted.key
//	openssl pkey -in X.key -pubout -out X.pub
//
// and cosign.key/cosign.pub with `COSIGN_PASSWORD='test password' cosign
// generate-key-pair` (cosign v3.1.3).

const testPassword = "test password"

func keyFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "keys", name))
	require.NoError(t, err)
	return b
}

func TestParsePrivateKey(t *testing.T) {
	t.Parallel()
	// cosign generate-key-pair with COSIGN_PASSWORD='', from sigstore's
	// own generator (scrypt makes every encrypted case cost ~0.1 s).
	emptyPass, _, err := cryptoutils.GeneratePEMEncodedECDSAKeyPair(elliptic.P256(), cryptoutils.StaticPasswordFunc([]byte{}))
	require.NoError(t, err)

	for _, tc := range []struct {
		name     string
		pem      []byte
		password string
		pub      string // the matching public key file, when there is one
		wantErr  string
	}{
		{name: "ECDSA P-256 PKCS#8", pem: keyFile(t, "ec-pkcs8.key"), pub: "ec-pkcs8.pub"},
		{name: "ECDSA P-256 SEC 1", pem: keyFile(t, "ec-sec1.key"), pub: "ec-sec1.pub"},
		{name: "RSA 2048", pem: keyFile(t, "rsa.key"), pub: "rsa.pub"},
		{name: "PKCS#8 encrypted", pem: keyFile(t, "ec-pkcs8-encrypted.key"), password: testPassword, pub: "ec-pkcs8.pub"},
		{name: "PKCS#8 encrypted, wrong password", pem: keyFile(t, "ec-pkcs8-encrypted.key"), password: "nope", wantErr: "is encrypted"},
		{name: "PKCS#8 encrypted, no password", pem: keyFile(t, "ec-pkcs8-encrypted.key"), wantErr: "COSIGN_PASSWORD"},
		{name: "cosign.key", pem: keyFile(t, "cosign.key"), password: testPassword, pub: "cosign.pub"},
		{name: "cosign.key, wrong password", pem: keyFile(t, "cosign.key"), password: "nope", wantErr: "is encrypted"},
		{name: "cosign.key with an empty password", pem: emptyPass},
		{name: "ECDSA P-384", pem: keyFile(t, "ec-p384.key"), wantErr: "P-384 is not supported"},
		{name: "Ed25519", pem: keyFile(t, "ed25519.key"), wantErr: "ed25519.PublicKey keys are not supported"},
		{name: "RSA 1024", pem: keyFile(t, "rsa1024.key"), wantErr: "1024 bits is too small"},
		{name: "a public key", pem: keyFile(t, "ec-pkcs8.pub"), wantErr: "unknown private key PEM file type"},
		{name: "not PEM", pem: []byte("hello"), wantErr: "no PEM block"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var pw []byte
			if tc.password != "" {
				pw = []byte(tc.password)
			}
			s, err := ParsePrivateKey("k.key", tc.pem, pw)
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.True(t, errdefs.IsInvalidArgument(err), "%v", err)
				assert.Contains(t, err.Error(), tc.wantErr)
				assert.Contains(t, err.Error(), "k.key", "the error names the file")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, "k.key", s.Name)
			assert.Regexp(t, `^sha256:[0-9a-f]{64}$`, s.Key().ID)
			if tc.pub != "" {
				pub, err := ParsePublicKey(tc.pub, keyFile(t, tc.pub))
				require.NoError(t, err)
				assert.Equal(t, pub.ID, s.Key().ID, "the private key is the public key's")
			}
			pemPub, err := s.PublicKeyPEM()
			require.NoError(t, err)
			k, err := ParsePublicKey("derived", pemPub)
			require.NoError(t, err)
			assert.Equal(t, s.Key().ID, k.ID)
		})
	}
}

func TestParsePublicKey(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		file, wantErr string
	}{
		{file: "ec-pkcs8.pub"},
		{file: "rsa.pub"},
		{file: "cosign.pub"},
		{file: "ec-p384.pub", wantErr: "P-384 is not supported"},
		{file: "ed25519.pub", wantErr: "not supported"},
		{file: "ec-pkcs8.key", wantErr: "expected a PEM \"PUBLIC KEY\" block"},
	} {
		k, err := ParsePublicKey(tc.file, keyFile(t, tc.file))
		if tc.wantErr != "" {
			assert.True(t, errdefs.IsInvalidArgument(err), "%s: %v", tc.file, err)
			assert.ErrorContains(t, err, tc.wantErr)
			continue
		}
		require.NoError(t, err, tc.file)
		assert.Equal(t, tc.file, k.Name)
	}
}

// TestKeyIDIsOpenSSLFingerprint pins the fingerprint to the SHA-256 of the
// DER public key: `openssl pkey -pubin -in ec-pkcs8.pub -outform DER |
// sha256sum`.
func TestKeyIDIsOpenSSLFingerprint(t *testing.T) {
	t.Parallel()
	k, err := ParsePublicKey("ec-pkcs8.pub", keyFile(t, "ec-pkcs8.pub"))
	require.NoError(t, err)
	want, err := os.ReadFile(filepath.Join("testdata", "keys", "ec-pkcs8.pub.sha256"))
	require.NoError(t, err)
	assert.Equal(t, "sha256:"+string(want[:64]), k.ID)
}

func TestLoadKeySet(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, f := range []string{"ec-pkcs8.pub", "rsa.pub"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, f), keyFile(t, f), 0o644))
	}
	// Not *.pub: not read, even when it is no key at all.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "README"), []byte("trusted signers"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "signer.key"), keyFile(t, "ec-sec1.key"), 0o600))
	single := filepath.Join(t.TempDir(), "cosign.pem")
	require.NoError(t, os.WriteFile(single, keyFile(t, "cosign.pub"), 0o644))

	ks, err := LoadKeySet(dir, single)
	require.NoError(t, err)
	var names []string
	for _, k := range ks.Keys() {
		names = append(names, k.Name)
	}
	assert.Equal(t, []string{filepath.Join(dir, "ec-pkcs8.pub"), filepath.Join(dir, "rsa.pub"), single}, names)

	_, err = LoadKeySet(t.TempDir())
	assert.True(t, errdefs.IsInvalidArgument(err), "an empty trust directory: %v", err)
	assert.ErrorContains(t, err, "no *.pub file")

	_, err = LoadKeySet(filepath.Join(dir, "missing.pub"))
	assert.True(t, errdefs.IsInvalidArgument(err), "a path naming nothing is bad input: %v", err)
	_, err = LoadPrivateKey(filepath.Join(dir, "missing.key"), nil)
	assert.True(t, errdefs.IsInvalidArgument(err), "%v", err)

	bad := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(bad, "p384.pub"), keyFile(t, "ec-p384.pub"), 0o644))
	_, err = LoadKeySet(bad)
	assert.True(t, errdefs.IsInvalidArgument(err), "%v", err)
	assert.ErrorContains(t, err, filepath.Join(bad, "p384.pub"))

	_, err = LoadKeySet()
	assert.True(t, errdefs.IsInvalidArgument(err), "no paths: %v", err)
}
