package sandbox

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"slices"
)

// Go's WebAssembly modules carry tens of thousands of small active data
// segments (62,758 in the hello example), and every fresh instance applies
// each one. mergeData rewrites the data section at deploy so that segments
// whose gaps are small become one, the gaps filled with the zeros linear
// memory starts with anyway. The result initialises memory byte for byte as
// the original does.

// maxGap is the largest run of zeros worth writing to save a segment.
const maxGap = 4096

const (
	sectionData      = 11
	sectionDataCount = 12
)

var errNotMergeable = errors.New("data section not mergeable")

type segment struct {
	offset uint32
	data   []byte
}

// mergeData returns wasm with its active data segments merged, or wasm
// itself when there is nothing to merge or the module is outside what it
// understands (passive segments, offsets that are not constants, overlaps).
// It never fails: a module it cannot read is left for the compiler to judge.
func mergeData(wasm []byte) []byte {
	out, err := rewriteData(wasm)
	if err != nil {
		return wasm
	}
	return out
}

// section is one section of a module: its id and where it lies in the
// module's bytes.
type section struct {
	id         byte
	start, end int // of the payload
	head       int // where the section begins
}

// parseSections splits a module into its sections.
func parseSections(wasm []byte) ([]section, error) {
	if len(wasm) < 8 || !bytes.Equal(wasm[:8], []byte("\x00asm\x01\x00\x00\x00")) {
		return nil, errNotMergeable
	}
	var sections []section
	for i := 8; i < len(wasm); {
		id := wasm[i]
		n, j, err := readU32(wasm, i+1)
		if err != nil || uint64(j)+uint64(n) > uint64(len(wasm)) {
			return nil, errNotMergeable
		}
		sections = append(sections, section{id: id, start: j, end: j + int(n), head: i})
		i = j + int(n)
	}
	return sections, nil
}

func rewriteData(wasm []byte) ([]byte, error) {
	sections, err := parseSections(wasm)
	if err != nil {
		return nil, err
	}
	di := slices.IndexFunc(sections, func(s section) bool { return s.id == sectionData })
	if di < 0 {
		return nil, errNotMergeable
	}
	segs, err := readSegments(wasm[sections[di].start:sections[di].end])
	if err != nil || len(segs) < 2 {
		return nil, errNotMergeable
	}
	slices.SortStableFunc(segs, func(a, b segment) int { return cmp.Compare(a.offset, b.offset) })
	// Runs of segments close enough to become one: [first, last] in segs.
	type run struct{ first, last int }
	var runs []run
	for i, s := range segs {
		if len(runs) > 0 {
			prev := segs[i-1]
			end := uint64(prev.offset) + uint64(len(prev.data))
			if uint64(s.offset) < end {
				return nil, errNotMergeable // overlap: order would matter
			}
			if uint64(s.offset)-end <= maxGap {
				runs[len(runs)-1].last = i
				continue
			}
		}
		runs = append(runs, run{i, i})
	}
	if len(runs) == len(segs) {
		return nil, errNotMergeable
	}
	body := make([]byte, 0, sections[di].end-sections[di].start+len(runs)*maxGap)
	body = appendU32(body, uint32(len(runs)))
	for _, r := range runs {
		first, last := segs[r.first], segs[r.last]
		size := uint64(last.offset) + uint64(len(last.data)) - uint64(first.offset)
		if size > 1<<32-1 {
			return nil, errNotMergeable
		}
		body = append(body, 0x00, 0x41) // active, memory 0; i32.const
		body = appendS32(body, int32(first.offset))
		body = append(body, 0x0b) // end
		body = appendU32(body, uint32(size))
		base := len(body)
		body = append(body, make([]byte, size)...)
		for _, s := range segs[r.first : r.last+1] {
			copy(body[base+int(s.offset-first.offset):], s.data)
		}
	}
	merged := runs
	out := slices.Clone(wasm[:8])
	for _, s := range sections {
		switch s.id {
		case sectionData:
			out = append(out, sectionData)
			out = appendU32(out, uint32(len(body)))
			out = append(out, body...)
		case sectionDataCount:
			var cnt []byte
			cnt = appendU32(cnt, uint32(len(merged)))
			out = append(out, sectionDataCount)
			out = appendU32(out, uint32(len(cnt)))
			out = append(out, cnt...)
		default:
			out = append(out, wasm[s.head:s.end]...)
		}
	}
	return out, nil
}

// readSegments reads a data section holding only active segments of memory
// 0 at i32.const offsets.
func readSegments(b []byte) ([]segment, error) {
	n, i, err := readU32(b, 0)
	if err != nil || uint64(n) > uint64(len(b)) {
		return nil, errNotMergeable
	}
	segs := make([]segment, 0, n)
	for k := uint32(0); k < n; k++ {
		if i+2 > len(b) || b[i] != 0x00 || b[i+1] != 0x41 {
			return nil, errNotMergeable
		}
		off, j, err := readS32(b, i+2)
		if err != nil || j >= len(b) || b[j] != 0x0b {
			return nil, errNotMergeable
		}
		size, j, err := readU32(b, j+1)
		if err != nil || uint64(j)+uint64(size) > uint64(len(b)) {
			return nil, errNotMergeable
		}
		segs = append(segs, segment{offset: uint32(off), data: b[j : j+int(size)]})
		i = j + int(size)
	}
	if i != len(b) {
		return nil, errNotMergeable
	}
	return segs, nil
}

func readU32(b []byte, i int) (uint32, int, error) {
	if i >= len(b) {
		return 0, i, errNotMergeable
	}
	v, n := binary.Uvarint(b[i:])
	if n <= 0 || n > 5 || v > 1<<32-1 {
		return 0, i, errNotMergeable
	}
	return uint32(v), i + n, nil
}

func readS32(b []byte, i int) (int32, int, error) {
	var v int64
	var shift uint
	for k := 0; k < 5; k++ {
		if i >= len(b) {
			return 0, i, errNotMergeable
		}
		c := b[i]
		i++
		v |= int64(c&0x7f) << shift
		shift += 7
		if c&0x80 == 0 {
			if shift < 64 && c&0x40 != 0 {
				v |= -1 << shift
			}
			if v < -1<<31 || v > 1<<31-1 {
				return 0, i, errNotMergeable
			}
			return int32(v), i, nil
		}
	}
	return 0, i, errNotMergeable
}

func appendU32(b []byte, v uint32) []byte { return binary.AppendUvarint(b, uint64(v)) }

func appendS32(b []byte, v int32) []byte {
	x := int64(v)
	for {
		c := byte(x & 0x7f)
		x >>= 7
		if (x == 0 && c&0x40 == 0) || (x == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}
