package audit

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// LoadIdentity returns the node's id and signing key, from idFile and
// keyFile, creating them (0600) on first use. The id names the node's
// chain; the key signs its checkpoints.
func LoadIdentity(idFile, keyFile string) (string, ed25519.PrivateKey, error) {
	id, err := loadOrCreate(idFile, func() string {
		b := make([]byte, 8)
		rand.Read(b)
		return hex.EncodeToString(b)
	})
	if err != nil {
		return "", nil, err
	}
	seed, err := loadOrCreate(keyFile, func() string {
		b := make([]byte, ed25519.SeedSize)
		rand.Read(b)
		return hex.EncodeToString(b)
	})
	if err != nil {
		return "", nil, err
	}
	raw, err := hex.DecodeString(seed)
	if err != nil || len(raw) != ed25519.SeedSize {
		return "", nil, fmt.Errorf("%s: not an ed25519 seed", keyFile)
	}
	for _, c := range id {
		if !strings.ContainsRune("0123456789abcdef", c) {
			return "", nil, fmt.Errorf("%s: not a node id", idFile)
		}
	}
	return id, ed25519.NewKeyFromSeed(raw), nil
}

func loadOrCreate(path string, fresh func() string) (string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		v := fresh()
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return "", err
		}
		_, werr := f.WriteString(v + "\n")
		if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
			return "", err
		}
		return v, nil
	}
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}
