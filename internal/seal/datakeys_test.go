package seal

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/moatfn/moat/internal/store"
)

const bucket = "moat_datakeys"

// openStore opens an embedded store in dir, syncing every write. The
// returned func closes it; closing again, or at cleanup, does nothing.
func openStore(tb testing.TB, dir string) (*store.Store, func()) {
	tb.Helper()
	s, err := store.Open(context.Background(), slog.New(slog.NewTextHandler(io.Discard, nil)), store.Config{Dir: dir, SyncAlways: true})
	if err != nil {
		tb.Fatal(err)
	}
	var once sync.Once
	closeStore := func() { once.Do(s.Close) }
	tb.Cleanup(closeStore)
	return s, closeStore
}

func openKV(tb testing.TB, s *store.Store) jetstream.KeyValue {
	tb.Helper()
	kv, err := s.KV(context.Background(), bucket, 1)
	if err != nil {
		tb.Fatal(err)
	}
	return kv
}

func loadKeyring(tb testing.TB, path string, create bool) *Keyring {
	tb.Helper()
	ring, err := LoadKeyring(path, create)
	if err != nil {
		tb.Fatal(err)
	}
	return ring
}

func aadFor(scope string) []byte { return []byte(scope + "\x00k") }

// sealAll seals one value in each scope and returns them by scope.
func sealAll(tb testing.TB, dk *DataKeys, scopes ...string) map[string][]byte {
	tb.Helper()
	sealed := map[string][]byte{}
	for _, scope := range scopes {
		s, err := dk.Sealer(context.Background(), scope)
		if err != nil {
			tb.Fatal(err)
		}
		sealed[scope] = s.Seal([]byte("value of "+scope), aadFor(scope))
	}
	return sealed
}

// checkAll fails unless a DataKeys over kv with ring and an empty cache
// opens every value sealAll sealed.
func checkAll(tb testing.TB, kv jetstream.KeyValue, ring *Keyring, sealed map[string][]byte) {
	tb.Helper()
	dk := NewDataKeys(kv, ring)
	for scope, v := range sealed {
		s, err := dk.Sealer(context.Background(), scope)
		if err != nil {
			tb.Fatalf("Sealer(%s) with keyring %v: %v", scope, ring, err)
		}
		got, err := s.Open(v, aadFor(scope))
		if err != nil || string(got) != "value of "+scope {
			tb.Fatalf("Open in %s = %q, %v", scope, got, err)
		}
	}
}

// storedEntry returns the stored entry of scope.
func storedEntry(tb testing.TB, kv jetstream.KeyValue, scope string) entry {
	tb.Helper()
	e, err := kv.Get(context.Background(), kvKey(scope))
	if err != nil {
		tb.Fatal(err)
	}
	var ent entry
	if err := json.Unmarshal(e.Value(), &ent); err != nil {
		tb.Fatal(err)
	}
	return ent
}

// checkFiles fails unless exactly the key files named (by suffix) exist
// beside path.
func checkFiles(tb testing.TB, path string, suffixes ...string) {
	tb.Helper()
	for _, suffix := range []string{"", NextSuffix, PrevSuffix} {
		_, err := os.Stat(path + suffix)
		if exists, want := err == nil, slices.Contains(suffixes, suffix); exists != want {
			tb.Errorf("%s exists = %v, want %v", filepath.Base(path+suffix), exists, want)
		}
	}
}

// readTree returns every regular file under dir.
func readTree(tb testing.TB, dir string) map[string][]byte {
	tb.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(path)
		files[path] = b
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	return files
}

func TestCheckScope(t *testing.T) {
	for _, scope := range []string{"secrets", "kv/contacts", "kv/a-b_c/9", "-", strings.Repeat("a", 200)} {
		if err := CheckScope(scope); err != nil {
			t.Errorf("CheckScope(%q) = %v, want nil", scope, err)
		}
		if got, ok := scopeFromKey(kvKey(scope)); !ok || got != scope {
			t.Errorf("scopeFromKey(kvKey(%q)) = %q, %v", scope, got, ok)
		}
	}
	for _, scope := range []string{"", "Secrets", "kv/", "/kv", "kv//a", "kv.a", "kv a", "kv/*", "kv/>", "ünï", strings.Repeat("a", 201)} {
		if err := CheckScope(scope); !errors.Is(err, ErrInvalidScope) {
			t.Errorf("CheckScope(%q) = %v, want ErrInvalidScope", scope, err)
		}
	}
	for _, key := range []string{"kv/contacts", "kv..a", ".a", "A"} {
		if s, ok := scopeFromKey(key); ok {
			t.Errorf("scopeFromKey(%q) = %q, true; no scope has that key", key, s)
		}
	}
}

