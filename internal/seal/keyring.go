package seal

import (
	"bytes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
)

// KeyFileName is the master key file's name in the data directory, unless
// --master-key-file names another file.
const KeyFileName = "master.key"

// Suffixes of the key files a rotation uses beside the master key file.
const (
	NextSuffix = ".next" // the key being rotated in
	PrevSuffix = ".prev" // the key being rotated out, while committing
)

const (
	keyFileHeader  = "moat-master-key-v1"
	keyIDLabel     = "moat master key id v1\x00"
	maxKeyFileSize = 1024
	idSize         = 8
	wrapVersion    = 1
	wrapHeader     = 1 + idSize
)

// Errors about master key files and keys. They are returned wrapped with the
// file or key id; test with errors.Is.
var (
	// ErrInsecureKeyFile reports a key file that group or others may read.
	ErrInsecureKeyFile = errors.New("key file is accessible by group or others; chmod 600 it")

	// ErrMalformedKeyFile reports a key file that does not hold one key
	// line. The error never quotes the file.
	ErrMalformedKeyFile = errors.New("malformed key file")

	// ErrUnknownMasterKey reports a data key wrapped by a master key that
	// the keyring does not hold.
	ErrUnknownMasterKey = errors.New("wrapped by a master key this keyring does not hold")

	// ErrRotation reports a CommitRotation that would commit a key other
	// than the keyring's current one.
	ErrRotation = errors.New("key on disk is not this keyring's current key")
)

// masterKey is one master key, ready to use. Its raw bytes are not kept.
type masterKey struct {
	rawID [idSize]byte // the first 8 bytes of SHA-256(keyIDLabel + key)
	id    string       // rawID in hex
	aead  cipher.AEAD
}

func newMasterKey(key []byte) (*masterKey, error) {
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	h.Write([]byte(keyIDLabel))
	h.Write(key)
	mk := &masterKey{aead: aead}
	copy(mk.rawID[:], h.Sum(nil))
	mk.id = hex.EncodeToString(mk.rawID[:])
	return mk, nil
}

// Keyring holds a node's master keys: the current one, which wraps, and
// during or just after a rotation the others, which only unwrap. It is safe
// for concurrent use. Its key material never leaves it: String, GoString,
// Format and LogValue show key ids only. The zero Keyring holds no key and
// fails to wrap or unwrap.
type Keyring struct {
	path string // the master key file; rotation files sit beside it

	mu      sync.RWMutex
	current *masterKey
	keys    []*masterKey // current first; no two with one id
}

func newKeyring(path string, current *masterKey, others ...*masterKey) *Keyring {
	k := &Keyring{path: path, current: current, keys: []*masterKey{current}}
	for _, mk := range others {
		if mk != nil && k.find(mk.id) == nil {
			k.keys = append(k.keys, mk)
		}
	}
	return k
}

// LoadKeyring loads the master key file at path and, when they exist, the
// rotation files path+NextSuffix and path+PrevSuffix, so that it unwraps
// whatever a rotation interrupted at any step had wrapped. The current key
// is the one in path; when path is missing but path+NextSuffix exists (a
// commit stopped between its renames) it is the next key.
//
// When none of the three files exists and create is true, LoadKeyring makes
// a random key and writes it to path with mode 0600; when create is false
// the error wraps fs.ErrNotExist. It refuses a key file that group or others
// may access (ErrInsecureKeyFile) or that does not hold exactly one key line
// (ErrMalformedKeyFile).
func LoadKeyring(path string, create bool) (*Keyring, error) {
	cur, err := readOptionalKeyFile(path)
	if err != nil {
		return nil, err
	}
	next, err := readOptionalKeyFile(path + NextSuffix)
	if err != nil {
		return nil, err
	}
	prev, err := readOptionalKeyFile(path + PrevSuffix)
	if err != nil {
		return nil, err
	}
	switch {
	case cur != nil:
		return newKeyring(path, cur, next, prev), nil
	case next != nil:
		return newKeyring(path, next, prev), nil
	case prev != nil:
		return nil, fmt.Errorf("master key file %s is missing but %s exists: rename it back", path, path+PrevSuffix)
	case !create:
		return nil, fmt.Errorf("master key file %s: %w", path, fs.ErrNotExist)
	}
	mk, err := createKeyFile(path)
	if err != nil {
		return nil, err
	}
	return newKeyring(path, mk), nil
}

// ID returns the id of the current master key, the one Wrap uses, or ""
// when k holds no key.
func (k *Keyring) ID() string {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.current == nil {
		return ""
	}
	return k.current.id
}

// IDs returns the ids of every key k holds, the current one first.
func (k *Keyring) IDs() []string {
	k.mu.RLock()
	defer k.mu.RUnlock()
	ids := make([]string, len(k.keys))
	for i, mk := range k.keys {
		ids[i] = mk.id
	}
	return ids
}

