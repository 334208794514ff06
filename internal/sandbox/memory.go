package sandbox

import (
	"sync"
	"syscall"

	"github.com/tetratelabs/wazero/experimental"
)

// memoryPool backs guests' linear memories with buffers mapped outside the
// Go heap, reused across instances. A memory is reserved at its maximum
// size once, so growing it never copies; the garbage collector never scans
// or zeroes it; and a buffer returns to the pool wiped: every byte an
// instance could have touched is zeroed before the next instance sees it.
type memoryPool struct {
	mu   sync.Mutex
	free map[uint64][]*linearMemory // idle buffers by reserved size
	idle int                        // idle buffers kept per size
	live int                        // buffers handed out and not yet freed
}

func newMemoryPool(idle int) *memoryPool {
	return &memoryPool{free: map[uint64][]*linearMemory{}, idle: idle}
}

var _ experimental.MemoryAllocator = (*memoryPool)(nil)

// Allocate returns a memory that can grow to max bytes without moving.
func (p *memoryPool) Allocate(capacity, max uint64) experimental.LinearMemory {
	p.mu.Lock()
	if list := p.free[max]; len(list) > 0 {
		m := list[len(list)-1]
		p.free[max] = list[:len(list)-1]
		p.live++
		p.mu.Unlock()
		return m
	}
	p.mu.Unlock()
	buf, err := syscall.Mmap(-1, 0, int(max), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON|syscall.MAP_NORESERVE)
	if err != nil {
		return &heapMemory{max: max}
	}
	p.mu.Lock()
	p.live++
	p.mu.Unlock()
	return &linearMemory{pool: p, buf: buf}
}

// linearMemory is one mapped buffer.
type linearMemory struct {
	pool *memoryPool
	buf  []byte
	used uint64 // the high-water mark: what an instance may have written
}

// Reallocate grows the memory in place; it returns nil past the reservation.
func (m *linearMemory) Reallocate(size uint64) []byte {
	if size > uint64(len(m.buf)) {
		return nil
	}
	m.used = max(m.used, size)
	return m.buf[:size:size]
}

// Free wipes what was used and returns the buffer to the pool, or unmaps it
// when the pool holds enough idle buffers of its size.
func (m *linearMemory) Free() {
	clear(m.buf[:m.used])
	m.used = 0
	p := m.pool
	size := uint64(len(m.buf))
	p.mu.Lock()
	p.live--
	if len(p.free[size]) < p.idle {
		p.free[size] = append(p.free[size], m)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	syscall.Munmap(m.buf)
}

// inUse returns how many buffers are handed out.
func (p *memoryPool) inUse() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.live
}

// close unmaps every idle buffer.
func (p *memoryPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for size, list := range p.free {
		for _, m := range list {
			syscall.Munmap(m.buf)
		}
		delete(p.free, size)
	}
}

// heapMemory is the fallback when a mapping fails: a Go slice that grows
// by copying, as wazero's own default does.
type heapMemory struct {
	buf []byte
	max uint64
}

func (m *heapMemory) Reallocate(size uint64) []byte {
	if size > m.max {
		return nil
	}
	if size <= uint64(cap(m.buf)) {
		m.buf = m.buf[:size]
		return m.buf
	}
	nb := make([]byte, size, min(max(size*2, 1<<16), m.max))
	copy(nb, m.buf)
	m.buf = nb
	return m.buf
}

func (m *heapMemory) Free() { m.buf = nil }
