package inventory

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/moatfn/moat/internal/testwasm"
)

// buildGuest builds testdata/NAME, a Go module of its own, for wasip1.
func buildGuest(tb testing.TB, name string) []byte {
	tb.Helper()
	dir, err := filepath.Abs(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	b, err := os.ReadFile(testwasm.BuildDir(tb, dir))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// runtimeStdlib is the standard library version of the running toolchain.
func runtimeStdlib(tb testing.TB) string {
	tb.Helper()
	v, ok := stdlibVersion(runtime.Version())
	if !ok {
		tb.Skipf("toolchain %s has no release version", runtime.Version())
	}
	if want := strings.TrimPrefix(strings.Fields(runtime.Version())[0], "go"); strings.Count(want, ".") == 2 && v != want {
		tb.Fatalf("stdlibVersion(%q) = %q, want %q", runtime.Version(), v, want)
	}
	return v
}

func TestFromWasmGuests(t *testing.T) {
	tests := []struct{ guest, text string }{
		{"vulnerable", "v0.3.5"},
		{"fixed", "v0.43.0"},
	}
	for _, tt := range tests {
		t.Run(tt.guest, func(t *testing.T) {
			inv, err := FromWasm(buildGuest(t, tt.guest))
			if err != nil {
				t.Fatalf("FromWasm(%s): %v", tt.guest, err)
			}
			want := &Inventory{
				GoVersion: runtime.Version(),
				Main:      "example.com/moat-guests/" + tt.guest,
				Components: []Component{
					{Ecosystem: "Go", Name: "golang.org/x/text", Version: tt.text, Source: "go build info"},
					{Ecosystem: "Go", Name: "stdlib", Version: runtimeStdlib(t), Source: "go build info"},
				},
			}
			if !reflect.DeepEqual(inv, want) {
				t.Errorf("FromWasm(%s) = %+v, want %+v", tt.guest, inv, want)
			}
		})
	}
}

// TestGuestBuildVersion checks that a real module's version comes from
// runtime.buildVersion in the data, found through its string header, and
// not only from the producers section.
func TestGuestBuildVersion(t *testing.T) {
	m, err := parseWasm(buildGuest(t, "vulnerable"))
	if err != nil {
		t.Fatal(err)
	}
	mem := newMemory(m.segments)
	infos := findModinfo(m.segments)
	versions := findVersions(mem)
	refs := mem.stringHeaders(infos, versions)
	if got := pickVersion(mem, versions, refs, ""); got != runtime.Version() {
		t.Errorf("version from the data = %q, want %q", got, runtime.Version())
	}
	if len(infos) != 1 || !slices.Contains(refs[infos[0].addr], uint64(infos[0].n)) {
		t.Errorf("modinfo candidates = %+v, want one that runtime.modinfo points at", infos)
	}
	if len(m.segments) < 2 {
		t.Errorf("a Go module has %d data segments, want many", len(m.segments))
	}
}

// TestGuestsAgainstOSV checks that the guests are what their names say,
// against the advisories the vulndb tests use.
func TestGuestsAgainstOSV(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "vulndb", "testdata", "osv", "Go", "*.json"))
	if err != nil || len(files) == 0 {
		t.Skip("no OSV records beside this package")
	}
	var fixes []string // fixed versions of golang.org/x/text advisories
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var rec struct {
			Affected []struct {
				Package struct{ Name string }
				Ranges  []struct{ Events []map[string]string }
			}
		}
		if err := json.Unmarshal(b, &rec); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, a := range rec.Affected {
			if a.Package.Name != "golang.org/x/text" {
				continue
			}
			for _, r := range a.Ranges {
				for _, e := range r.Events {
					if v := e["fixed"]; v != "" {
						fixes = append(fixes, "v"+v)
					}
				}
			}
		}
	}
	if len(fixes) == 0 {
		t.Skip("no golang.org/x/text advisories")
	}
	version := func(guest string) string {
		inv, err := FromWasm(buildGuest(t, guest))
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range inv.Components {
			if c.Name == "golang.org/x/text" {
				return c.Version
			}
		}
		t.Fatalf("%s: no golang.org/x/text in %v", guest, inv.Components)
		return ""
	}
	vuln, fixed := version("vulnerable"), version("fixed")
	affected := 0
	for _, fix := range fixes {
		if semverLess(vuln, fix) {
			affected++
		}
		if semverLess(fixed, fix) {
			t.Errorf("fixed guest's golang.org/x/text %s is older than the fix %s", fixed, fix)
		}
	}
	if affected == 0 {
		t.Errorf("vulnerable guest's golang.org/x/text %s is affected by none of %v", vuln, fixes)
	}
}

