package node

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/moatfn/moat/internal/testwasm"
)

// BenchmarkGatewayMinimal is the node's own cost per invocation: the whole
// handler (lookup, admission, CGI, a fresh instance, response) for the
// smallest guest, without the network.
func BenchmarkGatewayMinimal(b *testing.B) {
	n := startNode(b, b.TempDir())
	deploy(b, n, "name: minimal\nmodule: fn.wasm\nlimits: {memory: 1MiB, concurrency: 64}\nhttp: {auth: public}\n", testwasm.MinimalCGI())
	h := n.server.Handler
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest("GET", "/fn/minimal", nil))
			if w.Code != http.StatusOK {
				b.Fatalf("status %d: %s", w.Code, w.Body)
			}
		}
	})
}
