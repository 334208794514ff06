package testwasm

// Hand-assembled modules: the smallest non-Go guests, and modules that a
// deploy must refuse. Each is described in WAT beside its bytes.

// MinimalCGI is a guest that writes a fixed CGI response and returns:
//
//	(module
//	  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
//	  (memory (export "memory") 1)
//	  (data (i32.const 16) "Status: 200 OK\nContent-Type: text/plain\n\nhello\n")
//	  (func (export "_start")
//	    (i32.store (i32.const 0) (i32.const 16))   ;; iovec.buf
//	    (i32.store (i32.const 4) (i32.const LEN))  ;; iovec.len
//	    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
func MinimalCGI() []byte {
	body := "Status: 200 OK\nContent-Type: text/plain\n\nhello\n"
	code := concat(
		i32const(0), i32const(16), []byte{0x36, 0x02, 0x00}, // i32.store align=2 offset=0
		i32const(4), i32const(int32(len(body))), []byte{0x36, 0x02, 0x00},
		i32const(1), i32const(0), i32const(1), i32const(8),
		[]byte{0x10, 0x00, 0x1a}, // call 0, drop
	)
	return module(
		section(1, vec(functype([]byte{i32, i32, i32, i32}, []byte{i32}), functype(nil, nil))),
		section(2, vec(importFunc("wasi_snapshot_preview1", "fd_write", 0))),
		section(3, vec([]byte{1})),
		section(5, vec([]byte{0x00, 1})),
		section(7, vec(export("memory", 2, 0), export("_start", 0, 1))),
		section(10, vec(funcBody(code))),
		section(11, vec(concat([]byte{0x00}, i32const(16), []byte{0x0b}, name(body)))),
	)
}

// NoStart is a valid module with memory and a function but no _start:
//
//	(module (memory (export "memory") 1) (func (export "run")))
func NoStart() []byte {
	return module(
		section(1, vec(functype(nil, nil))),
		section(3, vec([]byte{0})),
		section(5, vec([]byte{0x00, 1})),
		section(7, vec(export("memory", 2, 0), export("run", 0, 0))),
		section(10, vec(funcBody(nil))),
	)
}

// ForeignImport is a command module that imports a host function Moat does
// not provide:
//
//	(module (import "env" "system" (func (param i32) (result i32)))
//	  (memory (export "memory") 1) (func (export "_start")))
func ForeignImport() []byte {
	return module(
		section(1, vec(functype([]byte{i32}, []byte{i32}), functype(nil, nil))),
		section(2, vec(importFunc("env", "system", 0))),
		section(3, vec([]byte{1})),
		section(5, vec([]byte{0x00, 1})),
		section(7, vec(export("memory", 2, 0), export("_start", 0, 1))),
		section(10, vec(funcBody(nil))),
	)
}

// Trap is a command module whose _start executes unreachable:
//
//	(module (memory (export "memory") 1) (func (export "_start") unreachable))
func Trap() []byte {
	return module(
		section(1, vec(functype(nil, nil))),
		section(3, vec([]byte{0})),
		section(5, vec([]byte{0x00, 1})),
		section(7, vec(export("memory", 2, 0), export("_start", 0, 0))),
		section(10, vec(funcBody([]byte{0x00}))),
	)
}

const i32 = 0x7f

// Module, Section, Vec and ActiveData assemble modules for tests that need
// shapes the named modules above do not have.
func Module(sections ...[]byte) []byte { return module(sections...) }

// Section returns a section with its id and size.
func Section(id byte, body []byte) []byte { return section(id, body) }

// Vec returns a wasm vector of items.
func Vec(items ...[]byte) []byte { return vec(items...) }

// ActiveData returns an active data segment of memory 0 at offset.
func ActiveData(offset int32, data []byte) []byte {
	return concat([]byte{0x00}, i32const(offset), []byte{0x0b}, name(string(data)))
}

func module(sections ...[]byte) []byte {
	return concat(append([][]byte{{0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00}}, sections...)...)
}

func section(id byte, body []byte) []byte { return concat([]byte{id}, uleb(uint32(len(body))), body) }

func vec(items ...[]byte) []byte {
	return concat(append([][]byte{uleb(uint32(len(items)))}, items...)...)
}

func functype(params, results []byte) []byte {
	return concat([]byte{0x60}, uleb(uint32(len(params))), params, uleb(uint32(len(results))), results)
}