// semverLess compares vMAJOR.MINOR.PATCH versions.
func semverLess(a, b string) bool {
	pa := strings.Split(strings.TrimPrefix(a, "v"), ".")
	pb := strings.Split(strings.TrimPrefix(b, "v"), ".")
	for i := 0; i < 3; i++ {
		var x, y int
		if i < len(pa) {
			x, _ = strconv.Atoi(pa[i])
		}
		if i < len(pb) {
			y, _ = strconv.Atoi(pb[i])
		}
		if x != y {
			return x < y
		}
	}
	return false
}

func TestFromWasmNotGo(t *testing.T) {
	tests := map[string][]byte{
		"MinimalCGI":    testwasm.MinimalCGI(),
		"NoStart":       testwasm.NoStart(),
		"Trap":          testwasm.Trap(),
		"header only":   []byte("\x00asm\x01\x00\x00\x00"),
		"go1 in a text": testwasm.Module(testwasm.Section(11, testwasm.Vec(testwasm.ActiveData(16, []byte("built with go1.22.3"))))),
	}
	for name, wasm := range tests {
		inv, err := FromWasm(wasm)
		if err != nil {
			t.Errorf("FromWasm(%s): %v", name, err)
			continue
		}
		if !reflect.DeepEqual(inv, &Inventory{}) {
			t.Errorf("FromWasm(%s) = %+v, want an empty inventory", name, inv)
		}
	}
}

// Hand-made Go-like modules, laid out as the Go linker lays them out.

const (
	verAddr  = 0x1000 // its low byte is zero, so a pointer to it starts with a zero the linker drops
	infoAddr = 0x2010
	hdrAddr  = 0x3000
)

// uleb encodes v as unsigned LEB128, which is what binary.AppendUvarint writes.
func uleb(v uint64) []byte { return binary.AppendUvarint(nil, v) }

func wname(s string) []byte { return append(uleb(uint64(len(s))), s...) }

// linkerSegments splits data at addr into active segments, leaving out
// runs of eight or more zeros as the Go linker does.
func linkerSegments(addr uint32, data []byte) [][]byte {
	var segs [][]byte
	for len(data) > 0 {
		for len(data) > 0 && data[0] == 0 {
			data, addr = data[1:], addr+1
		}
		end := 0
		for end < len(data) {
			if data[end] != 0 {
				end++
				continue
			}
			z := end
			for z < len(data) && data[z] == 0 {
				z++
			}
			if z-end >= 8 || z == len(data) {
				break
			}
			end = z
		}
		if end > 0 {
			segs = append(segs, testwasm.ActiveData(int32(addr), data[:end]))
		}
		data, addr = data[end:], addr+uint32(end)
	}
	return segs
}

// stringHeader returns a Go string header: pointer, then length.
func stringHeader(ptr, n uint64) []byte {
	b := binary.LittleEndian.AppendUint64(nil, ptr)
	return binary.LittleEndian.AppendUint64(b, n)
}

func producers(version string) []byte {
	body := append(wname("producers"), uleb(2)...)
	body = append(body, wname("language")...)
	body = append(body, uleb(1)...)
	body = append(body, wname("Go")...)
	body = append(body, wname(version)...)
	body = append(body, wname("processed-by")...)
	body = append(body, uleb(1)...)
	body = append(body, wname("Go cmd/compile")...)
	body = append(body, wname(version)...)
	return testwasm.Section(0, body)
}

// goModule describes a hand-made module.
type goModule struct {
	version   string // placed at verAddr, followed by other string bytes
	header    bool   // a string header points at the version and the modinfo
	modinfo   string // text without sentinels; "" for none
	passive   bool   // the modinfo is in a passive segment
	producers string // a producers section naming Go at this version
}

