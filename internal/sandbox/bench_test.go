package sandbox

import (
	"context"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moatfn/moat/internal/testwasm"
)

func benchRun(b *testing.B, wasm []byte, memory int64) {
	r := newRuntime(b)
	m, err := r.Compile(context.Background(), wasm, memory, nil)
	if err != nil {
		b.Fatal(err)
	}
	req := request("/hello")
	req.Timeout = 10 * time.Second
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := m.Run(context.Background(), req); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkRunGo is one fresh instance of a Go net/http/cgi guest per op.
func BenchmarkRunGo(b *testing.B) { benchRun(b, testwasm.Bytes(b, "kitchen"), 64<<20) }

// BenchmarkRunMinimal is one fresh instance of the hand-written guest per op.
func BenchmarkRunMinimal(b *testing.B) { benchRun(b, testwasm.MinimalCGI(), 1<<20) }

// BenchmarkRunHelloExample runs examples/hello, the Go guest of bench/run.
func BenchmarkRunHelloExample(b *testing.B) {
	wasm, err := os.ReadFile("../../examples/hello/hello.wasm")
	if err != nil {
		b.Skip("examples/hello/hello.wasm not built: go run ./cmd/moat build examples/hello")
	}
	benchRun(b, wasm, 64<<20)
}

// BenchmarkRunReactor is one request of the reactor guest per op: a fresh
// instance restored from the snapshot, JSON in and out. It reports the
// private memory each instance ended with (pages it wrote).
func BenchmarkRunReactor(b *testing.B) {
	r := newRuntime(b)
	m := compileReactor(b, r, 64<<20)
	req := request("/json")
	req.Stdin = []byte(`{"name":"moat","items":[1,2,3.5,4,5,6,7,8,9,10]}`)
	req.Env = []string{"REQUEST_METHOD=POST", "PATH_INFO=/json", "SERVER_PROTOCOL=HTTP/1.1", "QUERY_STRING=",
		"SERVER_NAME=test", "SERVER_PORT=80", "CONTENT_TYPE=application/json", "CONTENT_LENGTH=" + strconv.Itoa(len(req.Stdin))}
	req.Timeout = 10 * time.Second
	var private, count atomic.Int64
	privateHook = func(n int64) { private.Add(n); count.Add(1) }
	defer func() { privateHook = nil }()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			res, err := m.Run(context.Background(), req)
			if err != nil {
				b.Fatal(err, res.Log)
			}
			if !strings.Contains(string(res.Stdout), `"sum":55.5`) {
				b.Fatalf("answer %q", res.Stdout)
			}
		}
	})
	b.StopTimer()
	if n := count.Load(); n > 0 {
		b.ReportMetric(float64(private.Load())/float64(n), "private-B/op")
	}
}

// BenchmarkReactorInstanceMemory holds 32 reactor instances at once, each
// having served a request, and reports what one costs: host-b/instance is
// the Go heap wazero's instance takes, private-B/instance the guest memory
// written (private to the process; the rest of the snapshot is shared).
func BenchmarkReactorInstanceMemory(b *testing.B) {
	r := newRuntime(b)
	m := compileReactor(b, r, 64<<20)
	const n = 32
	for range b.N {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		insts := make([]*instance, 0, n)
		var private int64
		for range n {
			inst, err := m.snap.get(context.Background(), m)
			if err != nil {
				b.Fatal(err)
			}
			inst.cur = &stdio{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard, ctx: context.Background()}
			ctx := context.WithValue(context.Background(), hostKey{}, &hostState{log: &lineWriter{maxBytes: 1 << 10, maxLines: 10}, env: request("/state").Env})
			if _, err := inst.handle.Call(ctx); err != nil {
				b.Fatal(err)
			}
			private += privateBytes(inst.mem.buf[:inst.mem.used])
			insts = append(insts, inst)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "host-B/instance")
		b.ReportMetric(float64(private)/n, "private-B/instance")
		for _, inst := range insts {
			inst.mod.Close(context.Background())
		}
	}
}

// BenchmarkCompileCached is the compile a restart pays for the Go example:
// a new Runtime over a cache directory that already holds the compiled code
// and the rewritten module.
func BenchmarkCompileCached(b *testing.B) {
	wasm, err := os.ReadFile("../../examples/hello/hello.wasm")
	if err != nil {
		b.Skip("examples/hello/hello.wasm not built: go run ./cmd/moat build examples/hello")
	}
	ctx := context.Background()
	dir := b.TempDir()
	compile := func() {
		r, err := New(ctx, slog.New(slog.DiscardHandler), dir)
		if err != nil {
			b.Fatal(err)
		}
		m, err := r.Compile(ctx, wasm, 64<<20, nil)
		if err != nil {
			b.Fatal(err)
		}
		_ = m
		r.Close(ctx)
	}
	compile() // fills the caches
	b.ResetTimer()
	for b.Loop() {
		compile()
	}
}
