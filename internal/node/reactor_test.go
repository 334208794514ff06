package node

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/moatfn/moat/internal/testwasm"
)

func examplesDir(parts ...string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(append([]string{filepath.Dir(file), "..", "..", "examples"}, parts...)...)
}

// TestReactorExample deploys examples/sum, a reactor built with the SDK,
// and calls it over HTTP as a user would: its answers, the schema in front
// of it, and concurrent requests served from the same snapshot.
func TestReactorExample(t *testing.T) {
	n := startNode(t, t.TempDir())
	dir := t.TempDir()
	for _, f := range []string{"moat.yaml", "input.json"} {
		b, err := os.ReadFile(examplesDir("sum", f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, f), b, 0o644)
	}
	wasm, err := os.ReadFile(testwasm.BuildDir(t, examplesDir("sum")))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "sum.wasm"), wasm, 0o644)
	deployDir(t, n, dir)

	send := func(body string) (int, string, http.Header) {
		resp, err := http.Post(n.URL()+"/fn/sum", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, body, h := send(`{"name":"moat","items":[1,2,3.5,` + string(rune('0'+i%10)) + `]}`)
			var got struct {
				Hello string  `json:"hello"`
				Sum   float64 `json:"sum"`
				Count int     `json:"count"`
			}
			if code != http.StatusOK || json.Unmarshal([]byte(body), &got) != nil {
				t.Errorf("status %d body %q", code, body)
				return
			}
			if got.Hello != "moat" || got.Count != 4 || got.Sum != 6.5+float64(i%10) || h.Get("Moat-Invocation-Id") == "" {
				t.Errorf("answer %+v, invocation %q", got, h.Get("Moat-Invocation-Id"))
			}
		}()
	}
	wg.Wait()
	// The schema refuses before any instance runs.
	if code, body, _ := send(`{"name":"moat","items":["rm -rf /"]}`); code != http.StatusBadRequest {
		t.Fatalf("bad input: %d %s", code, body)
	}
}

// TestReactorIsolationOverHTTP: a reactor's package state, seen through the
// gateway, is the snapshot's on every request, and a failed request
// (a panic, a loop stopped by its timeout) leaves nothing behind.
func TestReactorIsolationOverHTTP(t *testing.T) {
	n := startNode(t, t.TempDir())
	deploy(t, n, `name: reactor
module: fn.wasm
env: {GREETING: hi}
limits: {memory: 64MiB, timeout: 1s, concurrency: 8}
http: {auth: public, methods: [GET, POST]}
`, testwasm.Bytes(t, "reactor"))
	state := func() map[string]any { return getJSON(t, n.URL()+"/fn/reactor/state") }
	for i := range 3 {
		for _, path := range []string{"/panic", "/spin"} {
			resp, err := http.Get(n.URL() + "/fn/reactor" + path)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode < 500 || strings.Contains(string(b), "panicked") {
				t.Fatalf("%s: %d %s", path, resp.StatusCode, b)
			}
		}
		if got := state(); got["counter"] != 0.0 || got["tick"] != 1.0 || got["cached"] != false {
			t.Fatalf("round %d: state carried over: %v", i, got)
		}
	}
}

// TestReactorCapabilities: a reactor reaches KV and secrets only through
// its grants, exactly as a command does; a denial is audited.
func TestReactorCapabilities(t *testing.T) {
	n := startNode(t, t.TempDir())
	setSecret(t, n, "TOKEN", "s3cret-value", "granted")
	wasm := testwasm.Bytes(t, "reactor")
	base := "module: fn.wasm\nlimits: {memory: 64MiB, timeout: 5s}\nhttp: {auth: public}\n"
	deploy(t, n, "name: granted\n"+base+"permissions: {kv: {b: read-write}, secrets: [TOKEN]}\n", wasm)
	deploy(t, n, "name: bare\n"+base, wasm)
	get := func(fn, path string) map[string]any { return getJSON(t, n.URL()+"/fn/"+fn+path) }
	if got := get("granted", "/kv?v1"); got["value"] != "v1" || got["put"] != nil {
		t.Fatalf("granted kv: %v", got)
	}
	if got := get("granted", "/secret"); got["len"] != float64(len("s3cret-value")) {
		t.Fatalf("granted secret: %v", got)
	}
	for _, path := range []string{"/kv?x", "/secret"} {
		got := get("bare", path)
		if !strings.Contains(fmt.Sprint(got), "denied") {
			t.Fatalf("ungranted %s: %v", path, got)
		}
	}
	if recs := records(t, n, url.Values{"action": {"deny"}, "fn": {"bare"}}, 3); len(recs) < 3 {
		t.Fatalf("%d denials audited, want 3", len(recs))
	}
}

// getJSON GETs url and decodes its JSON object.
func getJSON(t *testing.T, url string) map[string]any {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	return got
}
