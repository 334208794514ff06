package objstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/moatfn/moat/internal/seal"
	"github.com/moatfn/moat/internal/store"
)

// open returns a Store on a real embedded NATS with one bucket, "uploads".
func open(t testing.TB, l Limits) (*Store, *store.Store) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.Open(ctx, slog.New(slog.DiscardHandler), store.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	ring, err := seal.LoadKeyring(filepath.Join(dir, "master.key"), true)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := st.KV(ctx, "keys", 1)
	if err != nil {
		t.Fatal(err)
	}
	s := New(st, seal.NewDataKeys(kv, ring), l)
	if err := s.Ensure(ctx, "uploads"); err != nil {
		t.Fatal(err)
	}
	return s, st
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

func read(t *testing.T, s *Store, name string) ([]byte, *Object, error) {
	t.Helper()
	o, err := s.Get(context.Background(), "uploads", name)
	if err != nil {
		return nil, nil, err
	}
	defer o.Close()
	b, err := io.ReadAll(o)
	return b, o, err
}

func TestRoundTrip(t *testing.T) {
	s, st := open(t, Limits{})
	ctx := context.Background()
	for i, n := range []int{0, 1, SegmentSize - 1, SegmentSize, SegmentSize + 1, 3*SegmentSize + 5} {
		data := pattern(n)
		name := "in/" + strings.Repeat("x", i) + "file.csv"
		info, err := s.Put(ctx, "uploads", name, "text/csv; charset=utf-8", bytes.NewReader(data), 0)
		if err != nil {
			t.Fatalf("put %d bytes: %v", n, err)
		}
		sum := sha256.Sum256(data)
		if info.Size != int64(n) || info.Digest != "sha-256:"+hex.EncodeToString(sum[:]) || info.ContentType != "text/csv; charset=utf-8" {
			t.Fatalf("put %d bytes: info %+v", n, info)
		}
		got, o, err := read(t, s, name)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("get %d bytes: %d bytes back, %v", n, len(got), err)
		}
		if o.Size != int64(n) || o.Digest != info.Digest {
			t.Fatalf("get's info %+v, want %+v", o.Info, info)
		}
		again, err := s.Info(ctx, "uploads", name)
		if err != nil || *again != o.Info {
			t.Fatalf("info %+v, %v; want %+v", again, err, o.Info)
		}
		// What the store keeps is not the plaintext.
		raw, err := st.JS.ObjectStore(ctx, bucketPrefix+"uploads")
		if err != nil {
			t.Fatal(err)
		}
		stored, err := raw.GetBytes(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if n >= 16 && bytes.Contains(stored, data[:16]) {
			t.Fatalf("the stored object holds plaintext")
		}
	}
	list, err := s.List(ctx, "uploads", "in/")
	if err != nil || len(list) != 6 {
		t.Fatalf("list: %d, %v", len(list), err)
	}
	if l, err := s.List(ctx, "uploads", "out/"); err != nil || len(l) != 0 {
		t.Fatalf("list out/: %v, %v", l, err)
	}
	if err := s.Delete(ctx, "uploads", list[0].Name); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Info(ctx, "uploads", list[0].Name); !errors.Is(err, ErrNotFound) {
		t.Fatalf("info after delete: %v", err)
	}
	if err := s.Delete(ctx, "uploads", "never-was"); err != nil {
		t.Fatalf("deleting an absent object: %v", err)
	}
	if _, err := s.Get(ctx, "nosuch", "a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get from an absent bucket: %v", err)
	}
}

func TestBadNames(t *testing.T) {
	s, _ := open(t, Limits{})
	ctx := context.Background()
	bad := []string{"", "../etc/passwd", "in/../x", "./a", "a/./b", "/abs", "a//b", "a/", "nul\x00byte", "new\nline",
		"cr\rx", "tab\tx", `back\slash`, "rtl\u202Efdp.exe", "zw\u200Bj", "ls\u2028x", "\xff\xfe", strings.Repeat("k", 10<<10)}
	for _, name := range bad {
		if _, err := s.Put(ctx, "uploads", name, "", strings.NewReader("x"), 0); !errors.Is(err, ErrInvalid) {
			t.Errorf("put %q: %v, want ErrInvalid", name, err)
		}
		if _, err := s.Get(ctx, "uploads", name); !errors.Is(err, ErrInvalid) {
			t.Errorf("get %q: %v, want ErrInvalid", name, err)
		}
	}
	for _, name := range []string{"a", "in/2026-12-07 stock.csv", "日本/東京.txt", "a..b", strings.Repeat("k", MaxName)} {
		if err := CheckName(name); err != nil {
			t.Errorf("CheckName(%q): %v", name, err)
		}
	}
	for _, ct := range []string{"text/", "a b", strings.Repeat("t", 300)} {
		if _, err := s.Put(ctx, "uploads", "x", ct, strings.NewReader("x"), 0); !errors.Is(err, ErrInvalid) {
			t.Errorf("content type %q: %v", ct, err)
		}
	}
	if l, err := s.List(ctx, "uploads", ""); err != nil || len(l) != 0 {
		t.Fatalf("refused puts kept something: %v, %v", l, err)
	}
}

