package sandbox

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moatfn/moat/internal/testwasm"
	"github.com/tetratelabs/wazero"
)

// TestSpinStopped: a guest spinning in a loop ends at its timeout, whether
// Moat could instrument it (the plain loop) or not (a loop with a SIMD
// instruction, left to wazero's own checks).
func TestSpinStopped(t *testing.T) {
	r := newRuntime(t)
	for name, wasm := range map[string][]byte{"instrumented": testwasm.Spin(), "not instrumented": testwasm.SpinSIMD()} {
		t.Run(name, func(t *testing.T) {
			m, err := r.Compile(context.Background(), wasm, 1<<20, nil)
			if err != nil {
				t.Fatal(err)
			}
			if want := name == "instrumented"; m.fuel != want {
				t.Fatalf("instrumented = %v, want %v", m.fuel, want)
			}
			req := request("/")
			req.Timeout = 100 * time.Millisecond
			start := time.Now()
			_, err = m.Run(context.Background(), req)
			var limit *LimitError
			if !errors.As(err, &limit) || limit.Limit != "timeout" {
				t.Fatalf("err = %v, want the timeout", err)
			}
			if took := time.Since(start); took > 2*time.Second {
				t.Fatalf("stopped after %v", took)
			}
		})
	}
}

func TestInstrumentRefuses(t *testing.T) {
	for name, wasm := range map[string][]byte{
		"simd":      testwasm.SpinSIMD(),
		"truncated": testwasm.Spin()[:30],
		"not wasm":  []byte("hello"),
	} {
		if _, err := instrument(wasm); err == nil {
			t.Errorf("%s: instrumented", name)
		}
	}
}

// validates reports whether wazero accepts wasm as a module.
func validates(t *testing.T, rt wazero.Runtime, wasm []byte) bool {
	c, err := rt.CompileModule(context.Background(), wasm)
	if err != nil {
		return false
	}
	c.Close(context.Background())
	return true
}

// FuzzInstrument: instrument never panics, and what it makes of a valid
// module is a valid module again, with the check in every loop.
func FuzzInstrument(f *testing.F) {
	f.Add(testwasm.Spin())
	f.Add(testwasm.SpinSIMD())
	f.Add(testwasm.MinimalCGI())
	f.Add(testwasm.Trap())
	rt := wazero.NewRuntimeWithConfig(context.Background(), wazero.NewRuntimeConfigInterpreter())
	f.Cleanup(func() { rt.Close(context.Background()) })
	f.Fuzz(func(t *testing.T, wasm []byte) {
		out, err := instrument(wasm)
		if err != nil {
			return
		}
		if validates(t, rt, wasm) && !validates(t, rt, out) {
			t.Fatalf("instrumented module invalid: in %x out %x", wasm, out)
		}
		keepsNoTableState(out)
	})
}

// FuzzPrepareReactor: the reactor rewrite never panics, and a valid module
// stays valid.
func FuzzPrepareReactor(f *testing.F) {
	f.Add(testwasm.MinimalCGI())
	f.Add(testwasm.Spin())
	f.Add(testwasm.NoStart())
	rt := wazero.NewRuntimeWithConfig(context.Background(), wazero.NewRuntimeConfigInterpreter())
	f.Cleanup(func() { rt.Close(context.Background()) })
	f.Fuzz(func(t *testing.T, wasm []byte) {
		isReactor(wasm)
		p, err := prepareReactor(wasm)
		if err != nil {
			return
		}
		if validates(t, rt, wasm) && !validates(t, rt, p.wasm) {
			t.Fatalf("prepared module invalid: in %x out %x", wasm, p.wasm)
		}
	})
}

// FuzzFindRNGs: the scan of a memory image for random states never panics
// and finds nothing in bytes that hold none.
func FuzzFindRNGs(f *testing.F) {
	f.Add(make([]byte, 4096))
	f.Fuzz(func(t *testing.T, image []byte) {
		for _, off := range findRNGs(image) {
			if int(off)+rngSize > len(image) {
				t.Fatalf("state at %d past the image", off)
			}
		}
	})
}

