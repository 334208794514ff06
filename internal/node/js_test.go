package node

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moatfn/moat/internal/audit"
)

// notesJS is a JavaScript function as moat build bundles one: the module's
// exports in __moat_module.
const notesJS = `var __moat_module = (() => {
let served = 0;
return { default: {
  async fetch(request, env) {
    served++;
    const url = new URL(request.url);
    const k = url.searchParams.get("k");
    switch (url.pathname) {
    case "/put":
      await env.KV.notes.put(k, await request.text());
      return new Response(null, { status: 204 });
    case "/get": {
      const v = await env.KV.notes.get(k);
      return v === null ? new Response("none", { status: 404 }) : new Response(v);
    }
    case "/other":
      try { await env.KV.other.get("x"); return new Response("read other"); }
      catch (e) { return Response.json({ refused: e.message, code: e.code }, { status: 403 }); }
    case "/secret":
      try { return new Response(await env.secrets.get("NOT_GRANTED")); }
      catch (e) { return Response.json({ refused: e.message, code: e.code }, { status: 403 }); }
    case "/served":
      return Response.json({ served, user: request.headers.get("x-user") });
    }
    return new Response("not found", { status: 404 });
  }
}};
})();
`

const notesManifest = `name: notes-js
module: index.js
owner: web-team
http: {auth: public, methods: [GET, POST]}
limits: {memory: 64MiB, timeout: 5s, rate_per_caller: 100/s}
budget: {invocations: 1000/day}
permissions: {kv: {notes: read-write}}
`

// TestJavaScriptFunction deploys a JavaScript bundle through the API and
// serves it over HTTP: fresh state per request, its KV grant, and a
// missing grant refused and audited.
func TestJavaScriptFunction(t *testing.T) {
	data := t.TempDir()
	n := startNodeConfig(t, Config{DataDir: data, NoSync: true})
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "moat.yaml"), []byte(notesManifest), 0o644)
	os.WriteFile(filepath.Join(dir, "index.js"), []byte(notesJS), 0o644)
	deployDir(t, n, dir)
	do := func(method, path, body string) (int, string) {
		t.Helper()
		return callNotes(n, method, path, body)
	}

	if code, body := do("POST", "/put?k=a", "first note"); code != 204 {
		t.Fatalf("put: %d %s", code, body)
	}
	if code, body := do("GET", "/get?k=a", ""); code != 200 || body != "first note" {
		t.Fatalf("get: %d %s", code, body)
	}
	if code, _ := do("GET", "/get?k=none", ""); code != 404 {
		t.Fatalf("get of a missing key: %d", code)
	}
	for range 3 {
		if code, body := do("GET", "/served", ""); code != 200 || !strings.Contains(body, `"served":1`) {
			t.Fatalf("state carried over: %d %s", code, body)
		}
	}
	for _, p := range []string{"/other", "/secret"} {
		if code, body := do("GET", p, ""); code != 403 || !strings.Contains(body, `"code":"denied"`) {
			t.Fatalf("%s: %d %s", p, code, body)
		}
	}
	auditHas(t, n, url.Values{"action": {"deny"}, "fn": {"notes-js"}}, func(r audit.Record) bool { return r.Capability == "kv.get" && strings.HasPrefix(r.Resource, "other") })
	// The inventory is the runtime's: goja and the Go toolchain that built it.
	sbom, err := n.client.SBOM(context.Background(), "notes-js")
	if err != nil || !strings.Contains(string(sbom), "github.com/dop251/goja") {
		t.Fatalf("sbom: %v %.300s", err, sbom)
	}
	// A restart loads it from the store and initialises it again.
	n.stop()
	n = startNodeConfig(t, Config{DataDir: data, NoSync: true})
	if code, body := do("GET", "/get?k=a", ""); code != 200 || body != "first note" {
		t.Fatalf("after a restart: %d %s", code, body)
	}
}

func callNotes(n *testNode, method, path, body string) (int, string) {
	req, _ := http.NewRequest(method, n.URL()+"/fn/notes-js"+path, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
