package sandbox

import (
	"context"
	"os"
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
