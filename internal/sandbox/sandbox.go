// Package sandbox runs WebAssembly functions with wazero: every invocation in
// a fresh instance, with no files, no network, no host environment, a memory
// cap, a wall-clock timeout and caps on what it may write.
//
// Modules are compiled once, at deploy, in compiler mode, and the machine code
// is kept in a file cache so that a restarted node does not compile again.
// wazero fixes the memory cap per runtime, so the Runtime keeps one wazero
// runtime per distinct cap; they share the compilation cache.
package sandbox

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"
)

// ErrInvalidModule reports a module that Moat will not run.
var ErrInvalidModule = errors.New("invalid module")

// ErrGuestFailed reports a guest that trapped, panicked or exited non-zero.
var ErrGuestFailed = errors.New("function failed")

// LimitError reports which limit an invocation hit.
type LimitError struct {
	Limit string // "memory", "timeout", "response"
	Cap   string // the configured value, e.g. "64MiB"
}

func (e *LimitError) Error() string { return e.Limit + " limit " + e.Cap + " exceeded" }

const pageSize = 64 << 10

// Runtime compiles and runs modules. It is safe for concurrent use.
type Runtime struct {
	log   *slog.Logger
	cache wazero.CompilationCache

	mu       sync.Mutex
	runtimes map[runtimeKey]wazero.Runtime
	wasi     map[string]api.FunctionDefinition
	host     map[string]api.FunctionDefinition
	memory   *memoryPool
	started  atomic.Uint64
	// rewriteDir keeps commands' rewritten modules; empty keeps none.
	rewriteDir string
}

// Started returns how many instances the Runtime has started.
func (r *Runtime) Started() uint64 { return r.started.Load() }

// New returns a Runtime that keeps compiled code under cacheDir; an empty
// cacheDir keeps it in memory only.
func New(ctx context.Context, log *slog.Logger, cacheDir string) (*Runtime, error) {
	cache := wazero.NewCompilationCache()
	if cacheDir != "" {
		c, err := wazero.NewCompilationCacheWithDir(cacheDir)
		if err != nil {
			return nil, fmt.Errorf("compilation cache %s: %w", cacheDir, err)
		}
		cache = c
	}
	r := &Runtime{log: log.With("component", "sandbox"), cache: cache, runtimes: map[runtimeKey]wazero.Runtime{}, memory: newMemoryPool(64)}
	if cacheDir != "" {
		r.rewriteDir = filepath.Join(cacheDir, "rewritten")
	}
	// The WASI functions a guest may import: those wazero implements.
	rt, err := r.runtime(ctx, runtimeKey{pages: 1})
	if err != nil {
		return nil, err
	}
	r.wasi = rt.Module(wasi_snapshot_preview1.ModuleName).ExportedFunctionDefinitions()
	r.host = rt.Module(HostModule).ExportedFunctionDefinitions()
	return r, nil
}

// runtimeKey picks a wazero runtime: the memory cap, and whether modules
// stop on their loop instrumentation (interrupt.go) or need wazero's
// WithCloseOnContextDone.
type runtimeKey struct {
	pages        uint32
	instrumented bool
}

// runtime returns the wazero runtime for a key, creating it once.
func (r *Runtime) runtime(ctx context.Context, key runtimeKey) (wazero.Runtime, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if rt, ok := r.runtimes[key]; ok {
		return rt, nil
	}
	cfg := wazero.NewRuntimeConfigCompiler().
		WithCompilationCache(r.cache).
		WithMemoryLimitPages(key.pages).
		// Mandatory for a module without the loop instrumentation: else a
		// guest spinning in a loop is never stopped, and the node's next
		// garbage collection waits on it forever.
		WithCloseOnContextDone(!key.instrumented)
	rt := wazero.NewRuntimeWithConfig(ctx, cfg)
	if err := instantiateWASI(ctx, rt); err != nil {
		rt.Close(ctx)
		return nil, fmt.Errorf("wasi: %w", err)
	}
	if err := instantiateHost(ctx, rt); err != nil {
		rt.Close(ctx)
		return nil, fmt.Errorf("host module: %w", err)
	}
	r.runtimes[key] = rt
	return rt, nil
}

