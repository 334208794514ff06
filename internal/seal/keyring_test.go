package seal

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// testKeyring returns a keyring held in memory, the current key first.
func testKeyring(tb testing.TB, names ...string) *Keyring {
	tb.Helper()
	var keys []*masterKey
	for _, n := range names {
		mk, err := newMasterKey(testKey(n))
		if err != nil {
			tb.Fatal(err)
		}
		keys = append(keys, mk)
	}
	return newKeyring("", keys[0], keys[1:]...)
}

// writeFile writes b to path with exactly mode perm, whatever the umask.
func writeFile(tb testing.TB, path string, b []byte, perm os.FileMode) {
	tb.Helper()
	if err := os.WriteFile(path, b, perm); err != nil {
		tb.Fatal(err)
	}
	if err := os.Chmod(path, perm); err != nil {
		tb.Fatal(err)
	}
}

func keyLine(key []byte) []byte {
	return []byte(keyFileHeader + " " + base64.RawURLEncoding.EncodeToString(key) + "\n")
}

// keyFromFile returns the raw key in a key file.
func keyFromFile(tb testing.TB, path string) []byte {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	key, err := parseKeyFile(b)
	if err != nil {
		tb.Fatal(err)
	}
	return key
}

// keyForms returns the ways key could show up in text or on disk.
func keyForms(key []byte) map[string][]byte {
	return map[string][]byte{
		"raw":          key,
		"hex":          []byte(hex.EncodeToString(key)),
		"HEX":          []byte(strings.ToUpper(hex.EncodeToString(key))),
		"base64":       []byte(base64.StdEncoding.EncodeToString(key)),
		"base64url":    []byte(base64.RawURLEncoding.EncodeToString(key)),
		"decimal list": []byte(strings.Trim(fmt.Sprint(key), "[]")),
	}
}

// checkNoKeyPrinted fails if fmt or slog show any form of key in v.
func checkNoKeyPrinted(t *testing.T, v any, key []byte) {
	t.Helper()
	var out []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%d", "%q"} {
		out = append(out, fmt.Sprintf(verb, v))
	}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("test", "v", v)
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("test", "v", v)
	out = append(out, buf.String())
	for _, s := range out {
		for form, k := range keyForms(key) {
			if bytes.Contains([]byte(s), k) {
				t.Errorf("printed %T contains the key (%s): %s", v, form, s)
			}
		}
	}
}

func TestLoadKeyringCreates(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, KeyFileName)
	if _, err := LoadKeyring(path, false); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("LoadKeyring(missing, create=false) error = %v, want fs.ErrNotExist", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("LoadKeyring(create=false) made %s", path)
	}
	ring, err := LoadKeyring(path, true)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Fatalf("created key file mode = %04o, want 0600", fi.Mode().Perm())
	}
	b, _ := os.ReadFile(path)
	if !regexp.MustCompile(`^moat-master-key-v1 [A-Za-z0-9_-]{43}\n$`).Match(b) {
		t.Fatalf("created key file does not hold one key line (%d bytes)", len(b))
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("directory holds %d files after creating the key, want 1", len(entries))
	}
	if !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(ring.ID()) {
		t.Fatalf("ID() = %q, want 16 hex digits", ring.ID())
	}
	again, err := LoadKeyring(path, true)
	if err != nil {
		t.Fatal(err)
	}
	if again.ID() != ring.ID() {
		t.Fatalf("reloaded ID() = %s, want %s", again.ID(), ring.ID())
	}
	if strings.Contains(string(b), ring.ID()) {
		t.Fatal("the key id is a substring of the key file")
	}
}

func TestLoadKeyringRefusesOpenModes(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix modes")
	}
	for _, tt := range []struct {
		file string
		perm os.FileMode
	}{
		{KeyFileName, 0o644},
		{KeyFileName, 0o640},
		{KeyFileName, 0o604},
		{KeyFileName, 0o660},
		{KeyFileName + NextSuffix, 0o644},
		{KeyFileName + PrevSuffix, 0o644},
	} {
		t.Run(fmt.Sprintf("%s_%04o", tt.file, tt.perm), func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, KeyFileName)
			writeFile(t, path, keyLine(testKey("a")), 0o600)
			writeFile(t, filepath.Join(dir, tt.file), keyLine(testKey("b")), tt.perm)
			_, err := LoadKeyring(path, true)
			if !errors.Is(err, ErrInsecureKeyFile) {
				t.Fatalf("LoadKeyring(%s mode %04o) error = %v, want ErrInsecureKeyFile", tt.file, tt.perm, err)
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("%04o", tt.perm)) || !strings.Contains(err.Error(), tt.file) {
				t.Fatalf("error %q does not name the file and its mode", err)
			}
		})
	}
}

