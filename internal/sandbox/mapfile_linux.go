//go:build linux

package sandbox

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// mapFile maps a file read-only, so that reading it costs a page fault per
// 16 pages of the page cache rather than a copy and a fault per page of
// fresh heap: a restart reads the kept rewrite of every Go command. unmap
// must be called once the bytes are no longer used; nothing may keep them.
func mapFile(path string) (b []byte, unmap func(), err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	size := info.Size()
	if size == 0 || size > 1<<32 {
		return nil, nil, fmt.Errorf("%s: size %d", path, size)
	}
	b, err = unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_PRIVATE)
	if err != nil {
		return nil, nil, err
	}
	return b, func() { unix.Munmap(b) }, nil
}
