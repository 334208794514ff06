package sandbox

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"strings"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/sys"
)

// Exports of a reactor module.
const (
	exportInitialize = "_initialize"
	exportHandle     = "moat_handle"
)

// InitTimeout bounds a reactor module's initialisation at deploy.
const InitTimeout = 10 * time.Second

// snapshot is a reactor module's state at the end of _initialize: what
// every request starts from.
type snapshot struct {
	entry   string   // the export each request calls
	pages   uint32   // memory size
	names   []string // exports of the mutable globals
	values  []uint64 // and their values
	rngs    []uint32 // offsets of the Go runtime's ChaCha8 states
	memory  *cowPool
	pool    instances
	initLog []string
}

// takeSnapshot runs _initialize in an instance whose memory starts as the
// data segments set it, then keeps its memory and globals. env is the
// function's declared environment; the request's variables come per call.
func takeSnapshot(ctx context.Context, rt wazero.Runtime, compiled wazero.CompiledModule, prep *prepared, env []string, memory int64, stdin []byte) (*snapshot, error) {
	ctx, cancel := context.WithTimeout(ctx, InitTimeout)
	defer cancel()
	logw := &lineWriter{maxBytes: 64 << 10, maxLines: 100}
	cfg := wazero.NewModuleConfig().WithName("").WithStartFunctions().
		WithArgs("moat").
		WithRandSource(rand.Reader).WithSysWalltime().WithSysNanotime().
		WithStdin(bytes.NewReader(stdin)).WithStdout(io.Discard).WithStderr(logw).
		WithNanosleep(func(ns int64) { sleep(ctx, ns) })
	mem := &heapMemory{buf: bytes.Clone(prep.image)}
	runCtx := withEnviron(experimental.WithMemoryAllocator(ctx, fixedAllocator{mem}), newEnviron(env))
	runCtx = context.WithValue(runCtx, hostKey{}, &hostState{log: logw, initialising: true})
	mod, err := rt.InstantiateModule(runCtx, compiled, cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: instantiate: %w", ErrInvalidModule, err)
	}
	defer mod.Close(context.Background())
	if _, err := mod.ExportedFunction(exportInitialize).Call(runCtx); err != nil {
		logw.flush()
		var exit *sys.ExitError
		switch {
		case errors.Is(ctx.Err(), context.DeadlineExceeded):
			err = fmt.Errorf("did not finish within %s", InitTimeout)
		case errors.As(err, &exit):
			err = fmt.Errorf("exit code %d", exit.ExitCode())
		}
		return nil, &InitError{Err: err, Log: logw.lines}
	}
	logw.flush()
	snap := &snapshot{entry: exportHandle, initLog: logw.lines}
	m := mod.ExportedMemory("memory")
	snap.pages = m.Size() / pageSize
	image, ok := m.Read(0, m.Size())
	if !ok {
		return nil, fmt.Errorf("%w: memory unreadable after _initialize", ErrInvalidModule)
	}
	for i := range prep.globals {
		name := globalExport(i)
		g, ok := mod.ExportedGlobal(name).(api.MutableGlobal)
		if !ok {
			continue // immutable: the module sets it itself
		}
		snap.names = append(snap.names, name)
		snap.values = append(snap.values, g.Get())
	}
	snap.rngs = findRNGs(image)
	if snap.memory, err = newCOWPool(image, 64); err != nil {
		return nil, err
	}
	return snap, nil
}

// initialState is the snapshot of a command whose instances can be kept:
// its state as instantiated, before _start. Nothing of the module runs.
func initialState(ctx context.Context, rt wazero.Runtime, compiled wazero.CompiledModule, prep *prepared) (*snapshot, error) {
	mem := &heapMemory{buf: bytes.Clone(prep.image)}
	cfg := wazero.NewModuleConfig().WithName("").WithStartFunctions()
	mod, err := rt.InstantiateModule(experimental.WithMemoryAllocator(ctx, fixedAllocator{mem}), compiled, cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: instantiate: %w", ErrInvalidModule, err)
	}
	defer mod.Close(context.Background())
	snap := &snapshot{entry: "_start", pages: uint32(len(prep.image) / pageSize)}
	for i := range prep.globals {
		name := globalExport(i)
		if g, ok := mod.ExportedGlobal(name).(api.MutableGlobal); ok {
			snap.names = append(snap.names, name)
			snap.values = append(snap.values, g.Get())
		}
	}
	if snap.memory, err = newCOWPool(prep.image, 64); err != nil {
		return nil, err
	}
	snap.pool.reuse = true
	return snap, nil
}

// InitError reports a reactor module whose initialisation failed at deploy,
// with what it wrote to stderr.
type InitError struct {
	Err error
	Log []string
}

func (e *InitError) Error() string {
	msg := "initialisation failed: " + e.Err.Error()
	if len(e.Log) > 0 {
		last := e.Log[max(0, len(e.Log)-5):]
		msg += ": " + strings.Join(last, " | ")
	}
	return msg
}

func (e *InitError) Unwrap() error { return ErrInvalidModule }

// fixedAllocator hands wazero one memory it already made.
type fixedAllocator struct{ m *heapMemory }

func (a fixedAllocator) Allocate(_, max uint64) experimental.LinearMemory {
	a.m.max = max
	return a.m
}

// The Go runtime keeps its random state in internal/chacha8rand.State
// values (one per M, one global), laid out as
//
//	buf  [32]uint64 // the current block of output
//	seed [4]uint64
//	i, n, c uint32  // next output, outputs in buf, block counter
//
// Restored as is, every instance would draw the same numbers: map seeds,
// math/rand and math/rand/v2, select order. findRNGs finds them in the
// image by their shape and proves each one by recomputing its block from
// its seed (the same generator is math/rand/v2's ChaCha8), so that a
// candidate is never a coincidence; reseed overwrites seed and buffer with
// fresh randomness in every instance.
const (
	rngBuf   = 0
	rngSeed  = 256
	rngCount = 288
	rngSize  = 300
)

func findRNGs(image []byte) []uint32 {
	var found []uint32
	for p := 0; p+rngSize <= len(image); p += 8 {
		i := binary.LittleEndian.Uint32(image[p+rngCount:])
		n := binary.LittleEndian.Uint32(image[p+rngCount+4:])
		c := binary.LittleEndian.Uint32(image[p+rngCount+8:])
		if !(n == 32 && (c == 0 || c == 4 || c == 8) || n == 28 && c == 12) || i > n {
			continue
		}
		if chachaBlockMatches(image[p:p+rngSize], c, n) {
			found = append(found, uint32(p))
		}
	}
	return found
}

// chachaBlockMatches reports whether state's buffer holds the block its
// seed and counter c produce.
func chachaBlockMatches(state []byte, c, n uint32) bool {
	seed := [32]byte(state[rngSeed : rngSeed+32])
	if seed == [32]byte{} {
		return false
	}
	g := mrand.NewChaCha8(seed)
	for range c / 4 * 32 {
		g.Uint64()
	}
	for k := range n {
		if g.Uint64() != binary.LittleEndian.Uint64(state[rngBuf+8*k:]) {
			return false
		}
	}
	return true
}

// reseed gives every runtime random state of an instance fresh randomness.
func (s *snapshot) reseed(mem api.Memory) error {
	if len(s.rngs) == 0 {
		return nil
	}
	var fresh [rngCount]byte
	for _, off := range s.rngs {
		rand.Read(fresh[:])
		if !mem.Write(off, fresh[:]) {
			return errors.New("reseed: state outside memory")
		}
	}
	return nil
}
