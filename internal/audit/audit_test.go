package audit

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moatfn/moat/internal/store"
)

type chain struct {
	log  *Log
	s    *store.Store
	pub  ed25519.PublicKey
	head string
}

func newChain(t *testing.T, n int) *chain {
	t.Helper()
	ctx := context.Background()
	s, err := store.Open(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)), store.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	head := filepath.Join(t.TempDir(), "audit.head")
	l, err := Open(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)), s, s.JS, Config{Node: "n1", Key: priv, HeadFile: head})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if err := l.Append(ctx, Record{Action: "invoke", Target: "f", Outcome: OK, Source: "192.0.2.1"}, i%2 == 0); err != nil {
			t.Fatal(err)
		}
		if i == n/2 {
			if err := l.Checkpoint(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := l.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	return &chain{log: l, s: s, pub: pub, head: head}
}

func (c *chain) verify(t *testing.T, records []Record) *Report {
	t.Helper()
	h, err := ReadHead(c.head)
	if err != nil {
		t.Fatal(err)
	}
	return Verify("n1", records, c.pub, h)
}

func (c *chain) read(t *testing.T) []Record {
	t.Helper()
	rs, err := Read(context.Background(), c.s.JS, "n1")
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func kinds(r *Report) []string {
	var out []string
	for _, p := range r.Problems {
		out = append(out, p.Kind)
	}
	return out
}

func TestVerifyIntact(t *testing.T) {
	c := newChain(t, 20)
	recs := c.read(t)
	if len(recs) != 22 {
		t.Fatalf("%d records, want 20 and 2 checkpoints", len(recs))
	}
	rep := c.verify(t, recs)
	if !rep.OK() || rep.LastSigned != 22 || rep.Unsigned != 0 {
		t.Fatalf("intact chain: %+v", rep)
	}
}

func TestVerifyFindsTampering(t *testing.T) {
	c := newChain(t, 20)
	orig := c.read(t)
	tests := []struct {
		name     string
		tamper   func([]Record) []Record
		wantKind string
		wantSeq  uint64
	}{
		{"edit a byte", func(rs []Record) []Record { rs[4].Source = "192.0.2.9"; return rs }, Modified, 5},
		{"edit and rehash", func(rs []Record) []Record { rs[4].Source = "192.0.2.9"; rs[4].Hash = digest(rs[4]); return rs }, Broken, 6},
		{"delete a record", func(rs []Record) []Record { return slices.Delete(rs, 7, 8) }, Removed, 8},
		{"delete three", func(rs []Record) []Record { return slices.Delete(rs, 7, 10) }, Removed, 8},
		{"reorder two", func(rs []Record) []Record { rs[3], rs[4] = rs[4], rs[3]; return rs }, Reordered, 4},
		{"insert a copy", func(rs []Record) []Record { return slices.Insert(rs, 5, rs[5]) }, Inserted, 6},
		{"forge a checkpoint", func(rs []Record) []Record { rs[len(rs)-1].Signature = strings.Repeat("00", 64); return rs }, BadSignature, 22},
		{"cut the tail", func(rs []Record) []Record { return rs[:15] }, TailCut, 15},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := tt.tamper(slices.Clone(orig))
			rep := c.verify(t, rs)
			for _, p := range rep.Problems {
				if p.Kind == tt.wantKind && p.Seq == tt.wantSeq {
					return
				}
			}
			t.Fatalf("Verify = %+v, want %s at %d", rep.Problems, tt.wantKind, tt.wantSeq)
		})
	}
}

// TestVerifyStoredStream tampers with the stream itself: a batch deleted
// from JetStream is named.
func TestVerifyStoredStream(t *testing.T) {
	c := newChain(t, 10)
	ctx := context.Background()
	s, err := c.s.JS.Stream(ctx, Stream)
	if err != nil {
		t.Fatal(err)
	}
	// The appends alternate synchronous and not, so the second message
	// holds records 2 and 3.
	if err := s.DeleteMsg(ctx, 2); err != nil {
		t.Fatal(err)
	}
	rep := c.verify(t, c.read(t))
	if len(rep.Problems) == 0 || rep.Problems[0].Kind != Removed || rep.Problems[0].Seq != 2 {
		t.Fatalf("after deleting message 2: %+v", rep.Problems)
	}
	// Resuming a chain continues it.
	priv := c.log.key
	l, err := Open(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)), c.s, c.s.JS, Config{Node: "n1", Key: priv})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Append(ctx, Record{Action: "deploy", Outcome: OK}, true); err != nil {
		t.Fatal(err)
	}
	recs := c.read(t)
	if last := recs[len(recs)-1]; last.Seq != 13 || last.Prev != recs[len(recs)-2].Hash {
		t.Fatalf("resumed record: %+v", last)
	}
}

func FuzzVerify(f *testing.F) {
	f.Add([]byte(`{"seq":1,"prev":"","hash":"x"}`))
	f.Add([]byte("{\"seq\":1}\n{\"seq\":18446744073709551615}"))
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	f.Fuzz(func(t *testing.T, b []byte) {
		var recs []Record
		for _, line := range strings.Split(string(b), "\n") {
			var r Record
			if json.Unmarshal([]byte(line), &r) == nil {
				recs = append(recs, r)
			}
		}
		Verify("n", recs, pub, &Head{Seq: 3})
	})
}