func TestCaps(t *testing.T) {
	s, _ := open(t, Limits{Object: 2*SegmentSize + 10, Bucket: 1 << 20})
	ctx := context.Background()
	keep := pattern(100)
	if _, err := s.Put(ctx, "uploads", "a", "", bytes.NewReader(keep), 0); err != nil {
		t.Fatal(err)
	}
	// Over the node's cap, and over the caller's lower cap: refused, and
	// the object already there is untouched.
	if _, err := s.Put(ctx, "uploads", "a", "", bytes.NewReader(pattern(2*SegmentSize+11)), 0); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("over the node's cap: %v", err)
	}
	if _, err := s.Put(ctx, "uploads", "a", "", bytes.NewReader(pattern(1001)), 1000); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("over the caller's cap: %v", err)
	}
	if _, err := s.Put(ctx, "uploads", "a", "", bytes.NewReader(pattern(1000)), 1<<40); err != nil {
		t.Fatalf("a caller's cap above the node's is the node's: %v", err)
	}
	got, _, err := read(t, s, "a")
	if err != nil || !bytes.Equal(got, pattern(1000)) {
		t.Fatalf("after refusals: %d bytes, %v", len(got), err)
	}
	// The bucket's cap: fill it, then one more is refused.
	var full error
	for i := range 20 {
		_, full = s.Put(ctx, "uploads", "fill/"+string(rune('a'+i)), "", bytes.NewReader(pattern(2*SegmentSize)), 0)
		if full != nil {
			break
		}
	}
	if !errors.Is(full, ErrTooLarge) {
		t.Fatalf("bucket over its cap: %v", full)
	}
	if got, _, err := read(t, s, "a"); err != nil || len(got) != 1000 {
		t.Fatalf("a full bucket lost an object: %v", err)
	}
}

// TestTampering: an object altered in the store does not open, whatever
// was changed: a byte, the order of segments, its name, a cut, an extra.
func TestTampering(t *testing.T) {
	s, st := open(t, Limits{})
	ctx := context.Background()
	raw, err := st.JS.ObjectStore(ctx, bucketPrefix+"uploads")
	if err != nil {
		t.Fatal(err)
	}
	data := pattern(3*SegmentSize + 99)
	if _, err := s.Put(ctx, "uploads", "orig", "", bytes.NewReader(data), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "uploads", "other", "", bytes.NewReader(data), 0); err != nil {
		t.Fatal(err)
	}
	sealed, err := raw.GetBytes(ctx, "orig")
	if err != nil {
		t.Fatal(err)
	}
	head, seg := len(magic)+16, 1+sealedSegment
	swap := bytes.Clone(sealed)
	copy(swap[head:head+seg], sealed[head+seg:head+2*seg])
	copy(swap[head+seg:head+2*seg], sealed[head:head+seg])
	flip := bytes.Clone(sealed)
	flip[head+seg+100] ^= 1
	final := bytes.Clone(sealed)
	final[head] = 1
	other, _ := raw.GetBytes(ctx, "other")
	for what, b := range map[string][]byte{
		"a flipped bit":            flip,
		"swapped segments":         swap,
		"cut after a segment":      sealed[:head+seg],
		"cut inside a segment":     sealed[:head+seg+50],
		"cut before the last":      sealed[:head+3*seg],
		"a byte after the last":    append(bytes.Clone(sealed), 0),
		"an early final flag":      final,
		"another object's bytes":   other,
		"no header":                sealed[head:],
		"nothing":                  {},
		"the last segment doubled": append(bytes.Clone(sealed), sealed[head+3*seg:]...),
	} {
		if _, err := raw.PutBytes(ctx, "orig", b); err != nil {
			t.Fatal(err)
		}
		got, _, err := read(t, s, "orig")
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: read %d bytes, err %v; want ErrCorrupt", what, len(got), err)
		}
	}
}

// FuzzCheckName: an accepted name never reads as a path leaving its
// place, and never holds a byte that could end a line or a header.
func FuzzCheckName(f *testing.F) {
	for _, s := range []string{"a", "../x", "a/b", "a\x00", "日本", "a//b", ".", "in/ x .csv"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if CheckName(name) != nil {
			return
		}
		if strings.ContainsAny(name, "\x00\r\n\\") || strings.HasPrefix(name, "/") || strings.HasSuffix(name, "/") {
			t.Fatalf("accepted %q", name)
		}
		for p := range strings.SplitSeq(name, "/") {
			if p == ".." || p == "." || p == "" {
				t.Fatalf("accepted %q", name)
			}
		}
		if filepath.Clean("/r/"+name) != "/r/"+name {
			t.Fatalf("%q does not stay under its root", name)
		}
	})
}

