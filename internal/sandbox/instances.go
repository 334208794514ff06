package sandbox

import (
	"context"
	"errors"
	"io"
	"sync"

	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/sys"
)

// A reactor's requests run in instances restored to the snapshot. Building
// a wazero instance of a Go module costs more than the request itself (its
// function table alone has tens of thousands of entries), so an instance
// that ends a request cleanly is restored in place and kept for the next:
//
//   - memory: every page the request wrote is copied back from the image
//     (the pages that are private to the process are exactly the written
//     ones, read from /proc/self/pagemap); a memory that grew is never
//     kept, since wasm memory cannot shrink;
//   - globals: set back to the snapshot's values;
//   - randomness: reseeded before every request;
//   - files: a guest cannot close or renumber its standard streams, the
//     only descriptors it has (see the WASI overrides in environ.go), and
//     the streams themselves point at the current request's;
//   - tables and segments: only modules whose code holds no instruction that
//     changes a table or drops an element segment are kept (Go modules have
//     none; keepsNoTableState decodes every function to know), and a module
//     with passive data segments is refused.
//
// An instance that failed in any way (a trap, an exit, a timeout, an output
// cap) is closed, never reused. What a guest can observe at the start of a
// request is therefore the same whether its instance is new or kept: the
// snapshot.

// maxDirtyPages bounds what a kept instance may have written: past it the
// whole memory is dropped back to the image with madvise, which costs page
// faults on the next request but returns the memory to the system.
const maxDirtyPages = 512 // 2MiB of 4KiB pages

// maxIdle bounds the kept instances of one module.
const maxIdle = 32

// stdio is what one request gives its instance: standard streams and the
// context its sleeps end with.
type stdio struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	ctx    context.Context
}

// instance is a reactor instance, serving one request at a time.
type instance struct {
	mod     api.Module
	handle  api.Function
	globals []api.MutableGlobal
	mem     *cowMemory
	cur     *stdio
}

type stdinProxy struct{ in *instance }

func (p stdinProxy) Read(b []byte) (int, error) {
	if p.in.cur == nil {
		return 0, io.EOF
	}
	return p.in.cur.stdin.Read(b)
}

type outProxy struct {
	in     *instance
	stderr bool
}

func (p outProxy) Write(b []byte) (int, error) {
	c := p.in.cur
	switch {
	case c == nil:
		return len(b), nil
	case p.stderr:
		return c.stderr.Write(b)
	default:
		return c.stdout.Write(b)
	}
}

// captureAllocator hands wazero a memory from the pool and remembers it.
type captureAllocator struct {
	pool *cowPool
	mem  *cowMemory
}

func (a *captureAllocator) Allocate(capacity, max uint64) experimental.LinearMemory {
	m := a.pool.Allocate(capacity, max)
	if cm, ok := m.(*cowMemory); ok {
		a.mem = cm
	}
	return m
}

// instances is the pool of kept instances of one reactor.
type instances struct {
	mu   sync.Mutex
	idle []*instance
	// reuse is false for modules outside what resetting in place covers.
	reuse bool
}

// serve runs one request in a kept or a new instance of the snapshot.
func (s *snapshot) serve(ctx context.Context, m *Module, io *stdio) error {
	inst, err := s.get(ctx, m)
	if err != nil {
		return err
	}
	if err := s.reseed(inst.mod.Memory()); err != nil {
		inst.mod.Close(context.Background())
		return err
	}
	inst.cur = io
	stopped := true
	var stop func() bool
	if m.fuel {
		stop = stopOnDone(ctx, inst.mod)
	}
	_, err = inst.handle.Call(ctx)
	if stop != nil {
		stopped = stop()
	}
	inst.cur = nil
	// A command that ends with proc_exit(0) succeeded, but its instance
	// is closed.
	exited := false
	var exit *sys.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == 0 {
		err, exited = nil, true
	}
	if err != nil || exited || !stopped || !s.pool.reuse || !s.reset(inst) {
		inst.mod.Close(context.Background())
		return err
	}
	s.pool.mu.Lock()
	if len(s.pool.idle) < maxIdle {
		s.pool.idle = append(s.pool.idle, inst)
		inst = nil
	}
	s.pool.mu.Unlock()
	if inst != nil {
		inst.mod.Close(context.Background())
	}
	return nil
}

// get returns a kept instance or a new one, set to the snapshot.
func (s *snapshot) get(ctx context.Context, m *Module) (*instance, error) {
	s.pool.mu.Lock()
	if n := len(s.pool.idle); n > 0 {
		inst := s.pool.idle[n-1]
		s.pool.idle = s.pool.idle[:n-1]
		s.pool.mu.Unlock()
		return inst, nil
	}
	s.pool.mu.Unlock()
	inst := &instance{}
	cfg := m.base.
		WithStdin(stdinProxy{inst}).
		WithStdout(outProxy{in: inst}).
		WithStderr(outProxy{in: inst, stderr: true}).
		WithNanosleep(func(ns int64) {
			if c := inst.cur; c != nil {
				sleep(c.ctx, ns)
			}
		})
	alloc := &captureAllocator{pool: s.memory}
	mod, err := m.rt.InstantiateModule(experimental.WithMemoryAllocator(ctx, alloc), m.compiled, cfg)
	if err != nil {
		return nil, err
	}
	inst.mod, inst.mem = mod, alloc.mem
	if inst.handle = mod.ExportedFunction(s.entry); inst.handle == nil {
		mod.Close(context.Background())
		return nil, errors.New("restore: no " + s.entry)
	}
	mem := mod.ExportedMemory("memory")
	if have := mem.Size() / pageSize; have < s.pages {
		if _, ok := mem.Grow(s.pages - have); !ok {
			mod.Close(context.Background())
			return nil, errors.New("restore: cannot grow memory to the snapshot's size")
		}
	}
	for _, name := range s.names {
		g, ok := mod.ExportedGlobal(name).(api.MutableGlobal)
		if !ok {
			mod.Close(context.Background())
			return nil, errors.New("restore: global " + name + " missing")
		}
		inst.globals = append(inst.globals, g)
	}
	s.setGlobals(inst)
	return inst, nil
}

func (s *snapshot) setGlobals(inst *instance) {
	for i, g := range inst.globals {
		g.Set(s.values[i])
	}
}

// reset restores a kept instance to the snapshot in place, or reports that
// it cannot be kept.
func (s *snapshot) reset(inst *instance) bool {
	if inst.mem == nil || inst.mod.Memory().Size() != s.pages*pageSize {
		return false
	}
	if !s.memory.restore(inst.mem) {
		return false
	}
	s.setGlobals(inst)
	return true
}

// close closes the kept instances.
func (p *instances) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, inst := range p.idle {
		inst.mod.Close(context.Background())
	}
	p.idle = nil
}
