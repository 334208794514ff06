package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/moatfn/moat/internal/sandbox"
	"github.com/moatfn/moat/internal/store"
	"github.com/moatfn/moat/internal/testwasm"
)

// twoNodes returns two registries over one embedded store, as two nodes of
// a cluster see it, each with its own sandbox.
func twoNodes(t *testing.T) (a, b *Registry) {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	st, err := store.Open(ctx, log, store.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	kv, err := st.KV(ctx, "moat_functions", 5)
	if err != nil {
		t.Fatal(err)
	}
	objects, err := st.Objects(ctx, "moat_modules")
	if err != nil {
		t.Fatal(err)
	}
	var out [2]*Registry
	for i := range out {
		sb, err := sandbox.New(ctx, log, "")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sb.Close(ctx) })
		out[i] = New(log, kv, objects, sb, "")
		t.Cleanup(out[i].Close)
	}
	return out[0], out[1]
}

func upload(name string) *Upload {
	return &Upload{
		Manifest: []byte("name: " + name + "\nmodule: fn.wasm\nlimits: {memory: 1MiB}\nhttp: {auth: public}\n"),
		Files:    map[string][]byte{"fn.wasm": testwasm.MinimalCGI()},
	}
}

// TestUnknownNames: requests for names nobody deployed (a stranger's to
// send, as many as they like) leave nothing behind in the registry, and a
// name lately found missing is answered from memory for a second. A deploy
// on this node serves at once; one on another node is seen within that
// second.
func TestUnknownNames(t *testing.T) {
	ctx := context.Background()
	a, b := twoNodes(t)
	clock := time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	a.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	tick := func(d time.Duration) { mu.Lock(); clock = clock.Add(d); mu.Unlock() }

	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 1500 {
				if _, err := a.Acquire(ctx, fmt.Sprintf("nobody-%d-%d", g, i)); !errors.Is(err, ErrNotFound) {
					t.Errorf("unknown name: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	a.mu.Lock()
	loads, missing := len(a.loads), len(a.missing)
	a.mu.Unlock()
	if loads != 0 {
		t.Errorf("%d load locks left behind by 12,000 unknown names", loads)
	}
	if missing > maxMissing {
		t.Errorf("%d missing names kept, cap %d", missing, maxMissing)
	}

	// Found missing here, then deployed elsewhere: not seen for a second.
	tick(missingFor) // the flood's names age out, and make room
	if _, err := a.Acquire(ctx, "later"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("later before its deploy: %v", err)
	}
	if _, err := b.Deploy(ctx, upload("later")); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Acquire(ctx, "later"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("within the second after a deploy elsewhere: %v, want the remembered not found", err)
	}
	tick(missingFor)
	l, err := a.Acquire(ctx, "later")
	if err != nil {
		t.Fatalf("a second after the deploy elsewhere: %v", err)
	}
	l.Release()

	// Found missing here, then deployed here: served at once.
	if _, err := a.Acquire(ctx, "here"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("here before its deploy: %v", err)
	}
	if _, err := a.Deploy(ctx, upload("here")); err != nil {
		t.Fatal(err)
	}
	if l, err = a.Acquire(ctx, "here"); err != nil {
		t.Fatalf("right after its deploy here: %v", err)
	}
	l.Release()
}
