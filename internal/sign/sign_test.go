package sign

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSignVerify(t *testing.T) {
	dir := t.TempDir()
	pub, err := GenerateKey(filepath.Join(dir, "release"))
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "release.key")); fi.Mode().Perm() != 0o600 {
		t.Fatalf("private key mode %v", fi.Mode().Perm())
	}
	if _, err := GenerateKey(filepath.Join(dir, "release")); err == nil {
		t.Fatal("GenerateKey overwrote a key")
	}
	priv, err := LoadPrivateKey(filepath.Join(dir, "release.key"))
	if err != nil {
		t.Fatal(err)
	}
	trusted, err := LoadPublicKeys([]string{filepath.Join(dir, "release.pub")})
	if err != nil || trusted[0].ID != pub.ID {
		t.Fatalf("public key %v %v", trusted, err)
	}
	other, _ := GenerateKey(filepath.Join(dir, "other"))

	src := []byte("name: contact\nmodule: fn.wasm\n")
	files := map[string][]byte{"fn.wasm": []byte("\x00asm module"), "in.json": []byte("{}")}
	sig, err := Sign(priv, src, files)
	if err != nil {
		t.Fatal(err)
	}
	if id, err := Verify(sig, trusted, src, files); err != nil || id != pub.ID {
		t.Fatalf("Verify = %q, %v", id, err)
	}
	for _, c := range []struct {
		name    string
		sig     []byte
		trusted []PublicKey
		src     []byte
		files   map[string][]byte
		want    error
		detail  string
	}{
		{"unsigned", nil, trusted, src, files, ErrUnsigned, "requires a signature"},
		{"untrusted key", sig, []PublicKey{other}, src, files, ErrUntrusted, pub.ID},
		{"altered module", sig, trusted, src, map[string][]byte{"fn.wasm": []byte("\x00asm evil"), "in.json": []byte("{}")}, ErrMismatch, "fn.wasm changed"},
		{"altered manifest", sig, trusted, []byte("name: contact\nmodule: fn.wasm\nhttp: {auth: public}\n"), files, ErrMismatch, "moat.yaml changed"},
		{"added file", sig, trusted, src, map[string][]byte{"fn.wasm": files["fn.wasm"], "in.json": files["in.json"], "x": nil}, ErrMismatch, "x is deployed but was not signed"},
		{"missing file", sig, trusted, src, map[string][]byte{"fn.wasm": files["fn.wasm"]}, ErrMismatch, "in.json was signed but is not deployed"},
		{"garbage", []byte("not json"), trusted, src, files, ErrMalformed, ""},
		{"unknown field", []byte(`{"v":1,"key_id":"x","files":{"a":"b"},"sig":"` + strings.Repeat("A", 88) + `","extra":1}`), trusted, src, files, ErrMalformed, "extra"},
		{"short signature", []byte(`{"v":1,"key_id":"` + pub.ID + `","files":{"a":"b"},"sig":"AAAA"}`), trusted, src, files, ErrMalformed, "64-byte"},
		{"huge", make([]byte, MaxSignature+1), trusted, src, files, ErrMalformed, "over"},
	} {
		_, err := Verify(c.sig, c.trusted, c.src, c.files)
		if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.detail) {
			t.Errorf("%s: %v, want %v with %q", c.name, err, c.want, c.detail)
		}
	}
	// A forged file list: the hashes changed after signing.
	forged := strings.Replace(string(sig), `"fn.wasm": "`, `"fn.wasm": "0`, 1)
	if _, err := Verify([]byte(forged), trusted, src, files); !errors.Is(err, ErrMismatch) && !errors.Is(err, ErrMalformed) {
		t.Errorf("forged file list: %v", err)
	}
}

func TestKeyFiles(t *testing.T) {
	dir := t.TempDir()
	GenerateKey(filepath.Join(dir, "k"))
	os.Chmod(filepath.Join(dir, "k.key"), 0o644)
	if _, err := LoadPrivateKey(filepath.Join(dir, "k.key")); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("a readable private key was loaded: %v", err)
	}
	for _, bad := range []string{"", "moat-ed25519", "moat-ed25519 !!!", "ssh-ed25519 AAAA", "moat-ed25519 AAAA"} {
		if _, err := ParsePublicKey([]byte(bad)); err == nil {
			t.Errorf("ParsePublicKey(%q) accepted", bad)
		}
	}
	os.WriteFile(filepath.Join(dir, "bad.key"), []byte("moat-ed25519-private nope\n"), 0o600)
	if _, err := LoadPrivateKey(filepath.Join(dir, "bad.key")); err == nil || strings.Contains(err.Error(), "nope") {
		t.Errorf("bad private key: %v", err)
	}
}

func FuzzVerify(f *testing.F) {
	f.Add([]byte(`{"v":1,"key_id":"00","files":{"moat.yaml":"00"},"sig":"AAAA"}`))
	f.Add([]byte("{}"))
	key := PublicKey{ID: "00", Key: make([]byte, 32)}
	f.Fuzz(func(t *testing.T, sig []byte) {
		if _, err := Verify(sig, []PublicKey{key}, []byte("m"), map[string][]byte{"f": nil}); err == nil {
			t.Fatal("a fuzzed signature verified")
		}
	})
}