// Close releases every runtime and compiled module.
func (r *Runtime) Close(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var errs []error
	for _, rt := range r.runtimes {
		errs = append(errs, rt.Close(ctx))
	}
	r.runtimes = map[runtimeKey]wazero.Runtime{}
	errs = append(errs, r.cache.Close(ctx))
	r.memory.close()
	return errors.Join(errs...)
}

// Module is a compiled function ready to run. It is safe for concurrent use:
// every Run gets its own instance.
type Module struct {
	rt       wazero.Runtime
	compiled wazero.CompiledModule
	memory   int64
	pool     *memoryPool
	base     wazero.ModuleConfig
	started  *atomic.Uint64
	host     bool      // imports the moat host module
	snap     *snapshot // a reactor's initial state; nil for a command
	fuel     bool      // instrumented: stopped through its fuel global
}

// Compile validates wasm as a Moat function and compiles it with a memory
// cap of memory bytes (a multiple of 64KiB). It fails with ErrInvalidModule
// when wasm is not a module, is neither a WASI command (_start) nor a
// reactor (_initialize and moat_handle), imports anything but the WASI
// functions and the host module Moat provides, or needs more memory than
// the cap.
//
// A reactor is initialised here, once, with env (the declared environment)
// and served from that snapshot (docs/snapshots.md); an *InitError reports
// an initialisation that failed.
func (r *Runtime) Compile(ctx context.Context, wasm []byte, memory int64, env []string) (*Module, error) {
	return r.CompileInit(ctx, wasm, memory, env, nil)
}

// CompileInit is Compile for a reactor that reads initInput on its stdin
// during _initialize, at deploy: how one runtime module (the JavaScript
// runtime) is handed each function's script, and keeps it evaluated in
// the snapshot. A command ignores it.
func (r *Runtime) CompileInit(ctx context.Context, wasm []byte, memory int64, env []string, initInput []byte) (*Module, error) {
	if !bytes.HasPrefix(wasm, []byte("\x00asm")) {
		return nil, fmt.Errorf("%w: not WebAssembly (no \\0asm magic)", ErrInvalidModule)
	}
	if err := checkMemory(memory); err != nil {
		return nil, err
	}
	reactor := isReactor(wasm)
	var key string // a command's rewrite is kept under its module's SHA-256
	if !reactor {
		sum := sha256.Sum256(wasm)
		key = hex.EncodeToString(sum[:])
		if m, ok, err := r.CompileKept(ctx, key, memory); ok || err != nil {
			return m, err
		}
	}
	instrumented := false
	if out, err := instrument(wasm); err == nil {
		wasm, instrumented = out, true
	} else {
		r.log.WarnContext(ctx, "module not instrumented for cheap interruption; it runs with wazero's slower checks", slog.String("reason", err.Error()))
	}
	rt, err := r.runtime(ctx, runtimeKey{pages: uint32(memory / pageSize), instrumented: instrumented})
	if err != nil {
		return nil, err
	}
	var prep *prepared
	if reactor {
		if prep, err = prepareReactor(wasm); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidModule, err)
		}
		wasm = prep.wasm
	} else if p, err := prepareCommand(wasm, instrumented); err == nil {
		// A command that is not Go's (whose runtime always ends with
		// proc_exit, which closes the instance) can keep its instances
		// too: its "snapshot" is its state before _start.
		prep, wasm = p, p.wasm
	} else {
		// A Go command: its rewrite (instrumented, segments merged) is
		// kept, so that a restart reads it back rather than rewriting it,
		// a quarter of a second for a Go module.
		wasm = mergeData(wasm)
		if instrumented {
			r.keepRewritten(key, wasm)
		}
	}
	m, err := r.compiled(ctx, rt, wasm, memory, reactor, instrumented)
	if err != nil {
		return nil, err
	}
	switch {
	case prep != nil && reactor:
		if m.snap, err = takeSnapshot(ctx, rt, m.compiled, prep, env, memory, initInput); err != nil {
			m.compiled.Close(ctx)
			return nil, err
		}
		m.snap.pool.reuse = keepsNoTableState(prep.wasm)
	case prep != nil:
		if m.snap, err = initialState(ctx, rt, m.compiled, prep); err != nil {
			m.compiled.Close(ctx)
			return nil, err
		}
	}
	return m, nil
}