func TestSealerCreatesAndCaches(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, _ := openStore(t, dir)
	kv := openKV(t, s)
	ring := loadKeyring(t, filepath.Join(dir, KeyFileName), true)
	dk := NewDataKeys(kv, ring)

	if scopes, err := dk.Scopes(ctx); err != nil || len(scopes) != 0 {
		t.Fatalf("Scopes() on an empty bucket = %q, %v", scopes, err)
	}
	if _, err := dk.Sealer(ctx, "kv/Contacts"); !errors.Is(err, ErrInvalidScope) {
		t.Fatalf("Sealer(kv/Contacts) error = %v, want ErrInvalidScope", err)
	}
	a, err := dk.Sealer(ctx, "kv/contacts")
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := dk.Sealer(ctx, "kv/contacts"); again != a {
		t.Fatal("second Sealer for one scope was not the cached one")
	}
	b, err := dk.Sealer(ctx, "secrets")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Open(a.Seal([]byte("x"), nil), nil); !errors.Is(err, ErrAuth) {
		t.Fatalf("a value of kv/contacts opened in secrets: %v", err)
	}
	ent := storedEntry(t, kv, "kv/contacts")
	if ent.MasterKey != ring.ID() || ent.Created.IsZero() {
		t.Fatalf("stored entry = %+v, want master key %s and a creation time", ent, ring.ID())
	}
	scopes, err := dk.Scopes(ctx)
	if err != nil || !slices.Equal(scopes, []string{"kv/contacts", "secrets"}) {
		t.Fatalf("Scopes() = %q, %v", scopes, err)
	}

	// An entry copied to another scope does not unwrap there.
	e, _ := kv.Get(ctx, kvKey("kv/contacts"))
	if _, err := kv.Put(ctx, kvKey("kv/stolen"), e.Value()); err != nil {
		t.Fatal(err)
	}
	if _, err := NewDataKeys(kv, ring).Sealer(ctx, "kv/stolen"); !errors.Is(err, ErrAuth) {
		t.Fatalf("Sealer over a data key copied from another scope: %v, want ErrAuth", err)
	}
}

func TestSealerRaceAgreesOnOneKey(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, _ := openStore(t, dir)
	ring := loadKeyring(t, filepath.Join(dir, KeyFileName), true)
	kv := openKV(t, s)
	other, err := s.JS.KeyValue(ctx, bucket)
	if err != nil {
		t.Fatal(err)
	}
	for round := range 5 {
		scope := "kv/race-" + string(rune('a'+round))
		// Two nodes, each with two handles on the bucket.
		nodes := []*DataKeys{NewDataKeys(kv, ring), NewDataKeys(other, ring), NewDataKeys(kv, ring), NewDataKeys(other, ring)}
		sealers := make([]*Sealer, 8)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range sealers {
			wg.Go(func() {
				<-start
				s, err := nodes[i%len(nodes)].Sealer(ctx, scope)
				if err != nil {
					t.Error(err)
				}
				sealers[i] = s
			})
		}
		close(start)
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
		for i, a := range sealers {
			for j, b := range sealers {
				v := a.Seal([]byte("x"), nil)
				if _, err := b.Open(v, nil); err != nil {
					t.Fatalf("%s: sealer %d cannot open what sealer %d sealed: %v", scope, j, i, err)
				}
			}
		}
	}
}

func TestDataKeysSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	path := filepath.Join(dir, KeyFileName)
	s, closeStore := openStore(t, dir)
	sealed := sealAll(t, NewDataKeys(openKV(t, s), loadKeyring(t, path, true)), "secrets", "kv/contacts")
	closeStore()

	s, _ = openStore(t, dir)
	kv := openKV(t, s)
	ring := loadKeyring(t, path, false)
	checkAll(t, kv, ring, sealed)
	scopes, err := NewDataKeys(kv, ring).Scopes(ctx)
	if err != nil || !slices.Equal(scopes, []string{"kv/contacts", "secrets"}) {
		t.Fatalf("Scopes() after reopen = %q, %v", scopes, err)
	}
}

var rotationScopes = []string{"secrets", "kv/contacts", "kv/orders", "kv/inventory", "kv/sessions"}

