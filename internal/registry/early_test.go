package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/moatfn/moat/internal/sandbox"
	"github.com/moatfn/moat/internal/testwasm"
)

// FuzzReadHints: whatever the hints file holds, reading it neither fails
// the start nor yields more than maxHints hints.
func FuzzReadHints(f *testing.F) {
	f.Add([]byte(`[{"fn":"hello","version":"5fb54e85ff23d689","sum":"adeb21d11f53c0ac531588a4b9822e569b0b496256f002e08d26223bd358d22b","memory":67108864}]`))
	f.Add([]byte(`[{"fn":"x","sum":"../../etc/passwd","memory":-1}]`))
	f.Add([]byte("\x00\xff{["))
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, hintsFile), b, 0o600); err != nil {
			t.Fatal(err)
		}
		if hints := readHints(dir); len(hints) > maxHints {
			t.Fatalf("%d hints", len(hints))
		}
	})
}

// TestEarlyTakeBeforeTurn: a function asked for before its turn in the
// early compile is left to its caller, not made to wait behind the others;
// the one under way is waited for and taken.
func TestEarlyTakeBeforeTurn(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	dir := t.TempDir()
	cache := filepath.Join(dir, "wazero")
	sums := map[string]string{}
	for _, name := range []string{"kitchen", "caps"} {
		wasm := testwasm.Bytes(t, name)
		r, err := sandbox.New(ctx, log, cache)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Compile(ctx, wasm, 64<<20, nil); err != nil {
			t.Fatal(err)
		}
		r.Close(ctx)
		sum := sha256.Sum256(wasm)
		sums[name] = hex.EncodeToString(sum[:])
	}
	hints := []hint{{Fn: "first", Version: "v1", Sum: sums["kitchen"], Memory: 64 << 20}, {Fn: "second", Version: "v1", Sum: sums["caps"], Memory: 64 << 20}}
	b, _ := json.Marshal(hints)
	if err := os.WriteFile(filepath.Join(dir, hintsFile), b, 0o600); err != nil {
		t.Fatal(err)
	}
	sb, err := sandbox.New(ctx, log, cache)
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close(ctx)
	e := StartEarly(log, sb, dir)
	if m := e.take(ctx, "second", "v1", sums["caps"], 64<<20); m != nil {
		t.Fatal("a function asked for before its turn was compiled early anyway")
	}
	m := e.take(ctx, "first", "v1", sums["kitchen"], 64<<20)
	if m == nil {
		t.Fatal("the function compiled first was not taken")
	}
	defer m.Close(ctx)
	if e.Taken() != 1 {
		t.Fatalf("taken %d", e.Taken())
	}
	e.Close()
}
