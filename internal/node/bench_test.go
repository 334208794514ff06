package node

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moatfn/moat/internal/testwasm"
)

// BenchmarkGatewayMinimal is the node's own cost per invocation: the whole
// handler (lookup, admission, CGI, a fresh instance, response) for the
// smallest guest, without the network.
func BenchmarkGatewayMinimal(b *testing.B) {
	benchHandler(b, "name: minimal\nmodule: fn.wasm\nlimits: {memory: 1MiB, concurrency: 64}\nhttp: {auth: public}\n",
		"/fn/minimal", http.StatusOK)
}

// benchHandler times the node's whole handler, without the network, on GET
// path, with the minimal guest deployed under manifest; every answer must
// be want. One request goes first, to load the function (and spend a
// rate's one token).
func benchHandler(b *testing.B, manifest, path string, want int) {
	n := startNode(b, b.TempDir())
	deploy(b, n, manifest, testwasm.MinimalCGI())
	h := n.server.Handler
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", path, nil))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
			if w.Code != want {
				b.Fatalf("status %d: %s", w.Code, w.Body)
			}
		}
	})
}

// BenchmarkHostCall measures what one host call costs a guest, from the
// guest's side: an invocation makes 1000 calls, and the cost of the same
// invocation making none is taken off. bare-kv-get is the same KV read made
// directly by Go code in the node, the baseline of the ratio.
func BenchmarkHostCall(b *testing.B) {
	n := startNodeConfig(b, Config{DataDir: b.TempDir(), NoSync: true})
	ctx := context.Background()
	setSecret(b, n, "API_KEY", "key-0123456789abcdef", "caps")
	deploy(b, n, capsManifest("caps", "permissions: {kv: {data: read-write}, secrets: [API_KEY]}\n"), testwasm.Bytes(b, "caps"))
	value := strings.Repeat("v", 100)
	h := n.server.Handler
	call := func(target string) {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "/fn/caps"+target, nil))
		if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"ok":true`) {
			b.Fatalf("%s: %d %s", target, w.Code, w.Body)
		}
	}
	call("/kv/put?b=data&k=item&v=" + value)
	const calls = 1000
	perCall := func(b *testing.B, target string) {
		// The invocation without calls, measured first: the median of 21.
		base := make([]time.Duration, 21)
		for i := range base {
			start := time.Now()
			call(strings.Replace(target, "n=1000", "n=0", 1))
			base[i] = time.Since(start)
		}
		slices.Sort(base)
		b.ResetTimer()
		start := time.Now()
		for b.Loop() {
			call(target)
		}
		per := (time.Since(start)/time.Duration(b.N) - base[len(base)/2]) / calls
		b.ReportMetric(float64(per.Nanoseconds()), "ns/call")
	}
	b.Run("nop", func(b *testing.B) { perCall(b, "/loop?op=nop&n=1000") })
	b.Run("kv-get-100B", func(b *testing.B) { perCall(b, "/loop?op=kvget&b=data&k=item&n=1000") })
	b.Run("secret", func(b *testing.B) { perCall(b, "/loop?op=secret&name=API_KEY&n=1000") })
	b.Run("bare-kv-get-100B", func(b *testing.B) {
		kv, err := n.store.KV(ctx, "bench_bare", 1)
		if err != nil {
			b.Fatal(err)
		}
		kv.Put(ctx, "item", []byte(value))
		b.ResetTimer()
		for b.Loop() {
			if _, err := kv.Get(ctx, "item"); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/call")
	})
}

// BenchmarkGatewayReactor is the node's cost per invocation of a Go
// reactor: the reactor guest's JSON path through the whole handler.
func BenchmarkGatewayReactor(b *testing.B) {
	n := startNode(b, b.TempDir())
	deploy(b, n, "name: reactor\nmodule: fn.wasm\nlimits: {memory: 64MiB, concurrency: 64}\nhttp: {auth: public, methods: [POST]}\n", testwasm.Bytes(b, "reactor"))
	h := n.server.Handler
	body := `{"name":"moat","items":[1,2,3.5,4,5,6,7,8,9,10]}`
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			w := httptest.NewRecorder()
			r := httptest.NewRequest("POST", "/fn/reactor/json", strings.NewReader(body))
			r.Header.Set("Content-Type", "application/json")
			h.ServeHTTP(w, r)
			if w.Code != http.StatusOK {
				b.Fatalf("status %d: %s", w.Code, w.Body)
			}
		}
	})
}