// FuzzOpen: whatever bytes the store holds, reading them never panics and
// never yields plaintext that was not sealed for this object.
func FuzzOpen(f *testing.F) {
	sl := testSealer(f)
	var sealed bytes.Buffer
	io.Copy(&sealed, newSealing(sl, "uploads", "x", bytes.NewReader(pattern(SegmentSize+3)), 1<<20))
	f.Add(sealed.Bytes())
	f.Add([]byte(magic + "0123456789abcdef\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		o := newOpening(sl, aadBase("uploads", "x"), io.NopCloser(bytes.NewReader(b)))
		got, err := io.ReadAll(o)
		if err == nil && !bytes.Equal(b, sealed.Bytes()) && len(got) > 0 {
			// Valid only if it was sealed by us: fresh random nonces make
			// a forgery that opens impossible in practice.
			t.Fatalf("%d bytes opened from input not sealed here", len(got))
		}
	})
}

// testSealer returns a sealer with a fresh data key.
func testSealer(tb testing.TB) *seal.Sealer {
	tb.Helper()
	ctx := context.Background()
	dir := tb.TempDir()
	st, err := store.Open(ctx, slog.New(slog.DiscardHandler), store.Config{Dir: dir})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(st.Close)
	ring, err := seal.LoadKeyring(filepath.Join(dir, "master.key"), true)
	if err != nil {
		tb.Fatal(err)
	}
	kv, err := st.KV(ctx, "keys", 1)
	if err != nil {
		tb.Fatal(err)
	}
	sl, err := seal.NewDataKeys(kv, ring).Sealer(ctx, "obj/uploads")
	if err != nil {
		tb.Fatal(err)
	}
	return sl
}

// TestReopen: an object outlives its store's process: the same data
// directory and master key open it again, and a wrong master key cannot.
func TestReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	openAt := func(keyFile string) (*Store, func()) {
		st, err := store.Open(ctx, slog.New(slog.DiscardHandler), store.Config{Dir: dir, SyncAlways: true})
		if err != nil {
			t.Fatal(err)
		}
		ring, err := seal.LoadKeyring(keyFile, true)
		if err != nil {
			t.Fatal(err)
		}
		kv, err := st.KV(ctx, "keys", 1)
		if err != nil {
			t.Fatal(err)
		}
		return New(st, seal.NewDataKeys(kv, ring), Limits{}), st.Close
	}
	key := filepath.Join(dir, "master.key")
	s, stop := openAt(key)
	if err := s.Ensure(ctx, "uploads"); err != nil {
		t.Fatal(err)
	}
	data := pattern(2*SegmentSize + 7)
	if _, err := s.Put(ctx, "uploads", "kept", "", bytes.NewReader(data), 0); err != nil {
		t.Fatal(err)
	}
	stop()

	s, stop = openAt(key)
	o, err := s.Get(ctx, "uploads", "kept")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(o)
	o.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("after reopening: %d bytes, %v", len(got), err)
	}
	stop()

	s, stop = openAt(filepath.Join(t.TempDir(), "other.key"))
	defer stop()
	if o, err := s.Get(ctx, "uploads", "kept"); err == nil {
		_, err = io.ReadAll(o)
		o.Close()
		if err == nil {
			t.Fatal("another master key read the object")
		}
	}
}

// TestDescribeMeta: the stream's description messages read as one event per
// put and per delete (the first step of a put is skipped), and a message
// that is no description is not taken for one.
func TestDescribeMeta(t *testing.T) {
	s, st := open(t, Limits{})
	ctx := context.Background()
	if _, err := s.Put(ctx, "uploads", "in/a.csv", "text/csv", strings.NewReader("a,b\n"), 0); err != nil {
		t.Fatal(err)
	}
	stream, err := st.JS.Stream(ctx, Stream("uploads"))
	if err != nil {
		t.Fatal(err)
	}
	// The store keeps one description per name (a roll-up): what a
	// consumer reads is the name's latest state, not every step.
	latest := func() []string {
		t.Helper()
		cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{MetaSubjects("uploads")}})
		if err != nil {
			t.Fatal(err)
		}
		batch, err := cons.FetchNoWait(10)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for m := range batch.Messages() {
			if info, deleted, ok := DescribeMeta("uploads", m.Data()); ok {
				got = append(got, fmt.Sprintf("%s %d %v %s", info.Name, info.Size, deleted, info.ContentType))
			}
		}
		return got
	}
	if got := fmt.Sprint(latest()); got != "[in/a.csv 4 false text/csv]" {
		t.Fatalf("after a put: %s", got)
	}
	if err := s.Delete(ctx, "uploads", "in/a.csv"); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(latest()); got != "[in/a.csv 4 true text/csv]" {
		t.Fatalf("after a delete: %s", got)
	}
	for _, b := range [][]byte{nil, []byte("{"), []byte(`{"name":"../x","metadata":{"moat-sha256":"x"}}`), []byte(`{"name":"a\nb","deleted":true}`)} {
		if _, _, ok := DescribeMeta("uploads", b); ok {
			t.Errorf("DescribeMeta(%q) took it", b)
		}
	}
}
