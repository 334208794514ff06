//go:build linux

package sandbox

import (
	"bytes"
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
	size  int    // bytes of memory the image stands for, a multiple of the page size
	image int    // bytes of it held in the memfd: the rest is zeros
	view  []byte // the memfd, mapped shared and read-only

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
	size := len(image)
	// Trailing zero pages (a heap reserved but never written, such as the
	// JavaScript runtime's headroom) stay out of the memfd, which is
	// memory: past it each instance maps anonymous zeros.
	image = image[:trimZeroPages(image)]
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
	p := &cowPool{fd: fd2, size: size, image: len(image), idle: idle}
	if len(image) > 0 {
		if p.view, err = unix.Mmap(fd2, 0, len(image), unix.PROT_READ, unix.MAP_SHARED); err != nil {
			unix.Close(fd2)
			return nil, fmt.Errorf("memfd view: %w", err)
		}
	}
	return p, nil
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
	if max < uint64(p.size) {
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
	if p.view != nil {
		unix.Munmap(p.view)
		p.view = nil
	}
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

// restore sets a memory of exactly the image's size back to the image in
// place: each page the process holds privately (written since it was
// mapped, or since an earlier restore) and differing from the image is
// copied back. The kernel names those pages through PAGEMAP_SCAN, or, on a
// kernel without it (before 6.7), through a read of pagemap, twice as
// costly. The copied pages stay resident, so the next request that
// writes them pays no page fault. Past maxDirtyPages, or when pagemap
// cannot be read, the memory is dropped back to the image with madvise.
// It reports false when the memory could not be restored.
func (p *cowPool) restore(m *cowMemory) bool {
	if m.used != uint64(p.size) {
		return false
	}
	if privateHook != nil {
		privateHook(privateBytes(m.buf[:m.used]))
	}
	buf := m.buf[:p.size]
	page := os.Getpagesize()
	if p.size <= smallImage {
		// Comparing a small image page by page costs less than the
		// system call that reads pagemap.
		p.restoreRange(buf, 0, p.size)
		return true
	}
	if runs, ok := writtenRuns(buf, maxDirtyPages); ok {
		dirty := 0
		for _, r := range runs {
			dirty += (r[1] - r[0]) / page
		}
		if dirty > maxDirtyPages {
			return unix.Madvise(buf, unix.MADV_DONTNEED) == nil
		}
		// These pages were written: copy them back without comparing
		// first (a compare saves nothing, the page is private either way).
		for _, r := range runs {
			p.copyBack(buf, r[0], r[1])
		}
		return true
	}
	entries, err := pagemap(buf)
	if err == nil {
		dirty := 0
		for _, e := range entries {
			if written(e) {
				dirty++
			}
		}
		if dirty <= maxDirtyPages {
			for i, e := range entries {
				if !written(e) {
					continue
				}
				p.copyBack(buf, i*page, (i+1)*page)
			}
			return true
		}
	}
	return unix.Madvise(buf, unix.MADV_DONTNEED) == nil
}

// restoreRange copies back from the image each page of buf[from:to] that
// differs from it (zeros past the memfd); pages that do not differ are
// left alone (and unwritten).
func (p *cowPool) restoreRange(buf []byte, from, to int) {
	page := os.Getpagesize()
	for off := from; off < to; off += page {
		was := zeroPage[:page]
		if off < p.image {
			was = p.view[off : off+page]
		}
		if !bytes.Equal(buf[off:off+page], was) {
			copy(buf[off:off+page], was)
		}
	}
}

// copyBack copies buf[from:to] back from the image (zeros past the memfd).
func (p *cowPool) copyBack(buf []byte, from, to int) {
	if from < p.image {
		end := min(to, p.image)
		copy(buf[from:end], p.view[from:end])
		from = end
	}
	if from < to {
		clear(buf[from:to])
	}
}

// zeroPage is a page of zeros, to compare with and copy from.
var zeroPage = make([]byte, os.Getpagesize())

// trimZeroPages returns the length of image without its trailing pages of
// zeros.
func trimZeroPages(image []byte) int {
	page := os.Getpagesize()
	n := len(image) / page * page
	if n != len(image) {
		return len(image) // not whole pages: kept as it is
	}
	for n > 0 && bytes.Equal(image[n-page:n], zeroPage) {
		n -= page
	}
	return n
}

// smallImage is the image size up to which restore compares every page
// rather than reading pagemap: the read costs about 6µs on the test
// machine, comparing a page about 0.1µs.
const smallImage = 128 << 10

// written reports whether a pagemap entry may hold bytes other than the
// file's: present and not the file's page, or swapped out (only private
// pages are).
func written(e uint64) bool {
	present, swapped, file := e&(1<<63) != 0, e&(1<<62) != 0, e&(1<<61) != 0
	return swapped || present && !file
}

var (
	pagemapOnce sync.Once
	pagemapFile *os.File
	pagemapErr  error
)

// pagemap returns the /proc/self/pagemap entries of b's pages.
func pagemap(b []byte) ([]uint64, error) {
	pagemapOnce.Do(func() { pagemapFile, pagemapErr = os.Open("/proc/self/pagemap") })
	if pagemapErr != nil {
		return nil, pagemapErr
	}
	page := uintptr(os.Getpagesize())
	start := uintptr(unsafe.Pointer(&b[0])) / page
	n := (uintptr(len(b)) + page - 1) / page
	raw := make([]byte, n*8)
	if _, err := pagemapFile.ReadAt(raw, int64(start*8)); err != nil {
		return nil, err
	}
	entries := make([]uint64, n)
	for i := range entries {
		entries[i] = binary.LittleEndian.Uint64(raw[i*8:])
	}
	return entries, nil
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
	entries, err := pagemap(b)
	if err != nil {
		return -1
	}
	var private int64
	for _, e := range entries {
		present, file, exclusive := e&(1<<63) != 0, e&(1<<61) != 0, e&(1<<56) != 0
		if present && !file && exclusive {
			private += int64(os.Getpagesize())
		}
	}
	return private
}
