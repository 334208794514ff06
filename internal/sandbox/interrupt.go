package sandbox

import (
	"errors"
	"slices"
)

// Stopping a guest that spins in a loop, cheaply.
//
// wazero's WithCloseOnContextDone makes every loop iteration leave the
// machine code for Go to ask whether the module was closed, and starts a
// goroutine per call to close it: together they cost Go guests about 2.5x
// per request (wazero issue #2466). Instead, instrument rewrites the module
// at deploy: a new global, the fuel, counts loop iterations down, and every
// loop header gets
//
//	fuel -= 1
//	if fuel <= 0 {
//		if stop != 0 { unreachable }  // the host said stop
//		drop(memory.grow(0))          // a trip through Go
//		fuel = fuelRefill
//	}
//
// Each loop iteration costs a load, a subtraction, a store and a branch.
// Every fuelRefill iterations the guest passes through wazero's Go code
// (memory.grow always does), where the Go scheduler can stop it: a garbage
// collection waiting to scan its stack never waits long on a spinning guest.
// To stop an instance, the host sets a second global, stop, which the
// guest only reads (were the host to write the fuel, the guest's next
// store could undo it): the guest traps within fuelRefill iterations. Sleeps and host calls end with the request's context on
// their own.

const (
	fuelRefill = 1 << 14
	stopExport = "moat:stop"
)

var errNotInstrumentable = errors.New("module outside what the loop instrumentation reads")

// instrument returns wasm with the fuel global and the loop checks, or an
// error for a module it does not read (imported globals, instructions it
// does not know); such a module runs under WithCloseOnContextDone instead.
func instrument(wasm []byte) ([]byte, error) {
	sections, err := parseSections(wasm)
	if err != nil {
		return nil, errNotInstrumentable
	}
	globals := uint32(0)
	var globalSec, exportSec, codeSec = -1, -1, -1
	for k, s := range sections {
		switch s.id {
		case sectionImport:
			// An imported global would shift the fuel's index.
			if !onlyFunctionImports(wasm[s.start:s.end]) {
				return nil, errNotInstrumentable
			}
		case sectionGlobal:
			globalSec = k
			if globals, _, err = readU32(wasm[s.start:s.end], 0); err != nil {
				return nil, errNotInstrumentable
			}
		case sectionExport:
			exportSec = k
		case sectionCode:
			codeSec = k
		}
	}
	if exportSec < 0 || codeSec < 0 {
		return nil, errNotInstrumentable
	}
	fuel, stop := globals, globals+1 // the new globals' indices
	// The global section, with the fuel and the stop flag appended.
	var gbody []byte
	gbody = appendU32(gbody, globals+2)
	if globalSec >= 0 {
		s := sections[globalSec]
		_, rest, _ := readU32(wasm[s.start:s.end], 0)
		gbody = append(gbody, wasm[s.start+rest:s.end]...)
	}
	gbody = append(gbody, 0x7f, 0x01, 0x41) // i32, mutable, i32.const
	gbody = appendS32(gbody, fuelRefill)
	gbody = append(gbody, 0x0b)
	gbody = append(gbody, 0x7f, 0x01, 0x41, 0x00, 0x0b) // stop: i32, mutable, 0
	// The export section, with the stop flag exported.
	es := sections[exportSec]
	count, rest, err := readU32(wasm[es.start:es.end], 0)
	if err != nil {
		return nil, errNotInstrumentable
	}
	ebody := appendU32(nil, count+1)
	ebody = append(ebody, wasm[es.start+rest:es.end]...)
	ebody = appendU32(ebody, uint32(len(stopExport)))
	ebody = append(ebody, stopExport...)
	ebody = append(ebody, externGlobal)
	ebody = appendU32(ebody, stop)
	cs := sections[codeSec]
	cbody, err := instrumentCode(wasm[cs.start:cs.end], loopCheck(fuel, stop))
	if err != nil {
		return nil, err
	}
	out := slices.Clone(wasm[:8])
	put := func(id byte, body []byte) []byte {
		out = append(out, id)
		out = appendU32(out, uint32(len(body)))
		return append(out, body...)
	}
	for k, s := range sections {
		switch {
		case k == globalSec:
			out = put(sectionGlobal, gbody)
		case k == exportSec:
			if globalSec < 0 {
				out = put(sectionGlobal, gbody) // the global section comes right before exports
			}
			out = put(sectionExport, ebody)
		case k == codeSec:
			out = put(sectionCode, cbody)
		default:
			out = append(out, wasm[s.head:s.end]...)
		}
	}
	return out, nil
}

// loopCheck is the code inserted at each loop header.
func loopCheck(fuel, stop uint32) []byte {
	f, st := appendU32(nil, fuel), appendU32(nil, stop)
	var b []byte
	b = append(append(append(b, 0x23), f...), 0x41, 0x01, 0x6b) // global.get fuel; i32.const 1; i32.sub
	b = append(append(b, 0x24), f...)                           // global.set fuel
	b = append(append(b, 0x23), f...)                           // global.get fuel
	b = append(b, 0x41, 0x00, 0x4c, 0x04, 0x40)                 // i32.const 0; i32.le_s; if
	b = append(append(b, 0x23), st...)                          //   global.get stop
	b = append(b, 0x04, 0x40, 0x00, 0x0b)                       //   if unreachable end
	b = append(b, 0x41, 0x00, 0x40, 0x00, 0x1a)                 //   i32.const 0; memory.grow; drop
	b = appendS32(append(b, 0x41), fuelRefill)                  //   i32.const refill
	b = append(append(b, 0x24), f...)                           //   global.set fuel
	return append(b, 0x0b)                                      // end
}

// instrumentCode inserts check after every loop header of every function.
func instrumentCode(b []byte, check []byte) ([]byte, error) {
	n, i, err := readU32(b, 0)
	if err != nil {
		return nil, errNotInstrumentable
	}
	out := appendU32(make([]byte, 0, len(b)+len(b)/8), n)
	var body []byte
	for range n {
		var size uint32
		if size, i, err = readU32(b, i); err != nil || uint64(i)+uint64(size) > uint64(len(b)) {
			return nil, errNotInstrumentable
		}
		fn := b[i : i+int(size)]
		body = body[:0]
		last := 0
		_, ok := walkBody(fn, func(op byte, _ uint32, end int) bool {
			if op == 0x03 { // loop
				body = append(body, fn[last:end]...)
				body = append(body, check...)
				last = end
			}
			return true
		})
		if !ok {
			return nil, errNotInstrumentable
		}
		body = append(body, fn[last:]...)
		out = appendU32(out, uint32(len(body)))
		out = append(out, body...)
		i += int(size)
	}
	if i != len(b) {
		return nil, errNotInstrumentable
	}
	return out, nil
}