func TestRotation(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	path := filepath.Join(dir, KeyFileName)
	ring := loadKeyring(t, path, true)
	oldKey := keyFromFile(t, path)
	oldCopy := filepath.Join(t.TempDir(), KeyFileName) // a keyring holding only the old key
	writeFile(t, oldCopy, keyLine(oldKey), 0o600)
	s, _ := openStore(t, dir)
	kv := openKV(t, s)
	dk := NewDataKeys(kv, ring)
	sealed := sealAll(t, dk, rotationScopes...)

	next, err := ring.BeginRotation()
	if err != nil {
		t.Fatal(err)
	}
	if next.ID() == ring.ID() || !slices.Equal(next.IDs(), []string{next.ID(), ring.ID()}) {
		t.Fatalf("BeginRotation() = %v from %v; want a new current key and the old one", next, ring)
	}
	checkFiles(t, path, "", NextSuffix)
	if n, err := dk.Rewrap(ctx, next); err != nil || n != len(rotationScopes) {
		t.Fatalf("Rewrap() = %d, %v; want %d", n, err, len(rotationScopes))
	}
	if n, err := dk.Rewrap(ctx, next); err != nil || n != 0 {
		t.Fatalf("Rewrap() again = %d, %v; want 0", n, err)
	}
	for _, scope := range rotationScopes {
		if ent := storedEntry(t, kv, scope); ent.MasterKey != next.ID() || ent.Rewrapped.IsZero() {
			t.Fatalf("entry of %s after Rewrap = %+v, want master key %s", scope, ent, next.ID())
		}
	}
	if err := next.CommitRotation(); err != nil {
		t.Fatal(err)
	}
	checkFiles(t, path, "")
	if got := next.IDs(); !slices.Equal(got, []string{next.ID()}) {
		t.Fatalf("IDs() after CommitRotation = %v, want only the new key", got)
	}
	if err := next.CommitRotation(); err != nil {
		t.Fatalf("CommitRotation() again: %v", err)
	}

	fresh := loadKeyring(t, path, false)
	if !slices.Equal(fresh.IDs(), []string{next.ID()}) {
		t.Fatalf("keyring loaded after the rotation holds %v, want only %s", fresh.IDs(), next.ID())
	}
	checkAll(t, kv, fresh, sealed)
	sealed["kv/later"] = sealAll(t, dk, "kv/later")["kv/later"] // dk wraps with the new key now
	if ent := storedEntry(t, kv, "kv/later"); ent.MasterKey != next.ID() {
		t.Fatalf("data key made after Rewrap is wrapped by %s, want %s", ent.MasterKey, next.ID())
	}
	checkAll(t, kv, fresh, sealed)

	for p, b := range readTree(t, dir) {
		for form, k := range keyForms(oldKey) {
			if bytes.Contains(b, k) {
				t.Errorf("%s still holds the old master key (%s)", p, form)
			}
		}
	}
	oldOnly := loadKeyring(t, oldCopy, false)
	if _, err := NewDataKeys(kv, oldOnly).Sealer(ctx, "secrets"); !errors.Is(err, ErrUnknownMasterKey) {
		t.Fatalf("Sealer with only the old master key: %v, want ErrUnknownMasterKey", err)
	}
	if _, err := oldOnly.Unwrap(storedEntry(t, kv, "kv/contacts").Wrapped, dataKeyAAD("kv/contacts")); !errors.Is(err, ErrUnknownMasterKey) {
		t.Fatalf("Unwrap with only the old master key: %v, want ErrUnknownMasterKey", err)
	}
}

