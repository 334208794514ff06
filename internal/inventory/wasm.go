package inventory

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"runtime/debug"
	"slices"
	"strings"
)

// How FromWasm finds the build info.
//
// debug/buildinfo does not read wasm, and a wasip1 module has no
// "\xff Go buildinf:" header either: the linker's wasm backend
// (cmd/link/internal/wasm, asmb) writes a fixed list of sections to the data
// section (rodata, typelinks, itablinks, module data, pclntab, noptrdata,
// data), and .go.buildinfo is not among them. What does reach
// the module is the runtime's own copy of the build info: the string
// runtime.modinfo, which cmd/go wraps in two 16-byte sentinels
// (cmd/go/internal/modload: infoStart, infoEnd; runtime/debug.ReadBuildInfo
// strips them), and the string runtime.buildVersion, "go1.26.8". Both are
// plain bytes in the data section, so FromWasm walks the sections, takes the
// data segments, and looks only there.
//
// The linker omits runs of eight or more zero bytes and starts a new
// segment after them, so a Go module has tens of thousands of segments and
// a value that holds zeros (a string header: pointer, then length, both
// little-endian uint64) is cut across segments. FromWasm therefore places
// the active segments at their offsets in a sparse image of linear memory,
// where a gap reads as zeros, as it does in the instance.
//
// The modinfo text holds no zero bytes, so it lies within one segment. The
// version string is found the same way, but "go1." may appear in other
// strings, and strings are stored back to back with nothing to end them. So
// a candidate counts only when some 8-byte-aligned word pair in memory is a
// Go string header pointing at it; that header's length says where the
// version ends. The modinfo text's own "go" line, if it has one, wins; the
// "producers" custom section that the Go linker writes is the fallback. A
// "go1." string that nothing points at is not trusted: without its length
// it cannot be told from the start of a longer string, so a module with
// neither has no GoVersion and no stdlib component, rather than a guessed
// one.

const (
	// infoStart and infoEnd bracket runtime.modinfo; see
	// cmd/go/internal/modload/build.go.
	infoStart = "\x30\x77\xaf\x0c\x92\x74\x08\x02\x41\xe1\xc1\x07\xe6\xd6\x18\xe6"
	infoEnd   = "\xf9\x32\x43\x31\x86\x18\x20\x72\x00\x82\x42\x10\x41\x16\xd8\xf2"

	wasmFile = "wasm module"

	// maxSegments is the most data segments a module may have; the Go
	// linker emits at most this many, since runtimes refuse more.
	maxSegments = 100_000
	// maxCandidates bounds how many modinfo or version candidates are
	// considered.
	maxCandidates = 256
	// maxVersionLen bounds a Go version string: "go1.26.8 X:..." or
	// "devel go1.27-abcdef Tue Jan 2 15:04:05 2026 +0000".
	maxVersionLen = 128

	// maxModinfo bounds the build info text.
	maxModinfo = 4 << 20

	goBuildInfo = "go build info"
)

// segment is one data segment. A placed segment is active in memory 0 at a
// constant offset; the others (passive, or placed by a global) have no
// known address.
type segment struct {
	addr       uint64
	placed     bool
	data       []byte
	fileOffset int // where data begins in the module file
}

func (s segment) end() uint64 { return s.addr + uint64(len(s.data)) }

// module is what FromWasm needs from a parsed wasm binary.
type module struct {
	segments  []segment
	producers string // the Go version the producers section names, if any
	goLang    bool   // the producers section names Go as a language
}

// FromWasm reads the Go build info of a WebAssembly module: the toolchain,
// the main module and the modules linked in, and the standard library as
// {Go, stdlib, 1.26.8}. A module that is not Go (no build info, no Go
// producer) yields an empty Inventory, not an error. A module that is not
// well-formed wasm, or whose build info does not parse, yields an *Error.
func FromWasm(wasm []byte) (*Inventory, error) {
	m, err := parseWasm(wasm)
	if err != nil {
		return nil, err
	}
	mem := newMemory(m.segments)

	infos := findModinfo(m.segments)
	versions := findVersions(mem)
	refs := mem.stringHeaders(infos, versions)

	inv := &Inventory{}
	info, found := pickModinfo(m.segments, infos, refs)
	if !found && !m.goLang {
		return inv, nil
	}
	var bi *debug.BuildInfo
	if found {
		// A real one is some kilobytes; ParseBuildInfo keeps every line.
		if len(info) > maxModinfo || strings.Count(info, "\n") > MaxComponents+1000 {
			return nil, tooLarge(wasmFile, 0, "go build info of %d bytes and %d lines", len(info), strings.Count(info, "\n"))
		}
		bi, err = debug.ParseBuildInfo(info)
		if err != nil {
			return nil, &Error{File: wasmFile, Err: fmt.Errorf("%w: go build info: %w", ErrMalformed, err)}
		}
	}

	inv.GoVersion = cmpOrString(
		goLine(info),
		biGoVersion(bi),
		pickVersion(mem, versions, refs, m.producers),
		m.producers,
	)
	if err := fromBuildInfo(inv, bi, wasmFile); err != nil {
		return nil, err
	}
	return inv, nil
}

