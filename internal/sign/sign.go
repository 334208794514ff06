// Package sign signs and verifies function artifacts with ed25519: the
// manifest and every file it names, by SHA-256. A node that requires
// signatures deploys only what a trusted key signed, byte for byte.
//
// Key files are text: a private key is one line
// "moat-ed25519-private BASE64(seed)" in a 0600 file, a public key one line
// "moat-ed25519 BASE64(key) [comment]". A key's id is the first 8 bytes of
// the SHA-256 of its public key, in hex.
package sign

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// FileName is the signature file beside moat.yaml.
const FileName = "moat.sig"

// MaxSignature caps a signature file.
const MaxSignature = 64 << 10

const (
	privateTag = "moat-ed25519-private"
	publicTag  = "moat-ed25519"
	payloadTag = "moat-signature-v1\n"
)

// Errors of verification, wrapped with detail.
var (
	ErrUnsigned  = errors.New("unsigned")
	ErrUntrusted = errors.New("signed by an untrusted key")
	ErrMismatch  = errors.New("signature does not match")
	ErrMalformed = errors.New("malformed signature")
)

// PublicKey is a trusted key and its id.
type PublicKey struct {
	ID  string
	Key ed25519.PublicKey
}

// KeyID returns the id of pub.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// Signature is the content of moat.sig.
type Signature struct {
	Version int               `json:"v"`
	KeyID   string            `json:"key_id"`
	Files   map[string]string `json:"files"` // path -> SHA-256 hex; moat.yaml included
	Sig     []byte            `json:"sig"`
}

// digests maps moat.yaml and each file to its SHA-256.
func digests(manifestSrc []byte, files map[string][]byte) map[string]string {
	out := make(map[string]string, len(files)+1)
	sum := sha256.Sum256(manifestSrc)
	out["moat.yaml"] = hex.EncodeToString(sum[:])
	for p, b := range files {
		sum := sha256.Sum256(b)
		out[p] = hex.EncodeToString(sum[:])
	}
	return out
}

// payload is what is signed: a tag, then "SHA256 PATH\n" sorted by path.
func payload(files map[string]string) []byte {
	var b bytes.Buffer
	b.WriteString(payloadTag)
	for _, p := range slices.Sorted(func(yield func(string) bool) {
		for p := range files {
			if !yield(p) {
				return
			}
		}
	}) {
		fmt.Fprintf(&b, "%s %s\n", files[p], p)
	}
	return b.Bytes()
}

// Sign signs the manifest and files with priv and returns moat.sig's
// content.
func Sign(priv ed25519.PrivateKey, manifestSrc []byte, files map[string][]byte) ([]byte, error) {
	d := digests(manifestSrc, files)
	s := Signature{Version: 1, KeyID: KeyID(priv.Public().(ed25519.PublicKey)), Files: d, Sig: ed25519.Sign(priv, payload(d))}
	return json.MarshalIndent(s, "", "  ")
}

// Verify checks sig against the deployed manifest and files and returns the
// id of the trusted key that signed them. Every file deployed must be
// signed, and nothing else.
func Verify(sig []byte, trusted []PublicKey, manifestSrc []byte, files map[string][]byte) (string, error) {
	if len(sig) == 0 {
		return "", fmt.Errorf("%w: this node requires a signature by a trusted key (moat sign)", ErrUnsigned)
	}
	if len(sig) > MaxSignature {
		return "", fmt.Errorf("%w: over %d bytes", ErrMalformed, MaxSignature)
	}
	var s Signature
	dec := json.NewDecoder(bytes.NewReader(sig))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return "", fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if s.Version != 1 || len(s.Sig) != ed25519.SignatureSize || len(s.Files) == 0 {
		return "", fmt.Errorf("%w: want version 1 with files and a 64-byte signature", ErrMalformed)
	}
	i := slices.IndexFunc(trusted, func(k PublicKey) bool { return k.ID == s.KeyID })
	if i < 0 {
		return "", fmt.Errorf("%w: key %s is not among the node's trusted keys", ErrUntrusted, truncate(s.KeyID, 32))
	}
	if !ed25519.Verify(trusted[i].Key, payload(s.Files), s.Sig) {
		return "", fmt.Errorf("%w: the signature by key %s is not valid for the files it lists", ErrMismatch, s.KeyID)
	}
	got := digests(manifestSrc, files)
	for _, p := range slices.Sorted(func(yield func(string) bool) {
		for p := range got {
			if !yield(p) {
				return
			}
		}
	}) {
		want, ok := s.Files[p]
		switch {
		case !ok:
			return "", fmt.Errorf("%w: %s is deployed but was not signed", ErrMismatch, p)
		case want != got[p]:
			return "", fmt.Errorf("%w: %s changed since it was signed", ErrMismatch, p)
		}
	}
	for p := range s.Files {
		if _, ok := got[p]; !ok {
			return "", fmt.Errorf("%w: %s was signed but is not deployed", ErrMismatch, truncate(p, 100))
		}
	}
	return s.KeyID, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// GenerateKey writes a new key pair: base+".key" (0600) and base+".pub".
// It refuses to overwrite either.
func GenerateKey(base string) (PublicKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return PublicKey{}, err
	}
	id := KeyID(pub)
	seed := base64.StdEncoding.EncodeToString(priv.Seed())
	if err := writeNew(base+".key", privateTag+" "+seed+"\n", 0o600); err != nil {
		return PublicKey{}, err
	}
	line := publicTag + " " + base64.StdEncoding.EncodeToString(pub) + " " + filepath.Base(base) + "\n"
	if err := writeNew(base+".pub", line, 0o644); err != nil {
		os.Remove(base + ".key")
		return PublicKey{}, err
	}
	return PublicKey{ID: id, Key: pub}, nil
}

func writeNew(path, content string, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := io.WriteString(f, content); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// LoadPrivateKey reads a private key file, refusing one that group or
// others can read.
func LoadPrivateKey(path string) (ed25519.PrivateKey, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s: mode %v lets others read the key; chmod 600 it", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	tag, rest, _ := strings.Cut(strings.TrimSpace(string(b)), " ")
	seed, err := base64.StdEncoding.DecodeString(strings.TrimSpace(rest))
	if tag != privateTag || err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("%s: not a moat private key (want one line %q)", path, privateTag+" BASE64")
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// ParsePublicKey reads a public key line.
func ParsePublicKey(b []byte) (PublicKey, error) {
	fields := strings.Fields(string(b))
	if len(fields) < 2 || fields[0] != publicTag {
		return PublicKey{}, fmt.Errorf("not a moat public key (want %q)", publicTag+" BASE64 [comment]")
	}
	key, err := base64.StdEncoding.DecodeString(fields[1])
	if err != nil || len(key) != ed25519.PublicKeySize {
		return PublicKey{}, errors.New("not a moat public key: the key is not 32 bytes of base64")
	}
	return PublicKey{ID: KeyID(key), Key: key}, nil
}

// LoadPublicKeys reads public key files.
func LoadPublicKeys(paths []string) ([]PublicKey, error) {
	var out []PublicKey
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		if len(b) > 4096 {
			return nil, fmt.Errorf("%s: too large for a public key", p)
		}
		k, err := ParsePublicKey(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		out = append(out, k)
	}
	return out, nil
}
