package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

func open(tb testing.TB, sync bool) *Store {
	tb.Helper()
	s, err := Open(context.Background(), slog.New(slog.NewTextHandler(io.Discard, nil)), Config{Dir: tb.TempDir(), SyncAlways: sync})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Close)
	return s
}

func TestReopenKeepsData(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := Open(ctx, log, Config{Dir: dir, SyncAlways: true})
	if err != nil {
		t.Fatal(err)
	}
	kv, err := s.KV(ctx, "test", 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	obs, err := s.Objects(ctx, "objs")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := obs.PutBytes(ctx, "o", []byte("object")); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s, err = Open(ctx, log, Config{Dir: dir, SyncAlways: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	kv, _ = s.KV(ctx, "test", 1)
	if e, err := kv.Get(ctx, "k"); err != nil || string(e.Value()) != "v" {
		t.Fatalf("after reopen: %v %v", e, err)
	}
	obs, _ = s.Objects(ctx, "objs")
	if b, err := obs.GetBytes(ctx, "o"); err != nil || string(b) != "object" {
		t.Fatalf("object after reopen: %q %v", b, err)
	}
}

func TestListenOnlyWhenAsked(t *testing.T) {
	s := open(t, false)
	if s.ns.ClientURL() != "" && s.ns.Addr() != nil {
		t.Fatalf("embedded NATS listens at %v without being asked", s.ns.Addr())
	}
	if _, err := Open(context.Background(), slog.New(slog.NewTextHandler(io.Discard, nil)), Config{Dir: t.TempDir(), Listen: "not-an-address"}); err == nil {
		t.Fatal("a bad --nats-listen address was accepted")
	}
}

// BenchmarkKVPut measures an acknowledged KV write with and without an fsync
// before the acknowledgement: the cost of durability (docs/storage.md).
func BenchmarkKVPut(b *testing.B) {
	for _, sync := range []bool{true, false} {
		b.Run(fmt.Sprintf("sync=%v", sync), func(b *testing.B) {
			s := open(b, sync)
			kv, err := s.KV(context.Background(), "bench", 1)
			if err != nil {
				b.Fatal(err)
			}
			val := make([]byte, 1024)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := kv.Put(context.Background(), fmt.Sprintf("k%d", i%100), val); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestModifyUnderContention(t *testing.T) {
	s := open(t, false)
	ctx := context.Background()
	kv, err := s.KV(ctx, "counter", 1)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				err := Modify(ctx, kv, "n", 1000, func(cur []byte) ([]byte, error) {
					n, _ := strconv.Atoi(string(cur))
					return []byte(strconv.Itoa(n + 1)), nil
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	e, err := kv.Get(ctx, "n")
	if err != nil || string(e.Value()) != "200" {
		t.Fatalf("counter = %q, %v; want 200", e.Value(), err)
	}
	stop := errors.New("stop")
	if err := Modify(ctx, kv, "n", 3, func([]byte) ([]byte, error) { return nil, stop }); !errors.Is(err, stop) {
		t.Fatalf("Modify with a failing change = %v", err)
	}
}

// TestReopenUpdatesOnlyChanges: opening a bucket or stream as it already is
// binds it without rewriting its metadata; a changed setting is applied.
func TestReopenUpdatesOnlyChanges(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(ctx, slog.New(slog.DiscardHandler), Config{Dir: dir, SyncAlways: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	streamCfg := jetstream.StreamConfig{Name: "LOGS", Subjects: []string{"logs.*"}, MaxMsgsPerSubject: 10, MaxAge: time.Hour, MaxBytes: 1 << 20, Discard: jetstream.DiscardOld}
	openAll := func() {
		t.Helper()
		if _, err := s.KV(ctx, "hist", 3); err != nil {
			t.Fatal(err)
		}
		if _, err := s.KVMaxAge(ctx, "aged", time.Hour); err != nil {
			t.Fatal(err)
		}
		if _, err := s.KVWithTTL(ctx, "ttl"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Objects(ctx, "objs"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Stream(ctx, streamCfg); err != nil {
			t.Fatal(err)
		}
	}
	openAll()
	meta := func() map[string]time.Time {
		t.Helper()
		got := map[string]time.Time{}
		for _, name := range []string{"KV_hist", "KV_aged", "KV_ttl", "OBJ_objs", "LOGS"} {
			info, err := os.Stat(filepath.Join(dir, "jetstream", "jetstream", "$G", "streams", name, "meta.inf"))
			if err != nil {
				t.Fatal(err)
			}
			got[name] = info.ModTime()
		}
		return got
	}
	before := meta()
	time.Sleep(20 * time.Millisecond)
	openAll()
	if after := meta(); !maps.Equal(before, after) {
		t.Fatalf("reopening unchanged rewrote metadata: %v -> %v", before, after)
	}

	if _, err := s.KV(ctx, "hist", 5); err != nil {
		t.Fatal(err)
	}
	if _, err := s.KVMaxAge(ctx, "aged", 2*time.Hour); err != nil {
		t.Fatal(err)
	}
	streamCfg.MaxAge = 2 * time.Hour
	streamCfg.Subjects = []string{"logs.*", "more.*"}
	if _, err := s.Stream(ctx, streamCfg); err != nil {
		t.Fatal(err)
	}
	for name, check := range map[string]func(jetstream.StreamConfig) bool{
		"KV_hist": func(c jetstream.StreamConfig) bool { return c.MaxMsgsPerSubject == 5 },
		"KV_aged": func(c jetstream.StreamConfig) bool { return c.MaxAge == 2*time.Hour },
		"LOGS":    func(c jetstream.StreamConfig) bool { return c.MaxAge == 2*time.Hour && len(c.Subjects) == 2 },
	} {
		st, err := s.JS.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if c := st.CachedInfo().Config; !check(c) {
			t.Fatalf("%s not updated: %+v", name, c)
		}
	}
}