// FromBuildInfo is what a Go binary is made of, from its build info (for
// the node's own: debug.ReadBuildInfo).
func FromBuildInfo(bi *debug.BuildInfo) (*Inventory, error) {
	inv := &Inventory{GoVersion: biGoVersion(bi)}
	if err := fromBuildInfo(inv, bi, "build info"); err != nil {
		return nil, err
	}
	return inv, nil
}

// fromBuildInfo fills inv's components: the standard library of
// inv.GoVersion, and bi's main module and dependencies.
func fromBuildInfo(inv *Inventory, bi *debug.BuildInfo, file string) error {
	c := &collector{file: file, source: goBuildInfo}
	if v, ok := stdlibVersion(inv.GoVersion); ok {
		if err := c.add("Go", "stdlib", v); err != nil {
			return err
		}
	}
	if bi != nil {
		inv.Main = cmpOrString(bi.Main.Path, bi.Path)
		if bi.Main.Path != "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			if err := c.add("Go", bi.Main.Path, bi.Main.Version); err != nil {
				return err
			}
		}
		for _, d := range bi.Deps {
			if d == nil || d.Path == "" {
				continue
			}
			v := d.Version
			if d.Replace != nil && d.Replace.Version != "" {
				v = d.Replace.Version
			}
			if err := c.add("Go", d.Path, v); err != nil {
				return err
			}
		}
	}
	inv.Components = normalize(c.out)
	return nil
}

// cmpOrString returns the first non-empty string.
func cmpOrString(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// biGoVersion returns bi.GoVersion, or "" for a nil bi.
func biGoVersion(bi *debug.BuildInfo) string {
	if bi == nil {
		return ""
	}
	return bi.GoVersion
}

// goLine returns the version on a "go\t" line of modinfo text, the line
// BuildInfo.String writes first and the linker's text leaves out.
func goLine(info string) string {
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(line, "go\t"); ok {
			v = strings.TrimRight(v, "\r\n")
			if isGoVersion(v) {
				return v
			}
		}
	}
	return ""
}

// wasmReader reads the binary encoding of a wasm module.
type wasmReader struct {
	b   []byte
	off int
	at  int // offset of b within the module, for errors
}

func (r *wasmReader) done() bool { return r.off >= len(r.b) }

func (r *wasmReader) errorf(format string, args ...any) error {
	return malformed(wasmFile, 0, "at byte %d: %s", r.at+r.off, fmt.Sprintf(format, args...))
}

func (r *wasmReader) byte() (byte, error) {
	if r.off >= len(r.b) {
		return 0, r.errorf("unexpected end")
	}
	c := r.b[r.off]
	r.off++
	return c, nil
}

// u32 reads an unsigned LEB128 of at most 32 bits.
func (r *wasmReader) u32() (uint32, error) {
	var v uint32
	for i := 0; i < 5; i++ {
		c, err := r.byte()
		if err != nil {
			return 0, err
		}
		if i == 4 && c > 0x0f {
			return 0, r.errorf("integer overflows 32 bits")
		}
		v |= uint32(c&0x7f) << (7 * i)
		if c < 0x80 {
			return v, nil
		}
	}
	return 0, r.errorf("integer too long")
}

// sleb reads a signed LEB128 of at most bits bits.
func (r *wasmReader) sleb(bits int) (int64, error) {
	var v int64
	shift := 0
	for {
		c, err := r.byte()
		if err != nil {
			return 0, err
		}
		v |= int64(c&0x7f) << shift
		shift += 7
		if c < 0x80 {
			if shift < 64 && c&0x40 != 0 {
				v |= -1 << shift
			}
			return v, nil
		}
		if shift >= bits {
			return 0, r.errorf("integer too long")
		}
	}
}

// bytes reads n bytes without copying.
func (r *wasmReader) bytes(n uint32) ([]byte, error) {
	if uint64(n) > uint64(len(r.b)-r.off) {
		return nil, r.errorf("length %d runs past the end", n)
	}
	b := r.b[r.off : r.off+int(n)]
	r.off += int(n)
	return b, nil
}

