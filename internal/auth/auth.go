// Package auth identifies callers: the admin token, bootstrapped into the
// data directory on first start, and API keys with roles, stored hashed.
// It also limits repeated authentication failures per source address.
package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
)

// TokenFile is the admin token's file name in the data directory.
const TokenFile = "admin.token"

// tokenPrefix marks Moat tokens so that secret scanners can find leaked ones.
const tokenPrefix = "moat_admin_"

// Admin checks the admin token. Only the token's hash is held.
type Admin struct {
	hash [sha256.Size]byte
}

// LoadAdmin reads DIR/admin.token, creating it with a fresh random token
// (mode 0600) if it does not exist. It reports whether it created the file.
// It refuses a token file readable by group or others.
func LoadAdmin(dir string) (*Admin, bool, error) {
	path := filepath.Join(dir, TokenFile)
	b, err := os.ReadFile(path)
	created := false
	if errors.Is(err, fs.ErrNotExist) {
		var raw [32]byte
		if _, err := rand.Read(raw[:]); err != nil {
			return nil, false, err
		}
		b = []byte(tokenPrefix + base64.RawURLEncoding.EncodeToString(raw[:]) + "\n")
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, false, fmt.Errorf("create admin token: %w", err)
		}
		if _, err := f.Write(b); err != nil {
			f.Close()
			return nil, false, fmt.Errorf("write admin token: %w", err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, false, err
		}
		if err := f.Close(); err != nil {
			return nil, false, err
		}
		created = true
	} else if err != nil {
		return nil, false, fmt.Errorf("read admin token: %w", err)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return nil, false, fmt.Errorf("admin token %s is readable by others (mode %v): chmod 600 it", path, fi.Mode().Perm())
	}
	tok := strings.TrimSpace(string(b))
	if len(tok) < 32 {
		return nil, false, fmt.Errorf("admin token %s is too short", path)
	}
	return &Admin{hash: sha256.Sum256([]byte(tok))}, created, nil
}

// check reports whether tok is the admin token. The comparison takes the
// same time whatever the token.
func (a *Admin) check(tok string) bool {
	h := sha256.Sum256([]byte(tok))
	return subtle.ConstantTimeCompare(h[:], a.hash[:]) == 1
}

// BearerToken returns the token of an "Authorization: Bearer TOKEN" header.
func BearerToken(r *http.Request) (string, bool) {
	v := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(v, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}
