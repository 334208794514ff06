// Package seal encrypts what Moat keeps at rest: secrets and the values of
// function KV buckets are sealed with AES-256-GCM before they reach the
// store, so the JetStream files under the data directory hold no plaintext.
//
// There are two levels of keys. Each scope ("secrets", "kv/contacts") has
// its own random 256-bit data key, kept in a KV bucket wrapped (encrypted)
// by the node's master key; see [DataKeys]. The master key lives only in a
// file outside JetStream (DATA/master.key by default); see [Keyring]. A copy
// of the store without the master key file reveals no data key and so no
// value. Keep the master key file out of backups of the store, or the
// backup carries its own key: --master-key-file can place it elsewhere.
//
// # Formats
//
// A sealed value is
//
//	version (1) | nonce (12 random bytes) | AES-256-GCM ciphertext and tag (16)
//
// with the version byte and the caller's additional data authenticated. The
// caller binds each value to where it is stored by passing scope + "\x00" +
// key name as additional data, so a sealed value moved to another key or
// scope fails to open. A wrapped data key is
//
//	version (1) | master key id (8) | nonce (12) | ciphertext and tag (16)
//
// authenticated with the version, the key id and the scope. The id lets
// [Keyring.Unwrap] pick the master key during and after a rotation; it is a
// truncated SHA-256 of a label and the key and reveals nothing of the key.
//
// Nonces are random, so one data key may seal at most 2^32 values before a
// nonce collision becomes a real risk. Each scope having its own key keeps
// every key far below that.
//
// # Rotating the master key
//
// A rotation re-wraps every data key; the values themselves are not
// re-encrypted. The sequence, each step safe to repeat after a crash:
//
//	next, err := ring.BeginRotation() // writes master.key.next
//	n, err := keys.Rewrap(ctx, next)  // every data key under the new key
//	err = next.CommitRotation()       // master.key.next becomes master.key
//
// [LoadKeyring] loads whichever of master.key, master.key.next and
// master.key.prev exist, so whatever step a crash interrupted, every data
// key still unwraps. To finish an interrupted rotation, load the keyring
// again and run the three steps again: BeginRotation resumes the
// interrupted rotation, with its key, rather than start another.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"fmt"
	"io"
	"log/slog"
)

// Errors from opening sealed values and unwrapping data keys. They are
// returned wrapped with the scope or key id; test with errors.Is.
var (
	// ErrVersion reports a sealed value or wrapped key whose version byte
	// this package does not know.
	ErrVersion = errors.New("unknown format version")

	// ErrTruncated reports input shorter than its header and tag.
	ErrTruncated = errors.New("input too short")

	// ErrAuth reports a sealed value or wrapped key that does not
	// authenticate: the wrong key, the wrong additional data, or altered
	// bytes. Which one it was cannot be told.
	ErrAuth = errors.New("authentication failed: wrong key or additional data, or altered bytes")
)

const (
	sealVersion = 1
	keySize     = 32      // AES-256
	gcmOverhead = 12 + 16 // nonce and tag
)

// SealOverhead is how many bytes Seal adds to a plaintext.
const SealOverhead = 1 + gcmOverhead

// Sealer seals and opens the values of one scope with its data key. It is
// safe for concurrent use. Get one from [DataKeys.Sealer].
type Sealer struct {
	scope string
	aead  cipher.AEAD
}

func newSealer(scope string, key []byte) (*Sealer, error) {
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	return &Sealer{scope: scope, aead: aead}, nil
}

// newAEAD returns AES-256-GCM under key, drawing a random nonce for every
// Seal and prepending it.
func newAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != keySize {
		return nil, fmt.Errorf("key is %d bytes, want %d", len(key), keySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCMWithRandomNonce(block)
}

// Scope returns the scope whose data key s holds.
func (s *Sealer) Scope() string { return s.scope }

// Seal encrypts and authenticates plaintext together with aad, which is not
// stored and must be given again to Open. It returns a new slice of
// len(plaintext)+SealOverhead bytes; a fresh random nonce makes every call's
// output different.
func (s *Sealer) Seal(plaintext, aad []byte) []byte {
	out := make([]byte, 1, SealOverhead+len(plaintext))
	out[0] = sealVersion
	return s.aead.Seal(out, nil, plaintext, bind(out[:1], aad))
}

// Open returns the plaintext sealed in sealed, checking that it was sealed
// by this scope's key with the same aad. It fails with ErrVersion,
// ErrTruncated or ErrAuth; it does not modify sealed.
func (s *Sealer) Open(sealed, aad []byte) ([]byte, error) {
	if err := checkHeader(sealed, sealVersion, 1); err != nil {
		return nil, fmt.Errorf("open %s value: %w", s.scope, err)
	}
	out, err := s.aead.Open(nil, nil, sealed[1:], bind(sealed[:1], aad))
	if err != nil {
		return nil, fmt.Errorf("open %s value: %w", s.scope, ErrAuth)
	}
	return out, nil
}

// String returns the scope only; a Sealer never prints its key.
func (s *Sealer) String() string { return "seal.Sealer{scope: " + s.scope + "}" }

// GoString is String.
func (s *Sealer) GoString() string { return s.String() }

// Format writes String for every verb, so no verb prints the key.
func (s *Sealer) Format(f fmt.State, _ rune) { io.WriteString(f, s.String()) }

// LogValue logs the scope only.
func (s *Sealer) LogValue() slog.Value {
	return slog.GroupValue(slog.String("scope", s.scope))
}

// checkHeader checks that b starts with version and holds at least a header
// of n bytes, a nonce and a tag.
func checkHeader(b []byte, version byte, n int) error {
	switch {
	case len(b) == 0:
		return fmt.Errorf("empty: %w", ErrTruncated)
	case b[0] != version:
		return fmt.Errorf("version %d: %w", b[0], ErrVersion)
	case len(b) < n+gcmOverhead:
		return fmt.Errorf("%d bytes, want at least %d: %w", len(b), n+gcmOverhead, ErrTruncated)
	}
	return nil
}

// bind returns the additional data actually authenticated: the header of
// the value, then the caller's aad.
func bind(header, aad []byte) []byte {
	out := make([]byte, 0, len(header)+len(aad))
	return append(append(out, header...), aad...)
}