// CompileKept compiles the rewrite an earlier Compile kept of the Go command
// whose module has the SHA-256 sum (hex), without the module itself: what a
// restart does. ok is false when no rewrite is kept (or it is damaged,
// and then dropped); Compile the module then.
func (r *Runtime) CompileKept(ctx context.Context, sum string, memory int64) (m *Module, ok bool, err error) {
	if err := checkMemory(memory); err != nil {
		return nil, false, err
	}
	path := r.rewrittenPath(sum)
	if path == "" {
		return nil, false, nil
	}
	wasm, unmap, err := mapFile(path)
	if err != nil {
		return nil, false, nil // none kept
	}
	defer unmap() // wazero copies what it keeps of a module
	if !bytes.HasPrefix(wasm, []byte("\x00asm")) {
		os.Remove(path)
		return nil, false, nil
	}
	rt, err := r.runtime(ctx, runtimeKey{pages: uint32(memory / pageSize), instrumented: true})
	if err != nil {
		return nil, false, err
	}
	m, err = r.compiledMapped(ctx, rt, wasm, memory)
	var invalid *invalidError
	if errors.As(err, &invalid) && invalid.decode {
		// A damaged kept rewrite: drop it; the caller rewrites it.
		os.Remove(path)
		return nil, false, nil
	}
	return m, err == nil, err
}

// compiledMapped compiles a Go command's kept rewrite mapped from its file.
// A file cut short under the mapping faults on read: that is a damaged
// rewrite, not a crash of the node.
func (r *Runtime) compiledMapped(ctx context.Context, rt wazero.Runtime, wasm []byte, memory int64) (m *Module, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			if _, fault := p.(interface{ Addr() uintptr }); !fault {
				panic(p)
			}
			m, err = nil, &invalidError{err: fmt.Errorf("%w: kept rewrite unreadable", ErrInvalidModule), decode: true}
		}
	}()
	return r.compiled(ctx, rt, wasm, memory, false, true)
}

// invalidError is a module wazero refused (decode is set) or that fails
// Moat's own checks.
type invalidError struct {
	err    error
	decode bool
}

func (e *invalidError) Error() string { return e.err.Error() }
func (e *invalidError) Unwrap() error { return e.err }

// compiled compiles a prepared module in rt and checks its entry points and
// imports.
func (r *Runtime) compiled(ctx context.Context, rt wazero.Runtime, wasm []byte, memory int64, reactor, instrumented bool) (*Module, error) {
	compiled, err := rt.CompileModule(ctx, wasm)
	if err != nil {
		return nil, &invalidError{err: fmt.Errorf("%w: %w", ErrInvalidModule, err), decode: true}
	}
	host, err := r.check(compiled, reactor)
	if err != nil {
		compiled.Close(ctx)
		return nil, err
	}
	// What every instance shares is configured once; each With* copies.
	base := wazero.NewModuleConfig().
		WithName("").
		WithRandSource(rand.Reader).
		WithSysWalltime().
		WithSysNanotime()
	return &Module{rt: rt, compiled: compiled, memory: memory, pool: r.memory, base: base.WithStartFunctions(), started: &r.started, host: host, fuel: instrumented}, nil
}

func checkMemory(memory int64) error {
	if memory < pageSize || memory%pageSize != 0 || memory > 1<<32 {
		return fmt.Errorf("%w: memory cap %d is not a positive multiple of 64KiB up to 4GiB", ErrInvalidModule, memory)
	}
	return nil
}