func (g goModule) bytes() []byte {
	var segs [][]byte
	if g.version != "" {
		// Strings are stored back to back: what follows the version is
		// another string, here one that looks like a version too.
		segs = append(segs, testwasm.ActiveData(verAddr, []byte(g.version+"go1.99.1 is not it")))
	}
	info := infoStart + g.modinfo + infoEnd
	if g.modinfo != "" {
		if g.passive {
			segs = append(segs, append([]byte{0x01}, wname(info)...))
		} else {
			segs = append(segs, testwasm.ActiveData(infoAddr, []byte(info)))
		}
	}
	if g.header {
		// An empty string's header between the two is all zeros, so
		// the linker cuts the bytes around it into separate segments.
		h := stringHeader(verAddr, uint64(len(g.version)))
		h = append(h, stringHeader(0, 0)...)
		h = append(h, stringHeader(infoAddr, uint64(len(info)))...)
		segs = append(segs, linkerSegments(hdrAddr, h)...)
	}
	sections := [][]byte{testwasm.Section(11, testwasm.Vec(segs...))}
	if g.producers != "" {
		sections = append(sections, producers(g.producers))
	}
	return testwasm.Module(sections...)
}

const modinfoText = "path\texample.com/fn/cmd/fn\n" +
	"mod\texample.com/fn\tv1.4.0\th1:abc=\n" +
	"dep\tgithub.com/gorilla/websocket\tv1.4.0\th1:def=\n" +
	"dep\tgolang.org/x/net\tv0.0.0-20190404232315-eb5bcb51f2a3\n" +
	"=>\tgithub.com/fork/net\tv0.17.0\th1:ghi=\n" +
	"dep\tgolang.org/x/text\tv0.3.5\n" +
	"=>\t../text\t\t\n" +
	"build\t-buildmode=exe\n" +
	"build\tGOOS=wasip1\n"

func TestFromWasmCrafted(t *testing.T) {
	deps := []Component{
		{"Go", "example.com/fn", "v1.4.0", "go build info"},
		{"Go", "github.com/gorilla/websocket", "v1.4.0", "go build info"},
		{"Go", "golang.org/x/net", "v0.17.0", "go build info"},
		{"Go", "golang.org/x/text", "v0.3.5", "go build info"},
	}
	with := func(stdlib string) []Component {
		out := append([]Component(nil), deps...)
		if stdlib != "" {
			out = append(out, Component{"Go", "stdlib", stdlib, "go build info"})
		}
		return out
	}
	tests := []struct {
		name string
		mod  goModule
		want *Inventory
	}{
		{
			name: "linker layout",
			mod:  goModule{version: "go1.22.3", header: true, modinfo: modinfoText},
			want: &Inventory{GoVersion: "go1.22.3", Main: "example.com/fn", Components: with("1.22.3")},
		},
		{
			name: "experiments",
			mod:  goModule{version: "go1.22.3 X:nocoverageredesign", header: true, modinfo: modinfoText},
			want: &Inventory{GoVersion: "go1.22.3 X:nocoverageredesign", Main: "example.com/fn", Components: with("1.22.3")},
		},
		{
			name: "go line wins",
			mod:  goModule{version: "go1.22.3", header: true, modinfo: "go\tgo1.23.1\n" + modinfoText, producers: "go1.21.0"},
			want: &Inventory{GoVersion: "go1.23.1", Main: "example.com/fn", Components: with("1.23.1")},
		},
		{
			name: "header beats producers",
			mod:  goModule{version: "go1.22.3", header: true, modinfo: modinfoText, producers: "go1.21.0"},
			want: &Inventory{GoVersion: "go1.22.3", Main: "example.com/fn", Components: with("1.22.3")},
		},
		{
			name: "producers",
			mod:  goModule{version: "go1.22.3", modinfo: modinfoText, producers: "go1.21rc2"},
			want: &Inventory{GoVersion: "go1.21rc2", Main: "example.com/fn", Components: with("1.21.0-rc.2")},
		},
		{
			name: "passive modinfo",
			mod:  goModule{version: "go1.22.3", header: true, modinfo: modinfoText, passive: true},
			want: &Inventory{GoVersion: "go1.22.3", Main: "example.com/fn", Components: with("1.22.3")},
		},
		{
			name: "unreferenced version",
			mod:  goModule{version: "go1.22.3", modinfo: modinfoText},
			want: &Inventory{Main: "example.com/fn", Components: with("")},
		},
		{
			name: "producers but no modinfo",
			mod:  goModule{producers: "go1.21.4"},
			want: &Inventory{GoVersion: "go1.21.4", Components: []Component{{"Go", "stdlib", "1.21.4", "go build info"}}},
		},
		{
			name: "devel toolchain",
			mod:  goModule{version: "devel go1.27-4f1a3b2 Tue Mar 3 10:00:00 2026 +0000", header: true, modinfo: modinfoText},
			want: &Inventory{GoVersion: "devel go1.27-4f1a3b2 Tue Mar 3 10:00:00 2026 +0000", Main: "example.com/fn", Components: with("")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv, err := FromWasm(tt.mod.bytes())
			if err != nil {
				t.Fatalf("FromWasm: %v", err)
			}
			if !reflect.DeepEqual(inv, tt.want) {
				t.Errorf("FromWasm = %+v\nwant %+v", inv, tt.want)
			}
		})
	}
}