// Wrap encrypts dataKey under the current master key, authenticating aad
// with it, and returns the result headed by the master key's id. It fails
// only when k holds no key.
func (k *Keyring) Wrap(dataKey, aad []byte) ([]byte, error) {
	k.mu.RLock()
	mk := k.current
	k.mu.RUnlock()
	if mk == nil {
		return nil, errors.New("wrap: keyring holds no master key")
	}
	out := make([]byte, wrapHeader, wrapHeader+len(dataKey)+gcmOverhead)
	out[0] = wrapVersion
	copy(out[1:wrapHeader], mk.rawID[:])
	return mk.aead.Seal(out, nil, dataKey, bind(out[:wrapHeader], aad)), nil
}

// Unwrap decrypts what Wrap returned, with the master key named in it and
// the same aad. It fails with ErrVersion, ErrTruncated, ErrUnknownMasterKey
// or ErrAuth.
func (k *Keyring) Unwrap(wrapped, aad []byte) ([]byte, error) {
	id, err := wrappedKeyID(wrapped)
	if err != nil {
		return nil, fmt.Errorf("unwrap: %w", err)
	}
	k.mu.RLock()
	mk := k.find(id)
	k.mu.RUnlock()
	if mk == nil {
		return nil, fmt.Errorf("unwrap: master key %s: %w", id, ErrUnknownMasterKey)
	}
	out, err := mk.aead.Open(nil, nil, wrapped[wrapHeader:], bind(wrapped[:wrapHeader], aad))
	if err != nil {
		return nil, fmt.Errorf("unwrap with master key %s: %w", id, ErrAuth)
	}
	return out, nil
}

// wrappedKeyID returns the id of the master key that wrapped w.
func wrappedKeyID(w []byte) (string, error) {
	if err := checkHeader(w, wrapVersion, wrapHeader); err != nil {
		return "", err
	}
	return hex.EncodeToString(w[1:wrapHeader]), nil
}

// find returns the key with id, or nil. k.mu must be held.
func (k *Keyring) find(id string) *masterKey {
	for _, mk := range k.keys {
		if mk.id == id {
			return mk
		}
	}
	return nil
}

// BeginRotation starts replacing the current master key: it writes a new
// random key to the key file's path+NextSuffix (mode 0600) and returns a
// keyring whose current key is the new one and which still unwraps with
// every key k holds.
//
// When an earlier rotation was interrupted, BeginRotation resumes it rather
// than start another, since data keys may already be wrapped by its key:
// the returned keyring's current key is the one in path+NextSuffix or, when
// only path+PrevSuffix is left over (a commit stopped before removing it),
// the one in the key file.
//
// Next, pass the returned keyring to [DataKeys.Rewrap], then call its
// CommitRotation. Rotations must not run concurrently.
func (k *Keyring) BeginRotation() (*Keyring, error) {
	if k.path == "" {
		return nil, errors.New("begin rotation: keyring has no key file")
	}
	next, err := readOptionalKeyFile(k.path + NextSuffix)
	if err != nil {
		return nil, fmt.Errorf("begin rotation: %w", err)
	}
	if next == nil {
		if _, err := os.Lstat(k.path + PrevSuffix); err == nil {
			next, err = readKeyFile(k.path)
		} else {
			next, err = createKeyFile(k.path + NextSuffix)
		}
		if err != nil {
			return nil, fmt.Errorf("begin rotation: %w", err)
		}
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	return newKeyring(k.path, next, k.keys...), nil
}

// CommitRotation makes k's current key the master key on disk: it renames
// the key file to path+PrevSuffix and path+NextSuffix to the key file, then
// removes path+PrevSuffix, syncing the directory after each step, and
// leaves k holding its current key alone. Call it on the keyring
// BeginRotation returned, once [DataKeys.Rewrap] has succeeded: a data key
// still wrapped by the old key cannot be unwrapped afterwards.
//
// CommitRotation may be repeated and finishes a commit that a crash
// interrupted. It fails with ErrRotation when the key waiting in
// path+NextSuffix, or else in the key file, is not k's current key.
func (k *Keyring) CommitRotation() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.path == "" || k.current == nil {
		return errors.New("commit rotation: keyring has no key file")
	}
	path, cur := k.path, k.current
	next, err := readOptionalKeyFile(path + NextSuffix)
	if err != nil {
		return fmt.Errorf("commit rotation: %w", err)
	}
	if next != nil {
		if next.id != cur.id {
			return fmt.Errorf("commit rotation: %s holds master key %s, the keyring's current key is %s: %w", path+NextSuffix, next.id, cur.id, ErrRotation)
		}
		if _, err := os.Lstat(path); err == nil {
			if err := renameKeyFile(path, path+PrevSuffix); err != nil {
				return fmt.Errorf("commit rotation: %w", err)
			}
		}
		if err := renameKeyFile(path+NextSuffix, path); err != nil {
			return fmt.Errorf("commit rotation: %w", err)
		}
	} else {
		onDisk, err := readKeyFile(path)
		if err != nil {
			return fmt.Errorf("commit rotation: %w", err)
		}
		if onDisk.id != cur.id {
			return fmt.Errorf("commit rotation: %s holds master key %s, the keyring's current key is %s: %w", path, onDisk.id, cur.id, ErrRotation)
		}
	}
	if err := removeKeyFile(path + PrevSuffix); err != nil {
		return fmt.Errorf("commit rotation: %w", err)
	}
	k.keys = []*masterKey{cur}
	return nil
}