// vec reads a length-prefixed byte vector.
func (r *wasmReader) vec() ([]byte, error) {
	n, err := r.u32()
	if err != nil {
		return nil, err
	}
	return r.bytes(n)
}

// parseWasm walks the sections of a core wasm module and returns its data
// segments and what its producers section says.
func parseWasm(b []byte) (*module, error) {
	if len(b) < 8 || string(b[:4]) != "\x00asm" {
		return nil, malformed(wasmFile, 0, "not a WebAssembly module")
	}
	if v := binary.LittleEndian.Uint32(b[4:8]); v != 1 {
		return nil, &Error{File: wasmFile, Err: fmt.Errorf("%w: WebAssembly binary version %#x (a core module is 1)", ErrUnsupported, v)}
	}
	m := &module{}
	r := &wasmReader{b: b, off: 8}
	seenData := false
	for !r.done() {
		start := r.off
		id, err := r.byte()
		if err != nil {
			return nil, err
		}
		body, err := r.vec()
		if err != nil {
			return nil, err
		}
		at := r.off - len(body)
		switch {
		case id == 0:
			sr := &wasmReader{b: body, at: at}
			name, err := sr.vec()
			if err != nil {
				return nil, err
			}
			if string(name) == "producers" {
				// A custom section may be malformed without making the
				// module so; a bad one is ignored.
				m.goLang, m.producers = parseProducers(&wasmReader{b: body[sr.off:], at: at + sr.off})
			}
		case id == 11:
			if seenData {
				return nil, malformed(wasmFile, 0, "at byte %d: a second data section", start)
			}
			seenData = true
			m.segments, err = parseData(&wasmReader{b: body, at: at})
			if err != nil {
				return nil, err
			}
		case id <= 13:
			// type, import, function, table, memory, global, export,
			// start, element, code, data count, tag: not needed.
		default:
			return nil, malformed(wasmFile, 0, "at byte %d: unknown section id %d", start, id)
		}
	}
	return m, nil
}

// parseData reads the data section.
func parseData(r *wasmReader) ([]segment, error) {
	n, err := r.u32()
	if err != nil {
		return nil, err
	}
	if n > maxSegments {
		return nil, tooLarge(wasmFile, 0, "%d data segments, more than %d", n, maxSegments)
	}
	var segs []segment
	for i := uint32(0); i < n; i++ {
		flags, err := r.u32()
		if err != nil {
			return nil, err
		}
		var s segment
		switch flags {
		case 0: // active, memory 0
			s.addr, s.placed, err = constExpr(r)
		case 1: // passive
		case 2: // active, explicit memory
			var mem uint32
			if mem, err = r.u32(); err == nil {
				s.addr, s.placed, err = constExpr(r)
				s.placed = s.placed && mem == 0
			}
		default:
			return nil, r.errorf("data segment %d has unknown flags %d", i, flags)
		}
		if err != nil {
			return nil, err
		}
		if s.data, err = r.vec(); err != nil {
			return nil, err
		}
		s.fileOffset = r.at + r.off - len(s.data)
		segs = append(segs, s)
	}
	if !r.done() {
		return nil, r.errorf("%d bytes after the last data segment", len(r.b)-r.off)
	}
	return segs, nil
}

// constExpr reads a segment's offset expression. It reports the address
// when the expression is a single constant.
func constExpr(r *wasmReader) (addr uint64, placed bool, err error) {
	var consts, ops int
	for {
		op, err := r.byte()
		if err != nil {
			return 0, false, err
		}
		switch op {
		case 0x0b: // end
			return addr, consts == 1 && ops == 1, nil
		case 0x41: // i32.const
			v, err := r.sleb(32)
			if err != nil {
				return 0, false, err
			}
			addr = uint64(uint32(v))
			consts++
		case 0x42: // i64.const (memory64)
			v, err := r.sleb(64)
			if err != nil {
				return 0, false, err
			}
			addr = uint64(v)
			consts++
		case 0x23: // global.get
			if _, err := r.u32(); err != nil {
				return 0, false, err
			}
		case 0x6a, 0x6b, 0x6c, 0x7c, 0x7d, 0x7e: // extended constant arithmetic
		default:
			return 0, false, r.errorf("opcode %#x in a data segment offset", op)
		}
		ops++
	}
}

