package sandbox

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
)

// A reactor module (Go's -buildmode=c-shared with the SDK's export
// moat_handle) is served from a snapshot: its initialisation runs once, at
// deploy, and every request starts from the memory and globals it left
// (docs/snapshots.md). This file prepares such a module: the data segments
// move out of the module into an initial memory image the sandbox supplies
// itself, and every global is exported so that the host can read it after
// _initialize and set it in each fresh instance.

const (
	sectionImport = 2
	sectionMemory = 5
	sectionGlobal = 6
	sectionExport = 7
	externGlobal  = 3
)

// globalExport names the export of global i in a prepared module.
func globalExport(i int) string { return "moat:global:" + strconv.Itoa(i) }

var errNotReactor = errors.New("not a reactor module Moat can snapshot")

// prepared is a reactor module rewritten for snapshots.
type prepared struct {
	wasm    []byte // without data segments, with every global exported
	image   []byte // linear memory as the data segments initialise it
	globals int
}

// prepareReactor rewrites a reactor module for snapshots. It refuses a
// module outside what it understands: imported globals or memories,
// passive data segments, offsets that are not constants.
func prepareReactor(wasm []byte) (*prepared, error) {
	sections, err := parseSections(wasm)
	if err != nil {
		return nil, fmt.Errorf("%w: malformed sections", errNotReactor)
	}
	find := func(id byte) (section, bool) {
		i := slices.IndexFunc(sections, func(s section) bool { return s.id == id })
		if i < 0 {
			return section{}, false
		}
		return sections[i], true
	}
	if s, ok := find(sectionImport); ok {
		if err := checkImports(wasm[s.start:s.end]); err != nil {
			return nil, err
		}
	}
	ms, ok := find(sectionMemory)
	if !ok {
		return nil, fmt.Errorf("%w: no memory", errNotReactor)
	}
	minPages, err := memoryMin(wasm[ms.start:ms.end])
	if err != nil {
		return nil, err
	}
	globals := 0
	if s, ok := find(sectionGlobal); ok {
		n, _, err := readU32(wasm[s.start:s.end], 0)
		if err != nil {
			return nil, fmt.Errorf("%w: malformed global section", errNotReactor)
		}
		globals = int(n)
	}
	if uint64(minPages)*pageSize > 1<<32 {
		return nil, fmt.Errorf("%w: initial memory over 4GiB", errNotReactor)
	}
	image := make([]byte, uint64(minPages)*pageSize)
	if s, ok := find(sectionData); ok {
		segs, err := readSegments(wasm[s.start:s.end])
		if err != nil {
			return nil, fmt.Errorf("%w: data segments that are not active at constant offsets", errNotReactor)
		}
		for _, sg := range segs {
			if uint64(sg.offset)+uint64(len(sg.data)) > uint64(len(image)) {
				return nil, fmt.Errorf("%w: data segment past the initial memory", errNotReactor)
			}
			copy(image[sg.offset:], sg.data)
		}
	}
	es, ok := find(sectionExport)
	if !ok {
		return nil, fmt.Errorf("%w: no exports", errNotReactor)
	}
	count, rest, err := readU32(wasm[es.start:es.end], 0)
	if err != nil {
		return nil, fmt.Errorf("%w: malformed export section", errNotReactor)
	}
	exports := appendU32(nil, count+uint32(globals))
	exports = append(exports, wasm[es.start+rest:es.end]...)
	for i := range globals {
		name := globalExport(i)
		exports = appendU32(exports, uint32(len(name)))
		exports = append(exports, name...)
		exports = append(exports, externGlobal)
		exports = appendU32(exports, uint32(i))
	}
	out := slices.Clone(wasm[:8])
	for _, s := range sections {
		switch s.id {
		case sectionData, sectionDataCount:
			out = append(out, s.id, 1, 0) // no segments
		case sectionExport:
			out = append(out, sectionExport)
			out = appendU32(out, uint32(len(exports)))
			out = append(out, exports...)
		default:
			out = append(out, wasm[s.head:s.end]...)
		}
	}
	return &prepared{wasm: out, image: image, globals: globals}, nil
}

// checkImports refuses imported globals, tables and memories: the host
// could not restore them.
func checkImports(b []byte) error {
	if !onlyFunctionImports(b) {
		return fmt.Errorf("%w: imports something other than functions, or a malformed import section", errNotReactor)
	}
	return nil
}

// onlyFunctionImports reports whether an import section is well formed and
// imports nothing but functions (all Moat provides).
func onlyFunctionImports(b []byte) bool {
	n, i, err := readU32(b, 0)
	if err != nil {
		return false
	}
	for range n {
		for range 2 { // module and field names
			var l uint32
			if l, i, err = readU32(b, i); err != nil || uint64(i)+uint64(l) > uint64(len(b)) {
				return false
			}
			i += int(l)
		}
		if i >= len(b) || b[i] != 0 {
			return false
		}
		if _, i, err = readU32(b, i+1); err != nil {
			return false
		}
	}
	return true
}

// memoryMin reads the initial page count of the module's one memory.
func memoryMin(b []byte) (uint32, error) {
	n, i, err := readU32(b, 0)
	if err != nil || n != 1 || i >= len(b) {
		return 0, fmt.Errorf("%w: a module must define exactly one memory", errNotReactor)
	}
	if flags := b[i]; flags > 1 {
		return 0, fmt.Errorf("%w: shared or 64-bit memory", errNotReactor)
	}
	min, _, err := readU32(b, i+1)
	if err != nil {
		return 0, fmt.Errorf("%w: malformed memory section", errNotReactor)
	}
	return min, nil
}

const sectionCode = 10

