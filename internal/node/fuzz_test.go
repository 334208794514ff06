package node

import (
	"bufio"
	"bytes"
	"fmt"
	"hash/crc32"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moatfn/moat/internal/api"
	"github.com/moatfn/moat/internal/auth"
	"github.com/moatfn/moat/internal/bundle"
	"github.com/moatfn/moat/internal/testwasm"
)

// FuzzRequest feeds raw HTTP bytes to a real node's handler: the perimeter
// must never panic, and nothing may reach the function (start an instance)
// without the function's key and a body that matches its schema.
func FuzzRequest(f *testing.F) {
	n := startNode(f, f.TempDir())
	dir := f.TempDir()
	os.WriteFile(filepath.Join(dir, "moat.yaml"), []byte(strings.Replace(kitchenManifest, "http: {auth: public}",
		"http: {auth: key, methods: [POST]}\ninput: {schema: s.json}", 1)), 0o644)
	os.WriteFile(filepath.Join(dir, "fn.wasm"), testwasm.Bytes(f, "kitchen"), 0o644)
	os.WriteFile(filepath.Join(dir, "s.json"), []byte(contactSchema), 0o644)
	b, err := bundle.Read(dir)
	if err != nil {
		f.Fatal(err)
	}
	if _, err := n.client.Deploy(f.Context(), b); err != nil {
		f.Fatal(err)
	}
	// The key exists, but the fuzzer never learns its token: whatever it
	// sends, no instance may start.
	if _, err := n.client.CreateKey(f.Context(), api.KeyRequest{Role: auth.RoleInvoker}); err != nil {
		f.Fatal(err)
	}
	handler := n.server.Handler
	valid := `{"name":"Carole","email":"carole@example.com"}`
	for _, seed := range []string{
		"POST /fn/kitchen/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 46\r\n\r\n" + valid,
		"POST /fn/kitchen/echo HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer moat_x_y\r\nContent-Length: 2\r\n\r\n{}",
		"GET /fn/kitchen HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /api/v1/functions HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=a\r\n\r\n--a--",
		"GET /fn/%2e%2e/api/v1/keys HTTP/1.1\r\nHost: x\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
		if err != nil {
			return
		}
		// Spread sources so that the failure limiter does not answer
		// everything with 429.
		req.RemoteAddr = fmt.Sprintf("192.0.2.%d:1234", crc32.ChecksumIEEE(raw)%250+1)
		before := n.InstancesStarted()
		w := httptest.NewRecorder()
		handler.ServeHTTP(w, req)
		if n.InstancesStarted() != before {
			t.Fatalf("an instance started for a request without the function's key:\n%q\n-> %d %s", raw, w.Code, w.Body)
		}
		if w.Code >= 500 && w.Code != http.StatusServiceUnavailable {
			t.Fatalf("%d for %q: %s", w.Code, raw, w.Body)
		}
	})
}