// parseProducers reads the producers custom section and reports whether it
// names Go as a language, and with what version.
func parseProducers(r *wasmReader) (goLang bool, version string) {
	fields, err := r.u32()
	if err != nil {
		return false, ""
	}
	for range fields {
		field, err := r.vec()
		if err != nil {
			return false, ""
		}
		n, err := r.u32()
		if err != nil {
			return false, ""
		}
		for range n {
			name, err := r.vec()
			if err != nil {
				return false, ""
			}
			v, err := r.vec()
			if err != nil {
				return false, ""
			}
			if string(field) == "language" && string(name) == "Go" {
				goLang = true
				if isGoVersion(string(v)) {
					version = string(v)
				}
			}
		}
	}
	return goLang, version
}

// memory is a sparse image of linear memory: the placed segments, sorted
// and disjoint. Bytes between them read as zeros.
type memory []segment

// newMemory places the segments. Where crafted segments overlap, the one
// that starts first keeps the bytes; a Go linker never overlaps them.
func newMemory(segs []segment) memory {
	var m memory
	for _, s := range segs {
		if s.placed && len(s.data) > 0 && s.end() > s.addr {
			m = append(m, s)
		}
	}
	slices.SortStableFunc(m, func(a, b segment) int {
		switch {
		case a.addr < b.addr:
			return -1
		case a.addr > b.addr:
			return 1
		}
		return 0
	})
	out := m[:0]
	var end uint64
	for i, s := range m {
		if i > 0 && s.addr < end {
			if s.end() <= end {
				continue
			}
			s.data = s.data[end-s.addr:]
			s.addr = end
		}
		out = append(out, s)
		end = s.end()
	}
	return out
}

// read fills p with memory from addr.
func (m memory) read(addr uint64, p []byte) {
	clear(p)
	end := addr + uint64(len(p))
	if end < addr {
		end = ^uint64(0)
	}
	i, _ := slices.BinarySearchFunc(m, addr, func(s segment, a uint64) int {
		if s.end() <= a {
			return -1
		}
		return 1
	})
	for ; i < len(m) && m[i].addr < end; i++ {
		s := m[i]
		lo := max(s.addr, addr)
		hi := min(s.end(), end)
		copy(p[lo-addr:hi-addr], s.data[lo-s.addr:hi-s.addr])
	}
}

// u64 reads a little-endian uint64 at addr.
func (m memory) u64(addr uint64) uint64 {
	var b [8]byte
	m.read(addr, b[:])
	return binary.LittleEndian.Uint64(b[:])
}

// candidate is a string found in a segment: modinfo text, or the start
// of what may be a Go version.
type candidate struct {
	seg    int    // index in the segments (modinfo) or the memory (versions)
	off    int    // offset of the string in the segment
	addr   uint64 // its address, when the segment is placed
	placed bool
	n      int // full length of the string, sentinels included (modinfo)
}

// findModinfo returns the sentinel-bracketed strings in all segments.
func findModinfo(segs []segment) []candidate {
	var out []candidate
	for i, s := range segs {
		for off := 0; len(out) < maxCandidates; {
			j := bytes.Index(s.data[off:], []byte(infoStart))
			if j < 0 {
				break
			}
			start := off + j
			k := bytes.Index(s.data[start+len(infoStart):], []byte(infoEnd))
			if k < 0 {
				break
			}
			n := len(infoStart) + k + len(infoEnd)
			out = append(out, candidate{seg: i, off: start, addr: s.addr + uint64(start), placed: s.placed, n: n})
			off = start + 1
		}
	}
	return out
}

// text returns a modinfo candidate's text without its sentinels.
func (c candidate) text(segs []segment) string {
	d := segs[c.seg].data[c.off : c.off+c.n]
	return string(d[len(infoStart) : len(d)-len(infoEnd)])
}

// findVersions returns where "go1." (or "devel go1.") starts in placed
// memory.
func findVersions(m memory) []candidate {
	var out []candidate
	for i, s := range m {
		for off := 0; len(out) < maxCandidates; {
			j := bytes.Index(s.data[off:], []byte("go1."))
			if j < 0 {
				break
			}
			start := off + j
			if start >= 6 && string(s.data[start-6:start]) == "devel " {
				start -= 6
			}
			out = append(out, candidate{seg: i, off: start, addr: s.addr + uint64(start), placed: true})
			off = off + j + 1
		}
	}
	return out
}

// stringHeaders scans memory once for Go string headers (8-byte-aligned
// pointer, then length) that point at a candidate, and returns the lengths
// seen for each address.
func (m memory) stringHeaders(infos, versions []candidate) map[uint64][]uint64 {
	want := make(map[uint64]bool)
	for _, c := range infos {
		if c.placed {
			want[c.addr] = true
		}
	}
	for _, c := range versions {
		want[c.addr] = true
	}
	refs := make(map[uint64][]uint64)
	if len(want) == 0 {
		return refs
	}
	var last uint64 // the next aligned address not yet scanned
	for _, s := range m {
		p := max(s.addr&^7, last)
		for ; p < s.end() && p >= s.addr&^7; p += 8 {
			var v uint64
			if p >= s.addr && p+8 <= s.end() {
				v = binary.LittleEndian.Uint64(s.data[p-s.addr:])
			} else {
				v = m.u64(p)
			}
			if want[v] && len(refs[v]) < maxCandidates {
				refs[v] = append(refs[v], m.u64(p+8))
			}
		}
		last = p
	}
	return refs
}