// keepsNoTableState reports whether no function of wasm can change a table
// or drop an element segment (table.set, table.grow, table.fill,
// table.copy, table.init, elem.drop): then a module instance holds no state
// beyond its memory and globals, and an instance restored in both is as
// good as a new one. It decodes every instruction; anything it does not
// know (SIMD, threads, tail calls, a malformed body) answers false.
func keepsNoTableState(wasm []byte) bool {
	sections, err := parseSections(wasm)
	if err != nil {
		return false
	}
	for _, s := range sections {
		if s.id == sectionCode {
			return scanCode(wasm[s.start:s.end])
		}
	}
	return true // no code at all
}

func scanCode(b []byte) bool {
	n, i, err := readU32(b, 0)
	if err != nil {
		return false
	}
	for range n {
		var size uint32
		if size, i, err = readU32(b, i); err != nil || uint64(i)+uint64(size) > uint64(len(b)) {
			return false
		}
		if !scanBody(b[i : i+int(size)]) {
			return false
		}
		i += int(size)
	}
	return i == len(b)
}

// scanBody decodes one function body and reports whether it is free of
// table-changing instructions.
func scanBody(b []byte) bool {
	_, ok := walkBody(b, func(op byte, sub uint32, _ int) bool {
		switch {
		case op == 0x26: // table.set
			return false
		case op == 0xfc && sub >= 12 && sub != 16: // table.init .. table.fill, but table.size
			return false
		}
		return true
	})
	return ok
}

// walkBody decodes one function body, calling visit after each instruction
// with its opcode, its sub-opcode (for the 0xfc prefix) and the offset just
// past it; visit returns false to stop. It returns where the instructions
// start (past the locals) and false when the body is malformed, holds an
// instruction it does not know (SIMD, threads, tail calls), or visit
// stopped it.
func walkBody(b []byte, visit func(op byte, sub uint32, end int) bool) (int, bool) {
	locals, i, err := readU32(b, 0)
	if err != nil {
		return 0, false
	}
	for range locals {
		if _, i, err = readU32(b, i); err != nil || i >= len(b) {
			return 0, false
		}
		i++ // value type
	}
	start := i
	u32 := func() bool {
		_, i, err = readU32(b, i)
		return err == nil
	}
	leb := func(max int) bool { // a signed or unsigned LEB128 of at most max bytes
		for k := 0; k < max; k++ {
			if i >= len(b) {
				return false
			}
			c := b[i]
			i++
			if c&0x80 == 0 {
				return true
			}
		}
		return false
	}
	for i < len(b) {
		op := b[i]
		i++
		var sub uint32
		ok := true
		switch {
		case op == 0x00, op == 0x01, op == 0x05, op == 0x0b, op == 0x0f, op == 0x1a, op == 0x1b, op == 0xd1,
			op >= 0x45 && op <= 0xc4:
		case op >= 0x02 && op <= 0x04: // block, loop, if: a block type
			ok = leb(5)
		case op == 0x0c, op == 0x0d, op == 0x10, op >= 0x20 && op <= 0x26, op == 0xd2:
			ok = u32()
		case op == 0x0e: // br_table
			var cnt uint32
			if cnt, i, err = readU32(b, i); err != nil {
				return 0, false
			}
			for range cnt + 1 {
				if !u32() {
					return 0, false
				}
			}
		case op == 0x11: // call_indirect: type, table
			ok = u32() && u32()
		case op == 0x1c: // select with types
			var cnt uint32
			if cnt, i, err = readU32(b, i); err != nil || uint64(i)+uint64(cnt) > uint64(len(b)) {
				return 0, false
			}
			i += int(cnt)
		case op >= 0x28 && op <= 0x3e: // loads and stores: align, offset
			ok = u32() && leb(10)
		case op == 0x3f, op == 0x40: // memory.size, memory.grow
			ok = u32()
		case op == 0x41:
			ok = leb(5)
		case op == 0x42:
			ok = leb(10)
		case op == 0x43:
			i += 4
		case op == 0x44:
			i += 8
		case op == 0xd0: // ref.null
			i++
		case op == 0xfc:
			if sub, i, err = readU32(b, i); err != nil {
				return 0, false
			}
			switch {
			case sub <= 7: // saturating truncations
			case sub == 8, sub == 10, sub == 12, sub == 14: // memory.init, memory.copy, table.init, table.copy: two indices
				ok = u32() && u32()
			case sub == 9, sub == 11, sub == 13, sub == 15, sub == 16, sub == 17: // one index
				ok = u32()
			default:
				return 0, false
			}
		default:
			return 0, false
		}
		if !ok || i > len(b) || !visit(op, sub, i) {
			return 0, false
		}
	}
	return start, true
}

// goBuilt reports whether the Go toolchain built wasm: its linker writes a
// custom section "go:buildid". A Go command always ends with proc_exit,
// which closes its instance, so keeping its instances buys nothing.
func goBuilt(wasm []byte) bool {
	sections, err := parseSections(wasm)
	if err != nil {
		return false
	}
	for _, s := range sections {
		if s.id != 0 {
			continue
		}
		n, i, err := readU32(wasm[s.start:s.end], 0)
		if err == nil && uint64(i)+uint64(n) <= uint64(s.end-s.start) && string(wasm[s.start+i:s.start+i+int(n)]) == "go:buildid" {
			return true
		}
	}
	return false
}

// prepareCommand prepares a command whose instances can be kept: one that
// is instrumented, not built by Go, and keeps no table state.
func prepareCommand(wasm []byte, instrumented bool) (*prepared, error) {
	if !instrumented || goBuilt(wasm) {
		return nil, errNotReactor
	}
	p, err := prepareReactor(wasm)
	if err != nil {
		return nil, err
	}
	if !keepsNoTableState(p.wasm) {
		return nil, errNotReactor
	}
	return p, nil
}