// rewrittenPath returns where an earlier Compile keeps the rewrite of the
// module whose SHA-256 is sum, or "" for no valid sum or no cache.
func (r *Runtime) rewrittenPath(sum string) string {
	if r.rewriteDir == "" || len(sum) != 64 {
		return ""
	}
	if _, err := hex.DecodeString(sum); err != nil {
		return ""
	}
	return filepath.Join(r.rewriteDir, sum+".wasm")
}

// keepRewritten keeps a command's rewrite for the next Compile of the same
// module. The file is as trusted as the compiled code beside it.
func (r *Runtime) keepRewritten(key string, wasm []byte) {
	if r.rewriteDir == "" {
		return
	}
	if err := os.MkdirAll(r.rewriteDir, 0o700); err != nil {
		return
	}
	path := filepath.Join(r.rewriteDir, key+".wasm")
	tmp := fmt.Sprintf("%s.%d.tmp", path, os.Getpid())
	if err := os.WriteFile(tmp, wasm, 0o600); err != nil {
		return
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
	}
}

// isReactor tells a reactor module from a command by its exports, before
// anything is compiled: a module exporting _initialize and no _start.
func isReactor(wasm []byte) bool {
	sections, err := parseSections(wasm)
	if err != nil {
		return false
	}
	for _, s := range sections {
		if s.id == sectionExport {
			names := exportNames(wasm[s.start:s.end])
			return names[exportInitialize] && !names["_start"]
		}
	}
	return false
}

// exportNames lists the names an export section exports.
func exportNames(b []byte) map[string]bool {
	names := map[string]bool{}
	n, i, err := readU32(b, 0)
	if err != nil {
		return names
	}
	for range n {
		var l uint32
		if l, i, err = readU32(b, i); err != nil || uint64(i)+uint64(l) >= uint64(len(b)) {
			return names
		}
		names[string(b[i:i+int(l)])] = true
		if _, i, err = readU32(b, i+int(l)+1); err != nil {
			return names
		}
	}
	return names
}

// check enforces the function contract on a compiled module and reports
// whether it imports the host module.
func (r *Runtime) check(c wazero.CompiledModule, reactor bool) (bool, error) {
	entries := []string{"_start"}
	if reactor {
		entries = []string{exportInitialize, exportHandle}
	}
	for _, name := range entries {
		f, ok := c.ExportedFunctions()[name]
		if !ok && reactor {
			return false, fmt.Errorf("%w: a reactor module must export %s: register the handler with the SDK (fn.Handle)", ErrInvalidModule, name)
		}
		if !ok {
			return false, fmt.Errorf("%w: no _start export: build a WASI command (GOOS=wasip1 GOARCH=wasm) or a reactor with the SDK", ErrInvalidModule)
		}
		if len(f.ParamTypes()) != 0 || len(f.ResultTypes()) != 0 {
			return false, fmt.Errorf("%w: %s must take and return nothing", ErrInvalidModule, name)
		}
	}
	if _, ok := c.ExportedMemories()["memory"]; !ok {
		return false, fmt.Errorf("%w: no exported memory named \"memory\"", ErrInvalidModule)
	}
	if len(c.ImportedMemories()) != 0 {
		return false, fmt.Errorf("%w: imports a memory; a function must define its own", ErrInvalidModule)
	}
	host := false
	for _, imp := range c.ImportedFunctions() {
		mod, name, _ := imp.Import()
		var def api.FunctionDefinition
		switch mod {
		case wasi_snapshot_preview1.ModuleName:
			def = r.wasi[name]
		case HostModule:
			def, host = r.host[name], true
		}
		if def == nil {
			return false, fmt.Errorf("%w: imports %s.%s, which Moat does not provide", ErrInvalidModule, mod, name)
		}
		if !sameSignature(def, imp) {
			return false, fmt.Errorf("%w: imports %s.%s with the wrong signature", ErrInvalidModule, mod, name)
		}
	}
	return host, nil
}