// TestRewriteKept: a command's rewrite is kept under the cache directory
// and read back by the next Compile; a damaged file is rewritten.
func TestRewriteKept(t *testing.T) {
	r := newRuntime(t)
	wasm := testwasm.Bytes(t, "kitchen")
	if _, err := r.Compile(context.Background(), wasm, 64<<20, nil); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(wasm)
	key := hex.EncodeToString(sum[:])
	kept := readKept(r, key)
	if kept == nil {
		t.Fatal("rewrite not kept")
	}
	if info, err := os.Stat(filepath.Join(r.rewriteDir, key+".wasm")); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("kept file: %v %v", info, err)
	}
	for _, damage := range [][]byte{[]byte("garbage"), kept[:len(kept)/2], nil} {
		os.WriteFile(filepath.Join(r.rewriteDir, key+".wasm"), damage, 0o600)
		m, err := r.Compile(context.Background(), wasm, 64<<20, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.Run(context.Background(), request("/hello")); err != nil {
			t.Fatal(err)
		}
		if again := readKept(r, key); !bytes.Equal(again, kept) {
			t.Fatal("damaged rewrite not replaced")
		}
	}
}

// TestCompileKept: a restarted node compiles a Go command from its kept
// rewrite, by the module's SHA-256 alone; an unknown, malformed or damaged
// one reports not kept, and the damaged file is dropped.
func TestCompileKept(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	wasm := testwasm.Bytes(t, "kitchen")
	sum := sha256.Sum256(wasm)
	key := hex.EncodeToString(sum[:])
	open := func() *Runtime {
		r, err := New(ctx, slog.New(slog.DiscardHandler), dir)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close(ctx) })
		return r
	}
	if _, ok, err := open().CompileKept(ctx, key, 64<<20); ok || err != nil {
		t.Fatalf("nothing kept yet: ok=%v err=%v", ok, err)
	}
	if _, err := open().Compile(ctx, wasm, 64<<20, nil); err != nil {
		t.Fatal(err)
	}
	r := open()
	m, ok, err := r.CompileKept(ctx, key, 64<<20)
	if !ok || err != nil {
		t.Fatalf("kept rewrite not compiled: ok=%v err=%v", ok, err)
	}
	res, err := m.Run(ctx, request("/hello"))
	if err != nil || res.ExitCode != 0 || !bytes.Contains(res.Stdout, []byte("hello")) {
		t.Fatalf("run: %v %+v", err, res)
	}
	// Failures format stack traces from what wazero kept of the module: all
	// of it copied, none of it in the mapping, which is gone by now.
	for _, path := range []string{"/panic", "/loop", "/exit3", "/alloc"} {
		req := request(path)
		req.Timeout = 500 * time.Millisecond
		if _, err := m.Run(ctx, req); err == nil {
			t.Fatalf("%s succeeded", path)
		}
	}
	if _, _, err := r.CompileKept(ctx, key, 1000); !errors.Is(err, ErrInvalidModule) {
		t.Fatalf("bad memory cap: %v", err)
	}
	for _, bad := range []string{"", "../../../etc/passwd", strings.Repeat("g", 64), strings.Repeat("0", 64)} {
		if _, ok, err := r.CompileKept(ctx, bad, 64<<20); ok || err != nil {
			t.Fatalf("%q: ok=%v err=%v", bad, ok, err)
		}
	}
	path := filepath.Join(dir, "rewritten", key+".wasm")
	if err := os.WriteFile(path, []byte("\x00asm\x01\x00\x00\x00\x0a\xff"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := open().CompileKept(ctx, key, 64<<20); ok || err != nil {
		t.Fatalf("damaged: ok=%v err=%v", ok, err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("damaged rewrite kept: %v", err)
	}
}

// readKept returns the rewrite r keeps for the module with SHA-256 key.
func readKept(r *Runtime, key string) []byte {
	path := r.rewrittenPath(key)
	if path == "" {
		return nil
	}
	b, _ := os.ReadFile(path)
	return b
}
