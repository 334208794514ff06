package seal

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"sync"
	"testing"
)

// testKey returns a fixed 32-byte key derived from name.
func testKey(name string) []byte {
	k := sha256.Sum256([]byte("seal test key " + name))
	return k[:]
}

func testSealer(tb testing.TB, scope, keyName string) *Sealer {
	tb.Helper()
	s, err := newSealer(scope, testKey(keyName))
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func TestSealOpenRoundTrip(t *testing.T) {
	s := testSealer(t, "kv/contacts", "a")
	tests := []struct {
		name           string
		plaintext, aad []byte
	}{
		{"empty", nil, nil},
		{"short", []byte("x"), []byte("kv/contacts\x00alice")},
		{"no aad", []byte("hello"), nil},
		{"binary", []byte{0, 1, 2, 255, 0}, []byte{0}},
		{"64KiB", bytes.Repeat([]byte("0123456789abcdef"), 4096), []byte("kv/contacts\x00big")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sealed := s.Seal(tt.plaintext, tt.aad)
			if len(sealed) != len(tt.plaintext)+SealOverhead {
				t.Fatalf("len(Seal) = %d, want %d", len(sealed), len(tt.plaintext)+SealOverhead)
			}
			if sealed[0] != sealVersion {
				t.Fatalf("Seal version byte = %d, want %d", sealed[0], sealVersion)
			}
			if len(tt.plaintext) > 4 && bytes.Contains(sealed, tt.plaintext) {
				t.Fatal("Seal output contains the plaintext")
			}
			got, err := s.Open(sealed, tt.aad)
			if err != nil {
				t.Fatalf("Open(Seal(%q)): %v", tt.plaintext, err)
			}
			if !bytes.Equal(got, tt.plaintext) {
				t.Fatalf("Open(Seal(%q)) = %q", tt.plaintext, got)
			}
			if again := s.Seal(tt.plaintext, tt.aad); bytes.Equal(again, sealed) {
				t.Fatal("two Seals of one plaintext are equal: nonce reused")
			}
		})
	}
}

func TestOpenRefuses(t *testing.T) {
	s := testSealer(t, "kv/contacts", "a")
	aad := []byte("kv/contacts\x00alice")
	sealed := s.Seal([]byte("alice@example.com"), aad)
	with := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(sealed)) }

	tests := []struct {
		name   string
		sealer *Sealer
		sealed []byte
		aad    []byte
		want   error
	}{
		{"wrong aad key", s, sealed, []byte("kv/contacts\x00bob"), ErrAuth},
		{"wrong aad scope", s, sealed, []byte("kv/orders\x00alice"), ErrAuth},
		{"no aad", s, sealed, nil, ErrAuth},
		{"wrong key", testSealer(t, "kv/contacts", "b"), sealed, aad, ErrAuth},
		{"nonce byte flipped", s, with(func(b []byte) []byte { b[1] ^= 1; return b }), aad, ErrAuth},
		{"ciphertext byte flipped", s, with(func(b []byte) []byte { b[1+12] ^= 0x80; return b }), aad, ErrAuth},
		{"tag byte flipped", s, with(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), aad, ErrAuth},
		{"byte appended", s, append(bytes.Clone(sealed), 0), aad, ErrAuth},
		{"last byte cut", s, sealed[:len(sealed)-1], aad, ErrAuth},
		{"empty", s, nil, aad, ErrTruncated},
		{"version only", s, sealed[:1], aad, ErrTruncated},
		{"header and nonce only", s, sealed[:1+12], aad, ErrTruncated},
		{"one byte short of a tag", s, sealed[:SealOverhead-1], aad, ErrTruncated},
		{"version 0", s, with(func(b []byte) []byte { b[0] = 0; return b }), aad, ErrVersion},
		{"version 2", s, with(func(b []byte) []byte { b[0] = 2; return b }), aad, ErrVersion},
		{"version 2, short", s, []byte{2}, aad, ErrVersion},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.sealer.Open(tt.sealed, tt.aad)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Open = %q, %v; want %v", got, err, tt.want)
			}
			if got != nil {
				t.Fatalf("Open returned %q with an error", got)
			}
		})
	}
}

func TestSealerPrintsNoKey(t *testing.T) {
	s := testSealer(t, "secrets", "a")
	checkNoKeyPrinted(t, s, testKey("a"))
}

func TestSealerConcurrent(t *testing.T) {
	s := testSealer(t, "kv/contacts", "a")
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			aad := []byte{byte(g)}
			for i := range 200 {
				msg := []byte{byte(g), byte(i)}
				got, err := s.Open(s.Seal(msg, aad), aad)
				if err != nil || !bytes.Equal(got, msg) {
					t.Errorf("Open(Seal(%v)) = %v, %v", msg, got, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func FuzzOpen(f *testing.F) {
	s := testSealer(f, "kv/contacts", "fuzz")
	wantAAD := []byte("kv/contacts\x00k")
	plaintext := []byte("the only plaintext")
	valid := s.Seal(plaintext, wantAAD)
	f.Add(valid, wantAAD)
	f.Add(valid, []byte("kv/contacts\x00j"))
	f.Add([]byte{}, []byte{})
	f.Add([]byte{sealVersion}, wantAAD)
	f.Add(valid[:SealOverhead], wantAAD)
	f.Add(append([]byte{2}, valid[1:]...), wantAAD)
	f.Fuzz(func(t *testing.T, sealed, aad []byte) {
		got, err := s.Open(sealed, aad)
		if err != nil {
			if !errors.Is(err, ErrAuth) && !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrVersion) {
				t.Fatalf("Open error %v is none of ErrAuth, ErrTruncated, ErrVersion", err)
			}
			return
		}
		// Only what Seal made authenticates, and forging is infeasible, so
		// this must be a seed. (Each fuzz worker seals its own seed, with
		// its own nonce: compare what was sealed, not the bytes.)
		if !bytes.Equal(got, plaintext) || !bytes.Equal(aad, wantAAD) {
			t.Fatalf("Open(%x, %q) = %q, accepted a value Seal did not make", sealed, aad, got)
		}
	})
}

func BenchmarkSealer(b *testing.B) {
	s := testSealer(b, "kv/contacts", "bench")
	aad := []byte("kv/contacts\x00alice")
	plaintext := bytes.Repeat([]byte("x"), 100)
	b.Run("Seal100", func(b *testing.B) {
		b.SetBytes(int64(len(plaintext)))
		b.ReportAllocs()
		for b.Loop() {
			s.Seal(plaintext, aad)
		}
	})
	b.Run("Open100", func(b *testing.B) {
		sealed := s.Seal(plaintext, aad)
		b.SetBytes(int64(len(plaintext)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Open(sealed, aad); err != nil {
				b.Fatal(err)
			}
		}
	})
}
