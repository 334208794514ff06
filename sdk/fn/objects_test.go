package fn

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"
)

// objectHost stands in for the host's object calls over one in-memory
// object, recording each request's op and size.
type objectHost struct {
	stored  []byte
	writing []byte
	reading []byte
	ops     []string
	writes  []int // bytes per obj.write
}

func (h *objectHost) call(op uint32, req []byte) ([]byte, error) {
	h.ops = append(h.ops, opName(op))
	d := decoder{b: req}
	info := func(data []byte) []byte {
		return encodeValues("a.bin", len(data), "sha-256:x", "text/plain", 1733500000000)
	}
	switch op {
	case opObjCreate:
		d.string()
		d.string()
		d.string()
		h.writing = []byte{}
		return encodeValues(7), d.finish()
	case opObjWrite:
		if id := d.uint(); id != 7 {
			return nil, &Error{Code: Invalid, Message: fmt.Sprint("handle ", id)}
		}
		p := d.bytes()
		h.writes = append(h.writes, len(p))
		h.writing = append(h.writing, p...)
		return nil, d.finish()
	case opObjCommit:
		d.uint()
		h.stored, h.writing = h.writing, nil
		return info(h.stored), d.finish()
	case opObjOpen:
		d.string()
		d.string()
		h.reading = h.stored
		return append(encodeValues(9), info(h.stored)...), d.finish()
	case opObjRead:
		d.uint()
		n := int(d.uint())
		k := min(n, len(h.reading))
		out := h.reading[:k]
		h.reading = h.reading[k:]
		eof := 0
		if len(h.reading) == 0 {
			eof = 1
		}
		return encodeValues(out, eof), d.finish()
	case opObjClose:
		d.uint()
		h.writing = nil
		return nil, d.finish()
	}
	return nil, &Error{Code: Invalid, Message: "unexpected " + opName(op)}
}

func TestObjectStreams(t *testing.T) {
	h := &objectHost{}
	b := &ObjectBucket{name: "docs", host: h.call}
	data := bytes.Repeat([]byte("0123456789"), 60_000) // 600 kB
	w, err := b.Create("a.bin", "text/plain")
	if err != nil {
		t.Fatal(err)
	}
	// Small writes are gathered into whole chunks.
	for i := 0; i < len(data); i += 10 {
		if _, err := w.Write(data[i : i+10]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(h.stored, data) || fmt.Sprint(h.writes) != fmt.Sprint([]int{objectChunk, objectChunk, len(data) - 2*objectChunk}) {
		t.Fatalf("stored %d bytes in writes %v", len(h.stored), h.writes)
	}
	if w.Info.Size != int64(len(data)) || w.Info.ContentType != "text/plain" || !w.Info.Modified.Equal(time.UnixMilli(1733500000000)) {
		t.Fatalf("info %+v", w.Info)
	}
	if _, err := w.Write([]byte("x")); !errors.Is(err, ErrInvalid) {
		t.Fatalf("write after close: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}

	got, info, err := b.Get("a.bin")
	if err != nil || !bytes.Equal(got, data) || info.Size != int64(len(data)) {
		t.Fatalf("get: %d bytes, %+v, %v", len(got), info, err)
	}
	if h.ops[len(h.ops)-1] != "obj.close" {
		t.Fatalf("Get did not close its reader: %v", h.ops)
	}

	// Abort sends a close and keeps nothing; writing after it fails.
	w, _ = b.Create("b.bin", "")
	w.Write([]byte("partial"))
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	if h.writing != nil || h.ops[len(h.ops)-1] != "obj.close" {
		t.Fatalf("abort: %v", h.ops)
	}
	if _, err := w.Write([]byte("x")); !errors.Is(err, ErrInvalid) {
		t.Fatalf("write after abort: %v", err)
	}
}

func TestObjectMalformedReplies(t *testing.T) {
	for _, c := range []struct {
		name  string
		reply []byte
		call  func(b *ObjectBucket) error
	}{
		{"info short", encodeValues("a", 1), func(b *ObjectBucket) error { _, err := b.Info("a"); return err }},
		{"list count past end", encodeValues(1000), func(b *ObjectBucket) error { _, err := b.List(""); return err }},
		{"open no info", encodeValues(1), func(b *ObjectBucket) error { _, err := b.Open("a"); return err }},
		{"create trailing", encodeValues(1, 2), func(b *ObjectBucket) error { _, err := b.Create("a", ""); return err }},
		{"delete trailing", encodeValues(1), func(b *ObjectBucket) error { return b.Delete("a") }},
	} {
		host := &fakeHost{reply: c.reply}
		err := c.call(&ObjectBucket{name: "docs", host: host.call})
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want invalid", c.name, err)
		}
	}
	// A read reply with an eof flag other than 0 or 1, or more than asked.
	for _, reply := range [][]byte{encodeValues("abc", 2), encodeValues(string(make([]byte, objectChunk+1)), 0)} {
		host := &fakeHost{reply: reply}
		r := &ObjectReader{id: 1, host: host.call}
		if _, err := io.ReadAll(r); !errors.Is(err, ErrInvalid) {
			t.Errorf("read of a malformed reply: %v", err)
		}
	}
	// The host's denial reaches the caller as it is.
	host := &fakeHost{err: &Error{Op: "obj.open", Code: Denied}}
	if _, err := (&ObjectBucket{name: "docs", host: host.call}).Open("a"); !errors.Is(err, ErrDenied) {
		t.Errorf("open denied: %v", err)
	}
}