func TestLoadKeyringRefusesMalformed(t *testing.T) {
	secret := rand.Text() // stands for whatever the file holds
	b64 := func(n int) string { return base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, n)) }
	stdKey := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xfb, 0xff, 0xbf}, 11)[:32])
	tests := []struct {
		name, contents, secret string
	}{
		{"empty", "", ""},
		{"no header", secret + "\n", secret},
		{"wrong header", "moat-master-key-v2 " + secret + "\n", secret},
		{"no space", keyFileHeader + secret + "\n", secret},
		{"not base64", keyFileHeader + " " + secret + "!*\n", secret},
		{"standard base64", keyFileHeader + " " + stdKey + "\n", stdKey},
		{"16-byte key", keyFileHeader + " " + b64(16) + "\n", b64(16)},
		{"48-byte key", keyFileHeader + " " + b64(48) + "\n", b64(48)},
		{"two lines", string(keyLine(testKey("a"))) + secret + "\n", secret},
		{"two keys", string(keyLine(testKey("a"))) + string(keyLine(testKey("b"))), base64.RawURLEncoding.EncodeToString(testKey("b"))},
		{"huge", keyFileHeader + " " + strings.Repeat(secret, 200), secret},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), KeyFileName)
			writeFile(t, path, []byte(tt.contents), 0o600)
			ring, err := LoadKeyring(path, true)
			if !errors.Is(err, ErrMalformedKeyFile) {
				t.Fatalf("LoadKeyring(%q) = %v, %v; want ErrMalformedKeyFile", tt.contents, ring, err)
			}
			if tt.secret != "" && strings.Contains(err.Error(), tt.secret) {
				t.Fatalf("error quotes the key file: %v", err)
			}
			if b, _ := os.ReadFile(path); string(b) != tt.contents {
				t.Fatal("LoadKeyring changed a malformed key file")
			}
		})
	}
}

func TestLoadKeyringAcceptsVariants(t *testing.T) {
	key := testKey("a")
	want, _ := newMasterKey(key)
	enc := base64.RawURLEncoding.EncodeToString(key)
	for name, contents := range map[string]string{
		"no newline": keyFileHeader + " " + enc,
		"CRLF":       keyFileHeader + " " + enc + "\r\n",
		"padding":    keyFileHeader + " " + base64.URLEncoding.EncodeToString(key) + "\n",
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), KeyFileName)
			writeFile(t, path, []byte(contents), 0o600)
			ring, err := LoadKeyring(path, false)
			if err != nil {
				t.Fatal(err)
			}
			if ring.ID() != want.id {
				t.Fatalf("ID() = %s, want %s", ring.ID(), want.id)
			}
		})
	}
}

func TestKeyringPrintsNoKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), KeyFileName)
	ring, err := LoadKeyring(path, true)
	if err != nil {
		t.Fatal(err)
	}
	next, err := ring.BeginRotation()
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range [][]byte{keyFromFile(t, path), keyFromFile(t, path+NextSuffix)} {
		checkNoKeyPrinted(t, ring, key)
		checkNoKeyPrinted(t, next, key)
	}
	if s := next.String(); !strings.Contains(s, ring.ID()) || !strings.Contains(s, next.ID()) {
		t.Fatalf("String() = %q, want both key ids", s)
	}
	var nilRing *Keyring
	if got := fmt.Sprint(nilRing); got != "seal.Keyring(nil)" {
		t.Fatalf("Sprint(nil keyring) = %q", got)
	}
}