// pickModinfo chooses the modinfo text: the one runtime.modinfo's string
// header points at, or else the first found.
func pickModinfo(segs []segment, infos []candidate, refs map[uint64][]uint64) (string, bool) {
	if len(infos) == 0 {
		return "", false
	}
	best := infos[0]
	for _, c := range infos {
		if c.placed && slices.Contains(refs[c.addr], uint64(c.n)) {
			best = c
			break
		}
	}
	return best.text(segs), true
}

// pickVersion returns the Go version string that a string header points
// at. Should there be several, it prefers the producers section's, then
// the most referenced, then the first found.
func pickVersion(m memory, cands []candidate, refs map[uint64][]uint64, producers string) string {
	count := make(map[string]int)
	var order []string
	for _, c := range cands {
		data := m[c.seg].data[c.off:]
		for _, n := range refs[c.addr] {
			if n == 0 || n > maxVersionLen || n > uint64(len(data)) {
				continue
			}
			v := string(data[:n])
			if !isGoVersion(v) {
				continue
			}
			if count[v] == 0 {
				order = append(order, v)
			}
			count[v]++
		}
	}
	if len(order) == 0 {
		return ""
	}
	if count[producers] > 0 {
		return producers
	}
	slices.SortStableFunc(order, func(a, b string) int { return count[b] - count[a] })
	return order[0]
}

// goRelease returns the release at the start of b, "go1.N", "go1.N.P",
// "go1.NrcK" or "go1.NbetaK".
func goRelease(b []byte) (string, bool) {
	if !bytes.HasPrefix(b, []byte("go1.")) {
		return "", false
	}
	i := len("go1.")
	digits := func() bool {
		j := i
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
		return i > j
	}
	if !digits() {
		return "", false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if !digits() {
			return "", false
		}
	} else if rest := b[i:]; bytes.HasPrefix(rest, []byte("rc")) || bytes.HasPrefix(rest, []byte("beta")) {
		i += 2
		if rest[0] == 'b' {
			i += 2
		}
		if !digits() {
			return "", false
		}
	}
	return string(b[:i]), true
}

// isGoVersion reports whether v looks like runtime.Version(): a release,
// maybe followed by " X:experiments", or a devel version.
func isGoVersion(v string) bool {
	if len(v) > maxVersionLen {
		return false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] > 0x7e {
			return false
		}
	}
	if strings.HasPrefix(v, "devel go1.") {
		return true
	}
	r, ok := goRelease([]byte(v))
	return ok && (len(r) == len(v) || v[len(r)] == ' ')
}

// stdlibVersion converts a toolchain version to the standard library's
// version as OSV writes it: go1.26.8 is 1.26.8, go1.20 is 1.20.0, go1.21rc2
// is 1.21.0-rc.2. A devel toolchain has none.
func stdlibVersion(goVersion string) (string, bool) {
	r, ok := goRelease([]byte(goVersion))
	if !ok || !isGoVersion(goVersion) {
		return "", false
	}
	v := strings.TrimPrefix(r, "go")
	pre := ""
	for _, kind := range []string{"rc", "beta"} {
		if base, n, ok := strings.Cut(v, kind); ok {
			v, pre = base, "-"+kind+"."+n
		}
	}
	if strings.Count(v, ".") == 1 {
		v += ".0"
	}
	return v + pre, true
}

// DataStrings calls fn with each run of at least min printable ASCII bytes
// in a WebAssembly module's data segments, and the run's offset in the
// module file: where a module's strings are. A module that does not parse
// has none.
func DataStrings(wasm []byte, min int, fn func(offset int, s []byte)) error {
	m, err := parseWasm(wasm)
	if err != nil {
		return err
	}
	for _, s := range m.segments {
		start := -1
		for i := 0; i <= len(s.data); i++ {
			if i < len(s.data) && s.data[i] >= 0x20 && s.data[i] < 0x7f {
				if start < 0 {
					start = i
				}
				continue
			}
			if start >= 0 && i-start >= min {
				fn(s.fileOffset+start, s.data[start:i])
			}
			start = -1
		}
	}
	return nil
}
