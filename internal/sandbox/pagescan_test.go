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

// TestZeroTailStaysOutOfTheImage: trailing zero pages are not in the
// memfd, yet every memory the pool hands out reads the whole image, and a
// request's writes there, in the file's part and in the zeros past it, are
// undone by restore and by Free, whichever path restore takes.
func TestZeroTailStaysOutOfTheImage(t *testing.T) {
	page := os.Getpagesize()
	const pages, data = 800, 100 // 100 pages of data, 700 of zeros
	image := make([]byte, pages*page)
	for i := 0; i < data*page; i += 97 {
		image[i] = byte(i/97) | 1
	}
	for _, noScan := range []bool{false, true} {
		was := scanUnsupported.Swap(noScan)
		p, err := newCOWPool(image, 4)
		if err != nil {
			t.Fatal(err)
		}
		if p.image != data*page || p.size != pages*page {
			t.Fatalf("memfd holds %d bytes of %d, want %d of %d", p.image, p.size, data*page, pages*page)
		}
		var st unix.Stat_t
		if err := unix.Fstat(p.fd, &st); err != nil || st.Size != int64(data*page) {
			t.Fatalf("memfd size %d (%v)", st.Size, err)
		}
		for round := range 3 {
			m := p.Allocate(uint64(pages*page), uint64(pages*page+16*page)).(*cowMemory)
			buf := m.Reallocate(uint64(pages * page))
			if !bytesEqual(buf, image) {
				t.Fatalf("round %d: the memory is not the image", round)
			}
			for _, off := range []int{0, 5*page + 3, (data-1)*page + 1, data * page, (data+50)*page + 9, pages*page - 1} {
				buf[off] ^= 0xff
			}
			if round == 1 {
				for i := data * page; i < pages*page; i += page {
					buf[i] = 1 // more pages than restore copies back: it drops them all
				}
			}
			if !p.restore(m) || !bytesEqual(m.buf[:pages*page], image) {
				t.Fatalf("round %d, without scan %v: restore left the request's writes", round, noScan)
			}
			buf[(data+20)*page] = 7
			m.Free()
		}
		p.close()
		scanUnsupported.Store(was)
	}
}

func bytesEqual(a, b []byte) bool { return string(a) == string(b) }