func TestRotationRecoversFromCrash(t *testing.T) {
	// Each crash leaves the files and entries as the process left them and
	// returns the id of the key being rotated in. commitRefused says a
	// keyring loaded afterwards must not commit before BeginRotation.
	tests := []struct {
		name          string
		crash         func(t *testing.T, path string, ring *Keyring, dk *DataKeys) string
		commitRefused bool
	}{
		{"after begin", func(t *testing.T, path string, ring *Keyring, dk *DataKeys) string {
			return begin(t, ring).ID()
		}, true},
		{"during rewrap", func(t *testing.T, path string, ring *Keyring, dk *DataKeys) string {
			next := begin(t, ring)
			keys, err := dk.keys(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			for _, key := range keys[:2] {
				if _, err := dk.rewrapKey(context.Background(), key, next, ring); err != nil {
					t.Fatal(err)
				}
			}
			return next.ID()
		}, true},
		{"after rewrap", func(t *testing.T, path string, ring *Keyring, dk *DataKeys) string {
			next := begin(t, ring)
			rewrap(t, dk, next)
			return next.ID()
		}, true},
		{"after the first rename of commit", func(t *testing.T, path string, ring *Keyring, dk *DataKeys) string {
			next := begin(t, ring)
			rewrap(t, dk, next)
			rename(t, path, path+PrevSuffix)
			return next.ID()
		}, false},
		{"after the second rename of commit", func(t *testing.T, path string, ring *Keyring, dk *DataKeys) string {
			next := begin(t, ring)
			rewrap(t, dk, next)
			rename(t, path, path+PrevSuffix)
			rename(t, path+NextSuffix, path)
			return next.ID()
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, KeyFileName)
			ring := loadKeyring(t, path, true)
			s, closeStore := openStore(t, dir)
			kv := openKV(t, s)
			sealed := sealAll(t, NewDataKeys(kv, ring), rotationScopes...)
			nextID := tt.crash(t, path, ring, NewDataKeys(kv, ring))
			closeStore()

			// Restart: load from disk, and everything opens at once.
			s, _ = openStore(t, dir)
			kv = openKV(t, s)
			loaded := loadKeyring(t, path, true)
			checkAll(t, kv, loaded, sealed)
			if tt.commitRefused {
				if err := loaded.CommitRotation(); !errors.Is(err, ErrRotation) {
					t.Fatalf("CommitRotation() on the keyring loaded before the rewrap ended = %v, want ErrRotation", err)
				}
			}

			// Run the rotation again: it resumes with the same key.
			next := begin(t, loaded)
			if next.ID() != nextID {
				t.Fatalf("BeginRotation() after the crash rotates to %s, want %s", next.ID(), nextID)
			}
			dk := NewDataKeys(kv, loaded)
			rewrap(t, dk, next)
			if err := next.CommitRotation(); err != nil {
				t.Fatal(err)
			}
			checkFiles(t, path, "")
			final := loadKeyring(t, path, false)
			if !slices.Equal(final.IDs(), []string{nextID}) {
				t.Fatalf("keyring after recovery holds %v, want only %s", final.IDs(), nextID)
			}
			checkAll(t, kv, final, sealed)
		})
	}
}

func begin(t *testing.T, ring *Keyring) *Keyring {
	t.Helper()
	next, err := ring.BeginRotation()
	if err != nil {
		t.Fatal(err)
	}
	return next
}

func rewrap(t *testing.T, dk *DataKeys, next *Keyring) {
	t.Helper()
	if _, err := dk.Rewrap(context.Background(), next); err != nil {
		t.Fatal(err)
	}
}

func rename(t *testing.T, from, to string) {
	t.Helper()
	if err := os.Rename(from, to); err != nil {
		t.Fatal(err)
	}
}

func TestNothingInTheClearOnDisk(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	path := filepath.Join(dir, KeyFileName)
	ring := loadKeyring(t, path, true)
	s, closeStore := openStore(t, dir)
	kv := openKV(t, s)
	values, err := s.KV(ctx, "fnkv_contacts", 1)
	if err != nil {
		t.Fatal(err)
	}
	sl, err := NewDataKeys(kv, ring).Sealer(ctx, "kv/contacts")
	if err != nil {
		t.Fatal(err)
	}
	secret := "moat-canary-" + rand.Text()
	control := "moat-control-" + rand.Text()
	if _, err := values.Put(ctx, "alice", sl.Seal([]byte(secret), []byte("kv/contacts\x00alice"))); err != nil {
		t.Fatal(err)
	}
	if _, err := values.Put(ctx, "control", []byte(control)); err != nil {
		t.Fatal(err)
	}
	dataKey, err := ring.Unwrap(storedEntry(t, kv, "kv/contacts").Wrapped, dataKeyAAD("kv/contacts"))
	if err != nil {
		t.Fatal(err)
	}
	masterKey := keyFromFile(t, path)
	closeStore()

	files := readTree(t, dir)
	found := false
	for _, b := range files {
		found = found || bytes.Contains(b, []byte(control))
	}
	if !found {
		t.Fatal("a value stored unsealed is not found in the data directory: the search is blind")
	}
	needles := map[string][]byte{"sealed plaintext": []byte(secret)}
	for form, k := range keyForms(dataKey) {
		needles["data key ("+form+")"] = k
	}
	for form, k := range keyForms(masterKey) {
		if form != "base64url" { // the key file's own encoding
			needles["master key ("+form+")"] = k
		}
	}
	for p, b := range files {
		for what, needle := range needles {
			if bytes.Contains(b, needle) {
				t.Errorf("%s holds the %s", p, what)
			}
		}
		if p != path && bytes.Contains(b, []byte(base64.RawURLEncoding.EncodeToString(masterKey))) {
			t.Errorf("%s holds the master key", p)
		}
	}
}
