package sandbox

import (
	"bytes"
	"context"
	"testing"
	"time"
)

func TestMemoryPoolWipes(t *testing.T) {
	p := newMemoryPool(4)
	defer p.close()
	m := p.Allocate(1<<16, 4<<20)
	b := m.Reallocate(1 << 16)
	b = m.Reallocate(3 << 20) // grows in place
	if len(b) != 3<<20 {
		t.Fatalf("Reallocate = %d bytes", len(b))
	}
	for i := range b {
		b[i] = 0xAA
	}
	if m.Reallocate(5<<20) != nil {
		t.Fatal("Reallocate past the reservation succeeded")
	}
	m.Free()
	m2 := p.Allocate(1<<16, 4<<20)
	if m2 != m {
		t.Fatal("the pool did not reuse the buffer")
	}
	if b2 := m2.Reallocate(4 << 20); !bytes.Equal(b2, make([]byte, 4<<20)) {
		t.Fatal("a reused buffer holds the previous instance's bytes")
	}
	m2.Free()
	if p.inUse() != 0 {
		t.Fatalf("inUse = %d after Free", p.inUse())
	}
}

// TestFailuresReturnMemory checks that every way a run can end gives its
// memory back: a leak here would grow the node's footprint per request.
func TestFailuresReturnMemory(t *testing.T) {
	r := newRuntime(t)
	m := compileKitchen(t, r, 64<<20)
	for _, path := range []string{"/hello", "/loop", "/exit3", "/panic", "/spew", "/alloc", "/sleep"} {
		req := request(path)
		req.Env = append(req.Env, "QUERY_STRING=d=1h")
		req.Timeout = 200 * time.Millisecond
		if path == "/alloc" || path == "/spew" {
			req.Timeout = 10 * time.Second
		}
		m.Run(context.Background(), req)
		if n := r.memory.inUse(); n != 0 {
			t.Fatalf("after %s: %d memories still in use", path, n)
		}
	}
}
