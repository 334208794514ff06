//go:build linux

package sandbox

import (
	"encoding/binary"
	"fmt"
	"os"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/tetratelabs/wazero/experimental"
)

// cowPool hands out linear memories that start as a copy of a snapshot
// image without copying it: the image lives in a sealed memfd, and each
// memory maps it private, so an instance reads the shared pages and pays
// only for those it writes (copy-on-write). Past the image the memory is
// anonymous and zero, reserved up to the cap so that growing never moves
// it. Freed memories are reset with madvise(MADV_DONTNEED), which drops the
// written pages: the next instance sees the image again, byte for byte,
// and the zeros after it.
type cowPool struct {
	fd    int
	image int // bytes of image, a multiple of the page size

	mu   sync.Mutex
	free []*cowMemory
	idle int
	live int
}

func newCOWPool(image []byte, idle int) (*cowPool, error) {
	fd, err := unix.MemfdCreate("moat-snapshot", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("memfd: %w", err)
	}
	f := os.NewFile(uintptr(fd), "moat-snapshot")
	if _, err := f.Write(image); err != nil {
		f.Close()
		return nil, fmt.Errorf("memfd: %w", err)
	}
	// Nothing may change the image once instances map it.
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_WRITE|unix.F_SEAL_SEAL); err != nil {
		f.Close()
		return nil, fmt.Errorf("memfd seals: %w", err)
	}
	// f must not close fd when collected: the pool owns it.
	fd2, err := unix.Dup(fd)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("memfd: %w", err)
	}
	return &cowPool{fd: fd2, image: len(image), idle: idle}, nil
}

var _ experimental.MemoryAllocator = (*cowPool)(nil)

// Allocate returns a memory holding the image that can grow to max bytes.
func (p *cowPool) Allocate(_, max uint64) experimental.LinearMemory {
	p.mu.Lock()
	for len(p.free) > 0 {
		m := p.free[len(p.free)-1]
		p.free = p.free[:len(p.free)-1]
		if uint64(len(m.buf)) == max {
			p.live++
			p.mu.Unlock()
			return m
		}
		unix.Munmap(m.buf)
	}
	p.mu.Unlock()
	if max < uint64(p.image) {
		return nil
	}
	buf, err := unix.Mmap(-1, 0, int(max), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON|unix.MAP_NORESERVE)
	if err != nil {
		return nil
	}
	if p.image > 0 {
		if _, err := unix.MmapPtr(p.fd, 0, unsafe.Pointer(&buf[0]), uintptr(p.image),
			unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_FIXED); err != nil {
			unix.Munmap(buf)
			return nil
		}
	}
	p.mu.Lock()
	p.live++
	p.mu.Unlock()
	return &cowMemory{pool: p, buf: buf}
}

// close unmaps the idle memories and closes the image.
func (p *cowPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range p.free {
		unix.Munmap(m.buf)
	}
	p.free = nil
	unix.Close(p.fd)
}

// inUse returns how many memories are handed out.
func (p *cowPool) inUse() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.live
}

// cowMemory is one instance's memory.
type cowMemory struct {
	pool *cowPool
	buf  []byte
	used uint64
}

func (m *cowMemory) Reallocate(size uint64) []byte {
	if size > uint64(len(m.buf)) {
		return nil
	}
	m.used = max(m.used, size)
	return m.buf[:size:size]
}

// Free resets what the instance used and returns the memory to the pool.
func (m *cowMemory) Free() {
	if privateHook != nil {
		privateHook(privateBytes(m.buf[:m.used]))
	}
	p := m.pool
	used := m.used
	m.used = 0
	if used > 0 && unix.Madvise(m.buf[:used], unix.MADV_DONTNEED) != nil {
		// Not reset: never hand it out again.
		p.mu.Lock()
		p.live--
		p.mu.Unlock()
		unix.Munmap(m.buf)
		return
	}
	p.mu.Lock()
	p.live--
	if len(p.free) < p.idle {
		p.free = append(p.free, m)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	unix.Munmap(m.buf)
}

// privateHook, when set (by benchmarks), receives the private memory of
// every snapshot instance as it ends.
var privateHook func(bytes int64)

// privateBytes counts the bytes of b that are private to this process and
// present: the pages an instance wrote (copy-on-write) or touched past the
// image. Pages read from the image stay shared and do not count. It reads
// /proc/self/pagemap, and returns -1 when it cannot.
func privateBytes(b []byte) int64 {
	if len(b) == 0 {
		return 0
	}
	f, err := os.Open("/proc/self/pagemap")
	if err != nil {
		return -1
	}
	defer f.Close()
	page := uintptr(os.Getpagesize())
	start := uintptr(unsafe.Pointer(&b[0])) / page
	n := (uintptr(len(b)) + page - 1) / page
	entries := make([]byte, n*8)
	if _, err := f.ReadAt(entries, int64(start*8)); err != nil {
		return -1
	}
	var private int64
	for i := uintptr(0); i < n; i++ {
		e := binary.LittleEndian.Uint64(entries[i*8:])
		present, file, exclusive := e&(1<<63) != 0, e&(1<<61) != 0, e&(1<<56) != 0
		if present && !file && exclusive {
			private += int64(page)
		}
	}
	return private
}