func sameSignature(a, b api.FunctionDefinition) bool {
	return bytes.Equal(a.ParamTypes(), b.ParamTypes()) && bytes.Equal(a.ResultTypes(), b.ResultTypes())
}

// UsesHost reports whether the module imports the moat host module: one
// that does not can make no host call.
func (m *Module) UsesHost() bool { return m.host }

// Snapshot reports whether the module is a reactor served from a snapshot.
func (m *Module) Snapshot() bool { return m.snap != nil && m.snap.entry == exportHandle }

// Close releases the compiled code and the snapshot.
func (m *Module) Close(ctx context.Context) error {
	if m.snap != nil {
		m.snap.pool.close()
		m.snap.memory.close()
	}
	return m.compiled.Close(ctx)
}

// Request is one invocation's input.
type Request struct {
	Args     []string // argv; argv[0] is the function's name
	Env      []string // KEY=VALUE pairs, the whole environment
	Stdin    []byte
	Timeout  time.Duration
	MaxOut   int // cap on stdout bytes
	MaxLog   int // cap on stderr bytes kept; the rest is counted and dropped
	MaxLines int // cap on log lines kept
	// Host serves the guest's host calls; nil refuses them all.
	Host HostFunc
}

// Result is what an invocation produced. It is returned with an error too, so
// that a failed run's log can be kept.
type Result struct {
	Stdout   []byte
	Log      []string // stderr, one entry a line
	Dropped  int      // stderr bytes over the caps
	ExitCode uint32
	Took     time.Duration
}

// Run instantiates a fresh instance of m for req and runs its _start to the
// end. The instance, with all its memory, is gone when Run returns. Errors:
// *LimitError for the timeout, the memory cap or the output cap;
// ErrGuestFailed (wrapped, with the exit code or trap) for a failure;
// ctx.Err() when ctx ends first.
func (m *Module) Run(ctx context.Context, req *Request) (*Result, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, req.Timeout)
	defer cancel()
	// The output cap stops the guest through a cause of its own.
	outCtx, stopOut := context.WithCancelCause(ctx)
	defer stopOut(nil)

	out := &capWriter{max: req.MaxOut, stop: stopOut}
	logw := &lineWriter{maxBytes: req.MaxLog, maxLines: req.MaxLines}
	if m.host {
		outCtx = context.WithValue(outCtx, hostKey{}, &hostState{serve: req.Host, log: logw, env: req.Env})
	}
	m.started.Add(1)
	var err error
	if m.snap != nil {
		err = m.snap.serve(withEnviron(outCtx, newEnviron(req.Env)), m, &stdio{stdin: bytes.NewReader(req.Stdin), stdout: out, stderr: logw, ctx: outCtx})
	} else {
		cfg := m.base.
			WithArgs(req.Args...).
			WithStdin(bytes.NewReader(req.Stdin)).
			WithStdout(out).
			WithStderr(logw).
			WithNanosleep(func(ns int64) { sleep(outCtx, ns) })
		runCtx := withEnviron(experimental.WithMemoryAllocator(outCtx, m.pool), newEnviron(req.Env))
		err = m.runCommand(runCtx, cfg)
	}
	logw.flush()
	res := &Result{Stdout: out.buf.Bytes(), Log: logw.lines, Dropped: logw.dropped, Took: time.Since(start)}
	var exit *sys.ExitError
	if errors.As(err, &exit) {
		res.ExitCode = exit.ExitCode()
	}
	// A write past the cap fails the run whatever the guest did next:
	// one that stops on the write error and exits 0 would otherwise be
	// answered with its output cut short.
	if out.over {
		return res, &LimitError{Limit: "response", Cap: formatBytes(int64(req.MaxOut))}
	}
	if err == nil {
		return res, nil
	}
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded) && (exit == nil || exit.ExitCode() == sys.ExitCodeDeadlineExceeded):
		return res, &LimitError{Limit: "timeout", Cap: req.Timeout.String()}
	case ctx.Err() != nil:
		return res, ctx.Err()
	case outOfMemory(res):
		return res, &LimitError{Limit: "memory", Cap: formatBytes(m.memory)}
	case exit != nil:
		return res, fmt.Errorf("%w: exit code %d", ErrGuestFailed, exit.ExitCode())
	default:
		return res, fmt.Errorf("%w: %w", ErrGuestFailed, err)
	}
}