// String returns the key ids; a Keyring never prints key material.
func (k *Keyring) String() string {
	if k == nil {
		return "seal.Keyring(nil)"
	}
	return "seal.Keyring{current: " + k.ID() + ", ids: [" + strings.Join(k.IDs(), " ") + "]}"
}

// GoString is String.
func (k *Keyring) GoString() string { return k.String() }

// Format writes String for every verb, so that no verb (%x, %d, %+v)
// reaches the keys.
func (k *Keyring) Format(f fmt.State, _ rune) { io.WriteString(f, k.String()) }

// LogValue logs the key ids only.
func (k *Keyring) LogValue() slog.Value {
	return slog.GroupValue(slog.String("current", k.ID()), slog.Any("ids", k.IDs()))
}

var (
	_ fmt.Stringer   = (*Keyring)(nil)
	_ fmt.GoStringer = (*Keyring)(nil)
	_ fmt.Formatter  = (*Keyring)(nil)
	_ slog.LogValuer = (*Keyring)(nil)
)

// readOptionalKeyFile is readKeyFile, returning nil and no error when the
// file does not exist.
func readOptionalKeyFile(path string) (*masterKey, error) {
	mk, err := readKeyFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return mk, err
}

// readKeyFile reads the key in path, refusing a file group or others may
// access, as ssh does. Its errors never quote the file.
func readKeyFile(path string) (*masterKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("master key file %s: not a regular file: %w", path, ErrMalformedKeyFile)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return nil, fmt.Errorf("master key file %s: mode %04o: %w", path, perm, ErrInsecureKeyFile)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	defer clear(b)
	if err != nil {
		return nil, fmt.Errorf("master key file %s: %w", path, err)
	}
	key, err := parseKeyFile(b)
	defer clear(key)
	if err != nil {
		return nil, fmt.Errorf("master key file %s: %w", path, err)
	}
	return newMasterKey(key)
}

// parseKeyFile returns the key in the contents of a key file: one line
// "moat-master-key-v1 KEY", KEY being 32 bytes in base64url (padding
// optional). Its errors never quote b.
func parseKeyFile(b []byte) ([]byte, error) {
	malformed := func(why string) error {
		return fmt.Errorf("%w: %s; want one line %q followed by 32 bytes in base64url", ErrMalformedKeyFile, why, keyFileHeader)
	}
	if len(b) > maxKeyFileSize {
		return nil, malformed(fmt.Sprintf("larger than %d bytes", maxKeyFileSize))
	}
	line, _ := bytes.CutSuffix(b, []byte("\n"))
	line, _ = bytes.CutSuffix(line, []byte("\r"))
	if bytes.ContainsAny(line, "\r\n") {
		return nil, malformed("more than one line")
	}
	enc, ok := bytes.CutPrefix(line, []byte(keyFileHeader+" "))
	if !ok {
		return nil, malformed("no " + keyFileHeader + " header")
	}
	enc = bytes.TrimRight(enc, "=")
	key := make([]byte, base64.RawURLEncoding.DecodedLen(len(enc)))
	n, err := base64.RawURLEncoding.Decode(key, enc)
	if err != nil {
		clear(key)
		return nil, malformed("the key is not base64url")
	}
	if n != keySize {
		clear(key)
		return nil, malformed(fmt.Sprintf("the key is %d bytes", n))
	}
	return key, nil
}

// createKeyFile makes a random key and writes it to path.
func createKeyFile(path string) (*masterKey, error) {
	key := make([]byte, keySize)
	defer clear(key)
	rand.Read(key)
	if err := writeKeyFile(path, key); err != nil {
		return nil, err
	}
	return newMasterKey(key)
}

// writeKeyFile writes key to path with mode 0600: to a temporary file in
// the same directory, synced, then renamed to path, then the directory
// synced, so that path holds the whole key or does not exist. It refuses to
// replace an existing file, though two writers racing may both pass that
// check.
func writeKeyFile(path string, key []byte) error {
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("write master key file %s: %w", path, fs.ErrExist)
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write master key file %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // fails once renamed
	line := make([]byte, 0, len(keyFileHeader)+1+base64.RawURLEncoding.EncodedLen(len(key))+1)
	line = append(line, keyFileHeader+" "...)
	line = base64.RawURLEncoding.AppendEncode(line, key)
	line = append(line, '\n')
	defer clear(line)
	err = f.Chmod(0o600)
	if err == nil {
		_, err = f.Write(line)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		return fmt.Errorf("write master key file %s: %w", path, err)
	}
	return nil
}

// renameKeyFile renames from to to and syncs the directory.
func renameKeyFile(from, to string) error {
	if err := os.Rename(from, to); err != nil {
		return err
	}
	return syncDir(filepath.Dir(to))
}

// removeKeyFile removes path, if it exists, and syncs the directory.
func removeKeyFile(path string) error {
	err := os.Remove(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// syncDir makes a rename or removal in dir durable.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil // directories cannot be synced there; NTFS journals renames
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