// TestFromWasmSplitHeader checks that the hand-made layout does what it is
// there for: the string header is cut across segments.
func TestFromWasmSplitHeader(t *testing.T) {
	h := append(stringHeader(verAddr, 8), stringHeader(0, 0)...)
	h = append(h, stringHeader(infoAddr, 100)...)
	if n := len(linkerSegments(hdrAddr, h)); n < 2 {
		t.Fatalf("linkerSegments made %d segments of two string headers, want them cut", n)
	}
}

func TestFromWasmPicksReferencedModinfo(t *testing.T) {
	decoy := infoStart + "path\tdecoy\nmod\tdecoy\t(devel)\t\n" + infoEnd
	real := infoStart + modinfoText + infoEnd
	h := append(stringHeader(verAddr, 8), stringHeader(0, 0)...)
	h = append(h, stringHeader(infoAddr, uint64(len(real)))...)
	segs := [][]byte{
		testwasm.ActiveData(0x800, []byte(decoy)),
		testwasm.ActiveData(verAddr, []byte("go1.22.3")),
		testwasm.ActiveData(infoAddr, []byte(real)),
	}
	segs = append(segs, linkerSegments(hdrAddr, h)...)
	inv, err := FromWasm(testwasm.Module(testwasm.Section(11, testwasm.Vec(segs...))))
	if err != nil {
		t.Fatal(err)
	}
	if inv.Main != "example.com/fn" {
		t.Errorf("FromWasm(two modinfo texts).Main = %q, want the referenced one's, example.com/fn", inv.Main)
	}
}

