package host

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/moatfn/moat/internal/manifest"
	"github.com/moatfn/moat/internal/objstore"
	"github.com/moatfn/moat/internal/sandbox"
	"github.com/moatfn/moat/internal/seal"
	"github.com/moatfn/moat/internal/store"
)

// objectHost returns a Host over a real embedded NATS with the object
// bucket "docs", and an invocation granted read-write on it.
func objectHost(t *testing.T) (*Host, *Invocation, *objstore.Store) {
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
	objs := objstore.New(st, seal.NewDataKeys(kv, ring), objstore.Limits{Object: 1 << 20})
	if err := objs.Ensure(ctx, "docs"); err != nil {
		t.Fatal(err)
	}
	h := New(slog.New(slog.DiscardHandler), Config{Objects: objs})
	return h, objInvocation(), objs
}

func objInvocation() *Invocation {
	return &Invocation{Function: "f", Version: "v1", ID: "inv", Perms: &manifest.Permissions{Objects: map[string]string{"docs": "read-write"}}}
}

func objReq(fields ...any) []byte {
	var e encoder
	for _, f := range fields {
		switch f := f.(type) {
		case string:
			e.string(f)
		case []byte:
			e.bytes(f)
		case int:
			e.uint(uint64(f))
		case uint64:
			e.uint(f)
		}
	}
	return e
}

func mustCall(t *testing.T, h *Host, inv *Invocation, op uint32, fields ...any) *decoder {
	t.Helper()
	out, err := h.call(context.Background(), inv, op, objReq(fields...))
	if err != nil {
		t.Fatalf("op %d: %v", op, err)
	}
	return &decoder{b: out}
}

// TestObjectHandles: handles belong to their invocation, and its end
// closes them: a write never committed is discarded and its Put returns.
func TestObjectHandles(t *testing.T) {
	h, inv, objs := objectHost(t)
	ctx := context.Background()

	id := mustCall(t, h, inv, opObjCreate, "docs", "a.txt", "text/plain").uint()
	mustCall(t, h, inv, opObjWrite, id, bytes.Repeat([]byte("a"), 100_000))
	d := mustCall(t, h, inv, opObjCommit, id)
	if name, size := d.string(), d.uint(); name != "a.txt" || size != 100_000 {
		t.Fatalf("commit: %q %d", name, size)
	}

	// Another invocation cannot use this one's handles, nor the same
	// number for something else.
	rid := mustCall(t, h, inv, opObjOpen, "docs", "a.txt").uint()
	other := objInvocation()
	for _, c := range [][]any{{opObjRead, rid, 10}, {opObjWrite, rid, []byte("x")}, {opObjCommit, rid}, {opObjClose, rid}} {
		op := uint32(c[0].(int))
		if _, err := h.call(ctx, other, op, objReq(c[1:]...)); status(err) != sandbox.StatusInvalid {
			t.Errorf("op %d on another invocation's handle: %v", op, err)
		}
	}
	// A reader does not write, a writer does not read.
	if _, err := h.call(ctx, inv, opObjWrite, objReq(rid, []byte("x"))); status(err) != sandbox.StatusInvalid {
		t.Errorf("write to a reader: %v", err)
	}
	d = mustCall(t, h, inv, opObjRead, rid, 1<<30) // asks too much: gets at most MaxObjectRead
	if data, eof := d.bytes(), d.uint(); len(data) != 100_000 || eof != 1 {
		t.Fatalf("read: %d bytes, eof %d", len(data), eof)
	}

	// Left open at the end: the write is discarded, its Put has returned.
	wid := mustCall(t, h, inv, opObjCreate, "docs", "b.txt", "").uint()
	mustCall(t, h, inv, opObjWrite, wid, bytes.Repeat([]byte("b"), 200_000))
	hd := inv.objs.get(wid)
	closed := make(chan struct{})
	go func() { inv.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return")
	}
	select {
	case <-hd.done:
	default:
		t.Fatal("the abandoned write's Put is still running")
	}
	if _, err := objs.Info(ctx, "docs", "b.txt"); err != objstore.ErrNotFound {
		t.Fatalf("abandoned write: %v, want not found", err)
	}
	if _, err := h.call(ctx, inv, opObjRead, objReq(rid, 10)); status(err) != sandbox.StatusInvalid {
		t.Errorf("read after the invocation's end: %v", err)
	}
}

// TestObjectMalformed: requests that do not decode, or name nothing, are
// invalid and change nothing.
func TestObjectMalformed(t *testing.T) {
	h, inv, _ := objectHost(t)
	for _, c := range []struct {
		name string
		op   uint32
		req  []byte
	}{
		{"info empty", opObjInfo, nil},
		{"info trailing", opObjInfo, append(objReq("docs", "a"), 0)},
		{"create without type", opObjCreate, objReq("docs", "a")},
		{"read without max", opObjRead, objReq(1)},
		{"write past end", opObjWrite, []byte{1, 9, 'x'}},
		{"read no handle", opObjRead, objReq(0, 10)},
		{"close no handle", opObjClose, objReq(99)},
		{"commit no handle", opObjCommit, objReq(1 << 40)},
		{"bad bucket", opObjInfo, objReq("Docs!", "a")},
		{"dot name", opObjInfo, objReq("docs", "a/./b")},
		{"nul name", opObjCreate, objReq("docs", "a\x00", "")},
		{"bad type", opObjCreate, objReq("docs", "a", "text/")},
		{"bad prefix", opObjList, objReq("docs", "../")},
	} {
		_, err := h.call(context.Background(), inv, c.op, c.req)
		if got := status(err); got != sandbox.StatusInvalid {
			t.Errorf("%s: status %d (%v), want invalid", c.name, got, err)
		}
	}
	if n := len(inv.objs.handles); n != 0 {
		t.Fatalf("%d handles left by refused calls", n)
	}
}
