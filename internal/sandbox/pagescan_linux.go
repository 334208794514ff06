//go:build linux

package sandbox

import (
	"os"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The PAGEMAP_SCAN ioctl on /proc/self/pagemap (Linux 6.7): the kernel
// walks a range and returns only the runs of pages in the categories asked
// for, instead of eight bytes for every page.
const (
	pagemapScan   = 0xC0606610 // _IOWR('f', 16, struct pm_scan_arg)
	pageIsFile    = 1 << 2
	pageIsPresent = 1 << 3
	pageIsSwapped = 1 << 4
)

// pmScanArg is struct pm_scan_arg.
type pmScanArg struct {
	size, flags, start, end, walkEnd, vec, vecLen, maxPages       uint64
	categoryInverted, categoryMask, categoryAnyofMask, returnMask uint64
}

// pageRegion is struct page_region.
type pageRegion struct {
	start, end, categories uint64
}

// scanUnsupported is set once the kernel refuses PAGEMAP_SCAN.
var scanUnsupported atomic.Bool

// writtenRuns returns the runs of b's pages that hold bytes other than the
// file's (anonymous: written since mapping, or swapped), as byte offsets
// into b, with ok false when the kernel cannot say (no PAGEMAP_SCAN) or
// there are more than max runs.
func writtenRuns(b []byte, max int) (runs [][2]int, ok bool) {
	if scanUnsupported.Load() || len(b) == 0 {
		return nil, false
	}
	pagemapOnce.Do(func() { pagemapFile, pagemapErr = os.Open("/proc/self/pagemap") })
	if pagemapErr != nil {
		return nil, false
	}
	vec := make([]pageRegion, max)
	base := uint64(uintptr(unsafe.Pointer(&b[0])))
	arg := pmScanArg{
		size:  uint64(unsafe.Sizeof(pmScanArg{})),
		start: base, end: base + uint64(len(b)),
		vec: uint64(uintptr(unsafe.Pointer(&vec[0]))), vecLen: uint64(max),
		// Not the file's page, and present or swapped.
		categoryInverted: pageIsFile, categoryMask: pageIsFile,
		categoryAnyofMask: pageIsPresent | pageIsSwapped,
		returnMask:        pageIsFile | pageIsPresent | pageIsSwapped,
	}
	n, _, errno := unix.Syscall(unix.SYS_IOCTL, pagemapFile.Fd(), pagemapScan, uintptr(unsafe.Pointer(&arg)))
	if errno != 0 {
		switch errno {
		case unix.ENOTTY, unix.EINVAL, unix.EPERM, unix.ENOSYS, unix.EOPNOTSUPP:
			scanUnsupported.Store(true) // an old kernel, or a filter: pagemap it is
		}
		return nil, false
	}
	if arg.walkEnd < arg.end {
		return nil, false // more runs than vec holds
	}
	runs = make([][2]int, n)
	for i := range runs {
		runs[i] = [2]int{int(vec[i].start - base), int(vec[i].end - base)}
	}
	return runs, true
}