// runCommand instantiates a command module and runs its _start.
func (m *Module) runCommand(ctx context.Context, cfg wazero.ModuleConfig) error {
	mod, err := m.rt.InstantiateModule(ctx, m.compiled, cfg)
	if err != nil {
		return err
	}
	defer mod.Close(context.Background())
	if m.fuel {
		stop := stopOnDone(ctx, mod)
		defer stop()
	}
	_, err = mod.ExportedFunction("_start").Call(ctx)
	var exit *sys.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == 0 {
		return nil
	}
	return err
}

// stopOnDone stops mod's next loop iteration once ctx ends. The returned
// function cancels that and reports false if it came too late: the
// instance may have been told to stop, and must not be kept.
func stopOnDone(ctx context.Context, mod api.Module) func() bool {
	flag, ok := mod.ExportedGlobal(stopExport).(api.MutableGlobal)
	if !ok {
		return func() bool { return true }
	}
	return context.AfterFunc(ctx, func() { flag.Set(1) })
}

// sleep serves a guest's sleep (WASI poll_oneoff on a clock) but ends it when
// ctx ends: a guest sleeping for an hour is stopped by its timeout like a
// guest spinning in a loop.
func sleep(ctx context.Context, ns int64) {
	t := time.NewTimer(time.Duration(ns))
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// outOfMemory tells a Go guest that hit its memory cap from other failures:
// the Go runtime prints this, then exits with code 2 (a command) or aborts
// with a trap (a reactor).
func outOfMemory(res *Result) bool {
	for _, l := range res.Log {
		if strings.HasPrefix(l, "fatal error: out of memory") || strings.HasPrefix(l, "runtime: out of memory") {
			return true
		}
	}
	return false
}

func formatBytes(n int64) string {
	switch {
	case n%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", n>>30)
	case n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

var errOutputCap = errors.New("output cap")

// capWriter keeps up to max bytes and stops the guest when it writes more;
// over records that it did, for the run to fail however the guest ends.
type capWriter struct {
	buf  bytes.Buffer
	max  int
	over bool
	stop context.CancelCauseFunc
}

func (w *capWriter) Write(p []byte) (int, error) {
	if w.over || w.buf.Len()+len(p) > w.max {
		w.over = true
		w.stop(errOutputCap)
		return 0, errOutputCap
	}
	return w.buf.Write(p)
}

// lineWriter splits stderr into lines, keeping at most maxLines lines and
// maxBytes bytes; a line longer than maxLine is cut.
type lineWriter struct {
	partial  []byte
	lines    []string
	kept     int
	dropped  int
	maxBytes int
	maxLines int
}

const maxLine = 4096

func (w *lineWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.partial = append(w.partial, p...)
			if len(w.partial) > maxLine {
				w.keep(w.partial)
				w.partial = w.partial[:0]
			}
			break
		}
		w.partial = append(w.partial, p[:i]...)
		w.keep(w.partial)
		w.partial = w.partial[:0]
		p = p[i+1:]
	}
	return n, nil
}

func (w *lineWriter) keep(line []byte) {
	if len(line) > maxLine {
		w.dropped += len(line) - maxLine
		line = line[:maxLine]
	}
	if len(w.lines) >= w.maxLines || w.kept+len(line) > w.maxBytes {
		w.dropped += len(line) + 1
		return
	}
	w.kept += len(line)
	w.lines = append(w.lines, strings.ToValidUTF8(string(line), "\uFFFD"))
}

func (w *lineWriter) flush() {
	if len(w.partial) > 0 {
		w.keep(w.partial)
		w.partial = nil
	}
}
