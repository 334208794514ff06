package sandbox

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// scanImage maps a file-backed private mapping of n pages, as an instance's
// memory is, and writes every stride-th page.
func scanImage(t testing.TB, n, stride int) []byte {
	t.Helper()
	page := os.Getpagesize()
	fd, err := unix.MemfdCreate("scan", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Ftruncate(fd, int64(n*page)); err != nil {
		t.Fatal(err)
	}
	b, err := unix.Mmap(fd, 0, n*page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(b) })
	for i := 0; i < n; i += 3 {
		_ = b[i*page] // read: stays the file's page
	}
	for i := 0; i < n; i += stride {
		b[i*page+7] = 1
	}
	return b
}

// TestWrittenRuns: the scan finds exactly the pages pagemap calls written.
func TestWrittenRuns(t *testing.T) {
	b := scanImage(t, 1400, 25)
	runs, ok := writtenRuns(b, 256)
	if !ok {
		t.Skip("no PAGEMAP_SCAN on this kernel")
	}
	page := os.Getpagesize()
	got := map[int]bool{}
	for _, r := range runs {
		for off := r[0]; off < r[1]; off += page {
			got[off/page] = true
		}
	}
	entries, err := pagemap(b)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range entries {
		if written(e) != got[i] {
			t.Fatalf("page %d: pagemap says written=%v, scan %v", i, written(e), got[i])
		}
	}
	if len(got) != 56 {
		t.Fatalf("%d pages written, want 56", len(got))
	}
	if _, ok := writtenRuns(b, 10); ok {
		t.Fatal("more runs than room reported complete")
	}
}

func BenchmarkPagemapRead(b *testing.B) {
	img := scanImage(b, 1400, 25)
	for b.Loop() {
		if _, err := pagemap(img); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPagemapScan(b *testing.B) {
	img := scanImage(b, 1400, 25)
	for b.Loop() {
		if _, ok := writtenRuns(img, 256); !ok {
			b.Skip("no PAGEMAP_SCAN")
		}
	}
}

// TestSnapshotWithoutPagemapScan: on a kernel without PAGEMAP_SCAN, restore
// reads pagemap, and state still does not carry over.
func TestSnapshotWithoutPagemapScan(t *testing.T) {
	was := scanUnsupported.Swap(true)
	defer scanUnsupported.Store(was)
	TestSnapshotStateDoesNotCarryOver(t)
	TestSnapshotRequest(t)
}