func TestWrapUnwrap(t *testing.T) {
	ring := testKeyring(t, "current", "old")
	old := testKeyring(t, "old")
	other := testKeyring(t, "other")
	dk := testKey("data")
	aad := []byte(dataKeyLabel + "kv/contacts")
	wrapped, err := ring.Wrap(dk, aad)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(wrapped, dk) {
		t.Fatal("Wrap output contains the data key")
	}
	if id, _ := wrappedKeyID(wrapped); id != ring.ID() {
		t.Fatalf("wrapped key id = %s, want %s", id, ring.ID())
	}
	byOld, err := old.Wrap(dk, aad)
	if err != nil {
		t.Fatal(err)
	}
	with := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(wrapped)) }

	tests := []struct {
		name    string
		ring    *Keyring
		wrapped []byte
		aad     []byte
		want    error // nil: unwraps to dk
	}{
		{"current key", ring, wrapped, aad, nil},
		{"older key held", ring, byOld, aad, nil},
		{"wrong aad", ring, wrapped, []byte(dataKeyLabel + "kv/orders"), ErrAuth},
		{"key not held", other, wrapped, aad, ErrUnknownMasterKey},
		{"newer key not held", old, wrapped, aad, ErrUnknownMasterKey},
		{"zero keyring", &Keyring{}, wrapped, aad, ErrUnknownMasterKey},
		{"id altered", ring, with(func(b []byte) []byte { b[1] ^= 1; return b }), aad, ErrUnknownMasterKey},
		{"nonce altered", ring, with(func(b []byte) []byte { b[wrapHeader] ^= 1; return b }), aad, ErrAuth},
		{"tag altered", ring, with(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), aad, ErrAuth},
		{"version altered", ring, with(func(b []byte) []byte { b[0] = 9; return b }), aad, ErrVersion},
		{"empty", ring, nil, aad, ErrTruncated},
		{"header only", ring, wrapped[:wrapHeader], aad, ErrTruncated},
		{"cut short", ring, wrapped[:len(wrapped)-1], aad, ErrAuth},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.ring.Unwrap(tt.wrapped, tt.aad)
			switch {
			case tt.want == nil && (err != nil || !bytes.Equal(got, dk)):
				t.Fatalf("Unwrap = %x, %v; want the data key", got, err)
			case tt.want != nil && !errors.Is(err, tt.want):
				t.Fatalf("Unwrap = %x, %v; want %v", got, err, tt.want)
			}
		})
	}
	if _, err := (&Keyring{}).Wrap(dk, aad); err == nil {
		t.Fatal("the zero Keyring wrapped")
	}
}

func FuzzUnwrap(f *testing.F) {
	ring := testKeyring(f, "fuzz", "fuzz-old")
	wantAAD := []byte(dataKeyLabel + "secrets")
	dk := testKey("data")
	valid, err := ring.Wrap(dk, wantAAD)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid, wantAAD)
	f.Add(valid, []byte{})
	f.Add([]byte{}, wantAAD)
	f.Add(valid[:wrapHeader], wantAAD)
	f.Add(append([]byte{9}, valid[1:]...), wantAAD)
	f.Fuzz(func(t *testing.T, wrapped, aad []byte) {
		got, err := ring.Unwrap(wrapped, aad)
		if err != nil {
			for _, want := range []error{ErrAuth, ErrTruncated, ErrVersion, ErrUnknownMasterKey} {
				if errors.Is(err, want) {
					return
				}
			}
			t.Fatalf("Unwrap error %v is not one of the documented ones", err)
		}
		// Only what Wrap made unwraps: a seed, sealed by this worker or
		// another with its own nonce.
		if !bytes.Equal(got, dk) || !bytes.Equal(aad, wantAAD) {
			t.Fatalf("Unwrap(%x, %q) = %x, accepted what Wrap did not make", wrapped, aad, got)
		}
	})
}

func FuzzParseKeyFile(f *testing.F) {
	f.Add(keyLine(testKey("a")))
	f.Add([]byte(keyFileHeader + " \n"))
	f.Add([]byte(""))
	f.Add([]byte(keyFileHeader + " " + base64.URLEncoding.EncodeToString(testKey("a")) + "\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		key, err := parseKeyFile(b)
		if err != nil {
			if !errors.Is(err, ErrMalformedKeyFile) {
				t.Fatalf("parseKeyFile error %v is not ErrMalformedKeyFile", err)
			}
			return
		}
		if len(key) != keySize {
			t.Fatalf("parseKeyFile accepted a %d-byte key", len(key))
		}
		again, err := parseKeyFile(keyLine(key))
		if err != nil || !bytes.Equal(again, key) {
			t.Fatalf("a key parseKeyFile accepted does not round-trip: %v", err)
		}
	})
}