func importFunc(mod, field string, typeIdx uint32) []byte {
	return concat(name(mod), name(field), []byte{0x00}, uleb(typeIdx))
}

func export(n string, kind byte, idx uint32) []byte { return concat(name(n), []byte{kind}, uleb(idx)) }

func funcBody(code []byte) []byte {
	b := concat([]byte{0x00}, code, []byte{0x0b}) // no locals, code, end
	return concat(uleb(uint32(len(b))), b)
}

func name(s string) []byte { return concat(uleb(uint32(len(s))), []byte(s)) }

func i32const(v int32) []byte { return concat([]byte{0x41}, sleb(v)) }

func uleb(v uint32) []byte {
	var b []byte
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			b = append(b, c|0x80)
			continue
		}
		return append(b, c)
	}
}

func sleb(v int32) []byte {
	var b []byte
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func concat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// Spin is a command module whose _start loops forever:
//
//	(module (memory (export "memory") 1) (func (export "_start") (loop (br 0))))
func Spin() []byte { return spin(nil) }

// SpinSIMD is Spin with a SIMD instruction in its loop, which Moat's loop
// instrumentation does not read: it must still be stopped.
//
//	(loop (drop (v128.const i64x2 0 0)) (br 0))
func SpinSIMD() []byte {
	return spin(concat([]byte{0xfd, 0x0c}, make([]byte, 16), []byte{0x1a}))
}

func spin(inLoop []byte) []byte {
	code := concat([]byte{0x03, 0x40}, inLoop, []byte{0x0c, 0x00, 0x0b}) // loop; ...; br 0; end
	return module(
		section(1, vec(functype(nil, nil))),
		section(3, vec([]byte{0})),
		section(5, vec([]byte{0x00, 1})),
		section(7, vec(export("memory", 2, 0), export("_start", 0, 0))),
		section(10, vec(funcBody(code))),
	)
}

// Counter is a non-Go command that counts in a global and in memory and
// returns normally (no proc_exit), so its instances can be kept: its answer
// must be "00" on every request, or state carried over.
//
//	(module
//	  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
//	  (memory (export "memory") 1)
//	  (global $g (mut i32) (i32.const 0))
//	  (data (i32.const 16) "Status: 200 OK\nContent-Type: text/plain\n\nXY")
//	  (func (export "_start")
//	    (i32.store8 (i32.const X) (i32.add (global.get $g) (i32.const 48)))
//	    (i32.store8 (i32.const Y) (i32.add (i32.load8_u (i32.const 8)) (i32.const 48)))
//	    (global.set $g (i32.add (global.get $g) (i32.const 1)))
//	    (i32.store8 (i32.const 8) (i32.add (i32.load8_u (i32.const 8)) (i32.const 1)))
//	    (i32.store (i32.const 0) (i32.const 16)) (i32.store (i32.const 4) (i32.const LEN))
//	    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 12)))))
func Counter() []byte {
	body := "Status: 200 OK\nContent-Type: text/plain\n\nXY"
	x, y := int32(16+len(body)-2), int32(16+len(body)-1)
	store8 := []byte{0x3a, 0x00, 0x00}
	load8 := []byte{0x2d, 0x00, 0x00}
	add := []byte{0x6a}
	code := concat(
		i32const(x), []byte{0x23, 0x00}, i32const(48), add, store8,
		i32const(y), i32const(8), load8, i32const(48), add, store8,
		[]byte{0x23, 0x00}, i32const(1), add, []byte{0x24, 0x00},
		i32const(8), i32const(8), load8, i32const(1), add, store8,
		i32const(0), i32const(16), []byte{0x36, 0x02, 0x00},
		i32const(4), i32const(int32(len(body))), []byte{0x36, 0x02, 0x00},
		i32const(1), i32const(0), i32const(1), i32const(12),
		[]byte{0x10, 0x00, 0x1a},
	)
	return module(
		section(1, vec(functype([]byte{i32, i32, i32, i32}, []byte{i32}), functype(nil, nil))),
		section(2, vec(importFunc("wasi_snapshot_preview1", "fd_write", 0))),
		section(3, vec([]byte{1})),
		section(5, vec([]byte{0x00, 1})),
		section(6, vec([]byte{i32, 0x01, 0x41, 0x00, 0x0b})),
		section(7, vec(export("memory", 2, 0), export("_start", 0, 1))),
		section(10, vec(funcBody(code))),
		section(11, vec(concat([]byte{0x00}, i32const(16), []byte{0x0b}, name(body)))),
	)
}