func TestFromWasmMalformed(t *testing.T) {
	data := func(body ...byte) []byte {
		return testwasm.Module(testwasm.Section(11, body))
	}
	tests := []struct {
		name string
		wasm []byte
		want error
	}{
		{"empty", nil, ErrMalformed},
		{"not wasm", []byte("#!/bin/sh\necho hello\n"), ErrMalformed},
		{"component", []byte("\x00asm\x0d\x00\x01\x00"), ErrUnsupported},
		{"no section size", []byte("\x00asm\x01\x00\x00\x00\x0b"), ErrMalformed},
		{"section past end", []byte("\x00asm\x01\x00\x00\x00\x0b\x64\x01\x00"), ErrMalformed},
		{"size overflows", []byte("\x00asm\x01\x00\x00\x00\x0b\xff\xff\xff\xff\x7f"), ErrMalformed},
		{"size too long", []byte("\x00asm\x01\x00\x00\x00\x0b\x80\x80\x80\x80\x80\x00"), ErrMalformed},
		{"unknown section", testwasm.Module(testwasm.Section(42, nil)), ErrMalformed},
		{"two data sections", testwasm.Module(testwasm.Section(11, []byte{0}), testwasm.Section(11, []byte{0})), ErrMalformed},
		{"segment past end", data(1, 0, 0x41, 0, 0x0b, 0x80, 0x08, 'x'), ErrMalformed},
		{"unknown flags", data(1, 7), ErrMalformed},
		{"bad offset opcode", data(1, 0, 0x20, 0, 0x0b, 0), ErrMalformed},
		{"offset never ends", data(1, 0, 0x41, 0), ErrMalformed},
		{"trailing bytes", data(0, 0xaa), ErrMalformed},
		{"too many segments", data(0xa1, 0x8d, 0x06), ErrTooLarge},
		{"huge modinfo", testwasm.Module(testwasm.Section(11, testwasm.Vec(
			testwasm.ActiveData(16, []byte(infoStart+strings.Repeat("dep\ta\tv1.0.0\n", 300_000)+infoEnd))))), ErrTooLarge},
		{"modinfo does not parse", testwasm.Module(testwasm.Section(11, testwasm.Vec(
			testwasm.ActiveData(16, []byte(infoStart+"dep\tonly-a-path\n"+infoEnd))))), ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv, err := FromWasm(tt.wasm)
			if !errors.Is(err, tt.want) {
				t.Fatalf("FromWasm = %+v, %v; want an error wrapping %v", inv, err, tt.want)
			}
			var e *Error
			if !errors.As(err, &e) || e.File != "wasm module" {
				t.Errorf("FromWasm error = %#v, want an *Error for the wasm module", err)
			}
		})
	}
}

func TestFromWasmTruncated(t *testing.T) {
	wasm := buildGuest(t, "vulnerable")
	for _, n := range []int{4, 9, 10, 11, len(wasm) / 3, len(wasm) / 2, len(wasm) - 100, len(wasm) - 1} {
		if _, err := FromWasm(wasm[:n]); err == nil {
			t.Errorf("FromWasm(first %d of %d bytes) = nil error, want one", n, len(wasm))
		}
	}
	// Flipped bytes may or may not make a module invalid; they must not
	// make FromWasm panic.
	rng := rand.New(rand.NewPCG(1, 2))
	b := bytes.Clone(wasm)
	for range 50 {
		i := rng.IntN(len(b))
		b[i] ^= byte(1 + rng.IntN(255))
		_, _ = FromWasm(b)
	}
}

func TestMemoryRead(t *testing.T) {
	m := newMemory([]segment{
		{addr: 0x20, placed: true, data: []byte("cd")},
		{addr: 0x10, placed: true, data: []byte("ab")},
		{addr: 0x11, placed: true, data: []byte("XYZ")}, // overlaps: trimmed to "YZ" at 0x12
		{addr: 0x30, data: []byte("unplaced")},
	})
	got := make([]byte, 0x14)
	m.read(0x10, got)
	want := append([]byte("abYZ"), make([]byte, 0x10-4)...)
	want = append(want, "cd\x00\x00"...)
	if !bytes.Equal(got, want) {
		t.Errorf("read(0x10, %d) = %q, want %q", len(got), got, want)
	}
	if v := m.u64(^uint64(0) - 3); v != 0 {
		t.Errorf("u64(near the top) = %#x, want 0", v)
	}
}

func TestStdlibVersion(t *testing.T) {
	tests := []struct{ in, want string }{
		{"go1.26.8", "1.26.8"},
		{"go1.20", "1.20.0"},
		{"go1.21rc2", "1.21.0-rc.2"},
		{"go1.19beta1", "1.19.0-beta.1"},
		{"go1.22.3 X:nocoverageredesign", "1.22.3"},
		{"devel go1.27-4f1a3b2 Tue Mar 3 10:00:00 2026 +0000", ""},
		{"go1.26.8x", ""},
		{"go2", ""},
		{"", ""},
	}
	for _, tt := range tests {
		got, ok := stdlibVersion(tt.in)
		if got != tt.want || ok != (tt.want != "") {
			t.Errorf("stdlibVersion(%q) = %q, %v; want %q", tt.in, got, ok, tt.want)
		}
	}
}
