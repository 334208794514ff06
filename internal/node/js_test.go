package node

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moatfn/moat/internal/api"
	"github.com/moatfn/moat/internal/audit"
	"github.com/moatfn/moat/internal/auth"
	"github.com/moatfn/moat/internal/bundle"
	"github.com/moatfn/moat/internal/testwasm"
)

// notesJS is a JavaScript function as moat build bundles one: the module's
// exports in __moat_module.
const notesJS = `var __moat_module = (() => {
let served = 0;
return { default: {
  async fetch(request, env) {
    served++;
    if (request.headers.get("ce-type")) {
      await env.KV.notes.put("event", JSON.stringify({ type: request.headers.get("ce-type"), id: request.headers.get("ce-id"), data: await request.json() }));
      return new Response(null, { status: 204 });
    }
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
    case "/obj/put":
      return Response.json(await env.objects.files.put(k, await request.text(), { contentType: "text/plain" }));
    case "/obj/get": {
      const o = await env.objects.files.get(k);
      if (o === null) return new Response("none", { status: 404 });
      const listed = await env.objects.files.list("notes/");
      return Response.json({ text: await o.text(), size: o.size, type: o.contentType, digest: o.digest, listed: listed.objects.map((x) => x.name) });
    }
    case "/obj/bad":
      try { await env.objects.files.put("../" + k, "x"); return new Response("stored"); }
      catch (e) { return Response.json({ refused: e.message, code: e.code }, { status: 400 }); }
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
permissions: {kv: {notes: read-write}, objects: {files: read-write}}
triggers:
  - queue: {subject: notes.added}
`

// TestJavaScriptFunction deploys a JavaScript bundle through the API and
// serves it over HTTP: fresh state per request, its KV grant, and a
// missing grant refused and audited.
func TestJavaScriptFunction(t *testing.T) {
	data := jsData(t)
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
	// Object buckets, whole objects at a time.
	if code, body := do("POST", "/obj/put?k=notes/one.txt", "an object note"); code != 200 || !strings.Contains(body, `"size":14`) {
		t.Fatalf("object put: %d %s", code, body)
	}
	if code, body := do("GET", "/obj/get?k=notes/one.txt", ""); code != 200 || !strings.Contains(body, `"text":"an object note"`) ||
		!strings.Contains(body, `"type":"text/plain"`) || !strings.Contains(body, `"listed":["notes/one.txt"]`) || !strings.Contains(body, `"digest":"sha-256:`) {
		t.Fatalf("object get: %d %s", code, body)
	}
	if code, _ := do("GET", "/obj/get?k=notes/none", ""); code != 404 {
		t.Fatalf("object get of nothing: %d", code)
	}
	if code, body := do("GET", "/obj/bad?k=x", ""); code != 400 || !strings.Contains(body, `"code":"invalid"`) {
		t.Fatalf("object put of ../x: %d %s", code, body)
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
	// A CloudEvent arrives as a Request with its ce-* headers.
	pub, err := n.client.Publish(context.Background(), "notes.added", http.Header{"Content-Type": {"application/json"}, "Ce-Type": {"note.added"}}, []byte(`{"k":"b"}`))
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		code, body := do("GET", "/get?k=event", "")
		if code == 200 {
			if !strings.Contains(body, `"type":"note.added"`) || !strings.Contains(body, `"id":"`+pub.ID+`"`) || !strings.Contains(body, `"data":{"k":"b"}`) {
				t.Fatalf("the event as the function saw it: %s", body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the event was not handled")
		}
	}
	// The inventory is the runtime's: goja and the Go toolchain that built it.
	sbom, err := n.client.SBOM(context.Background(), "notes-js")
	if err != nil || !strings.Contains(string(sbom), "github.com/dop251/goja") {
		t.Fatalf("sbom: %v %.300s", err, sbom)
	}
	t.Run("isolation", func(t *testing.T) { testJavaScriptIsolation(t, n) })
	// A restart loads it from the store and initialises it again.
	n.stop()
	n = startNodeConfig(t, Config{DataDir: data, NoSync: true})
	if code, body := do("GET", "/get?k=a", ""); code != 200 || body != "first note" {
		t.Fatalf("after a restart: %d %s", code, body)
	}
}

// jsData returns a data directory whose compilation cache the
// JavaScript tests share (testwasm.ShareCompileCache).
func jsData(t *testing.T) string {
	t.Helper()
	data := t.TempDir()
	testwasm.ShareCompileCache(t, data)
	return data
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

// TestJavaScriptReachesOut: fetch to the egress grant only (TLS checked),
// env.call to a function it may invoke, env.publish on its subjects; each
// refusal a rejected promise.
func TestJavaScriptReachesOut(t *testing.T) {
	ca := newTestCA(t)
	mux := http.NewServeMux()
	mux.HandleFunc("/ok/rates", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Seen-Method", r.Method)
		w.Header().Set("X-Seen-Type", r.Header.Get("Content-Type"))
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, `{"eur": 1.1, "got": %q, "auth": %q}`, b, r.Header.Get("Authorization"))
	})
	api := ca.server(t, mux)
	data := jsData(t)
	caFile := filepath.Join(data, "egress-ca.pem")
	os.WriteFile(caFile, ca.pem, 0o600)
	n := startNodeConfig(t, Config{DataDir: data, NoSync: true, EgressCAFile: caFile, EgressAllow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	deploy(t, n, strings.Replace(strings.Replace(kitchenManifest, "name: kitchen", "name: callee", 1), "http: {auth: public}", "http: {auth: internal, callers: [reach-js]}", 1), testwasm.Bytes(t, "kitchen"))
	deploy(t, n, sinkManifest, testwasm.Bytes(t, "caps"))
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "moat.yaml"), []byte(fmt.Sprintf(`name: reach-js
module: index.js
http: {auth: public}
permissions: {egress: ["%s/ok/"], invoke: [callee], publish: [orders.created]}
`, api.URL)), 0o644)
	os.WriteFile(filepath.Join(dir, "index.js"), []byte(`var __moat_module = (() => ({ default: {
  async fetch(request, env) {
    const u = new URL(request.url);
    const base = u.searchParams.get("api");
    const out = {};
    const r = await fetch(base + "/ok/rates", { method: "POST", body: "hi", headers: { authorization: "Bearer x" } });
    out.fetch = [r.status, r.headers.get("x-seen-method"), await r.json()];
    const fd = new FormData(); fd.append("a", "1");
    const f = await fetch(base + "/ok/rates", { method: "POST", body: fd });
    out.form = [f.headers.get("x-seen-type"), (await f.json()).got];
    for (const [k, url] of [["outside", base + "/other"], ["plain", "http://example.com/"], ["metadata", "https://169.254.169.254/latest/"]]) {
      try { await fetch(url); out[k] = "reached"; } catch (e) { out[k] = e.code || e.message; }
    }
    const c = await env.call("callee", "/hello?name=js");
    out.call = [c.status, await c.text()];
    try { await env.call("notgranted", "/"); out.callOther = "reached"; } catch (e) { out.callOther = e.code; }
    out.published = typeof (await env.publish("orders.created", { mode: "ok" })) === "string";
    try { await env.publish("orders.deleted", "x"); out.publishOther = "published"; } catch (e) { out.publishOther = e.code; }
    return Response.json(out);
  }
}}))();
`), 0o644)
	deployDir(t, n, dir)
	resp, err := http.Get(n.URL() + "/fn/reach-js/?api=" + url.QueryEscape(api.URL))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got map[string]any
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	f, _ := got["fetch"].([]any)
	if len(f) != 3 || f[0] != 200.0 || f[1] != "POST" || !strings.Contains(fmt.Sprint(f[2]), "got:hi") || !strings.Contains(fmt.Sprint(f[2]), "auth:Bearer x") {
		t.Errorf("fetch: %v", got["fetch"])
	}
	// A FormData body goes out with the content type naming its boundary.
	if form, _ := got["form"].([]any); len(form) != 2 || !strings.HasPrefix(fmt.Sprint(form[0]), "multipart/form-data; boundary=") ||
		!strings.Contains(fmt.Sprint(form[1]), strings.TrimPrefix(fmt.Sprint(form[0]), "multipart/form-data; boundary=")) {
		t.Errorf("form: %v", got["form"])
	}
	for _, k := range []string{"outside", "plain", "metadata", "callOther", "publishOther"} {
		if got[k] != "denied" {
			t.Errorf("%s: %v, want denied", k, got[k])
		}
	}
	if c, _ := got["call"].([]any); len(c) != 2 || c[0] != 200.0 || c[1] != "hello, js\n" {
		t.Errorf("call: %v", got["call"])
	}
	if got["published"] != true {
		t.Errorf("publish: %v", got["published"])
	}
}

// TestJavaScriptWithNpm: the widget story's inventory-admin in JavaScript,
// with lodash from npm (scripts/npm-examples installs it from the committed
// lock file), bundled, deployed with its lock file inventoried; the same
// function pinned to a lodash with an advisory is refused at deploy,
// naming the advisory and the version to move to.
func TestJavaScriptWithNpm(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	if out, err := exec.Command("bash", filepath.Join(root, "scripts", "npm-examples")).CombinedOutput(); err != nil {
		t.Fatalf("scripts/npm-examples: %v\n%s", err, out)
	}
	ctx := context.Background()
	n := startNodeConfig(t, Config{DataDir: jsData(t), NoSync: true})
	if err := n.client.ImportVulnDB(ctx, osvFile(t, "npm/all.zip"), nil); err != nil {
		t.Fatal(err)
	}
	// A copy, so that the build writes nothing into the checkout.
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(filepath.Join(root, "examples", "inventory-js"))); err != nil {
		t.Fatal(err)
	}
	if _, err := bundle.Build(ctx, dir); err != nil {
		t.Fatal(err)
	}
	deployDir(t, n, dir)
	key, err := n.client.CreateKey(ctx, api.KeyRequest{Role: auth.RoleInvoker, Functions: []string{"inventory-js"}})
	if err != nil {
		t.Fatal(err)
	}
	do := func(method, path, body string) (int, string) {
		req, _ := http.NewRequest(method, n.URL()+"/fn/inventory-js"+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := do("PUT", "/blue/big", `{"stock":5,"price":"12.50 EUR"}`); code != 204 {
		t.Fatalf("put: %d %s", code, body)
	}
	for _, bad := range []string{`{"stock":-1,"price":"x"}`, `{"stock":1.5,"price":"x"}`, `{"stock":1,"price":"x","__proto__":{"admin":true}}`, `not json`, `[]`} {
		if code, _ := do("PUT", "/blue/big", bad); code != 400 {
			t.Errorf("put %s: %d", bad, code)
		}
	}
	if code, _ := do("PUT", "/purple/big", `{"stock":1,"price":"x"}`); code != 404 {
		t.Errorf("an unknown item: %d", code)
	}
	if code, body := do("GET", "/", ""); code != 200 || body != `{"blue/big":{"stock":5,"price":"12.50 EUR"}}` {
		t.Fatalf("get: %d %s", code, body)
	}
	sbom, err := n.client.SBOM(ctx, "inventory-js")
	if err != nil || !strings.Contains(string(sbom), "pkg:npm/lodash@4.17.21") {
		t.Fatalf("sbom: %v %.400s", err, sbom)
	}
	// Pinned to lodash 4.17.20: refused, naming the advisory and the fix.
	lock, _ := os.ReadFile(filepath.Join(dir, "package-lock.json"))
	os.WriteFile(filepath.Join(dir, "package-lock.json"), []byte(strings.ReplaceAll(string(lock), `"4.17.21"`, `"4.17.20"`)), 0o644)
	b, err := bundle.Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = n.client.Deploy(ctx, b)
	if err == nil || !strings.Contains(err.Error(), "GHSA-35jh-r3h4-6jhm") || !strings.Contains(err.Error(), "4.17.21") {
		t.Fatalf("lodash 4.17.20: %v", err)
	}
}

// isolationJS probes what a request can leave behind and what it can
// reach: each path does one thing a hostile or careless script would.
const isolationJS = `var __moat_module = (() => {
let count = 0;
const cache = new Map();
let pending = null;
let thenRan = false;
return { default: {
  async fetch(request) {
    const url = new URL(request.url);
    switch (url.pathname) {
    case "/state": {
      const seen = { count, cached: cache.size, pending: pending !== null, thenRan, leak: typeof globalThis.leak, proto: typeof Object.prototype.polluted };
      count++;
      cache.set("k" + count, "v");
      pending = new Promise(() => {});
      Promise.resolve().then(() => new Promise((r) => { globalThis.later = r; })).then(() => { thenRan = true; });
      globalThis.leak = "left behind";
      Object.prototype.polluted = true;
      return Response.json(seen);
    }
    case "/random": {
      const a = new Uint8Array(8); crypto.getRandomValues(a);
      return Response.json({ math: Math.random(), uuid: crypto.randomUUID(), bytes: Array.from(a), now: Date.now(), date: new Date().toISOString() });
    }
    case "/loop": for (;;) {}
    case "/recurse": { const f = (n) => f(n + 1) + 1; return new Response(String(f(0))); }
    case "/catch-recurse": { const f = (n) => f(n + 1) + 1; try { f(0); } catch (e) { return new Response(e.name); } return new Response("no limit"); }
    case "/string": { let s = "x"; for (;;) s = s + s; }
    case "/array": { const a = []; for (;;) a.push(new Array(100000).fill(a.length)); }
    case "/never": return new Promise(() => {});
    case "/throw": throw new Error("db password is hunter2 at /srv/app/db.js");
    case "/host": {
      const out = {};
      for (const k of ["process", "require", "module", "exports", "Deno", "Bun", "global", "__dirname", "importScripts", "WebAssembly"]) out[k] = typeof globalThis[k];
      try { require("fs"); out.fs = "reached"; } catch (e) { out.fs = e.name; }
      try { out.ctor = (function () { return this; }).constructor("return process")(); } catch (e) { out.ctor = e.name; }
      out.globals = Object.getOwnPropertyNames(globalThis).filter((k) => !k.startsWith("__moat_") && /process|require|^fs$|^os$|exec|spawn|child|readfile|writefile|^env$/i.test(k));
      return Response.json(out);
    }
    }
    return new Response("not found", { status: 404 });
  }
}};
})();
`

// testJavaScriptIsolation: a global, a module-level cache, a pending
// promise and a polluted prototype do not survive to the next request;
// randomness differs per request and the clock is the request's; a loop,
// a recursion, a huge string or array and a promise that never settles
// are stopped at the function's limits with the usual statuses; a throw
// answers 502 with the invocation id only; the host is not there to touch.
func testJavaScriptIsolation(t *testing.T, n *testNode) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "moat.yaml"), []byte("name: iso-js\nmodule: index.js\nhttp: {auth: public}\nlimits: {memory: 64MiB, timeout: 2s}\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "index.js"), []byte(isolationJS), 0o644)
	deployDir(t, n, dir)
	get := func(path string) (int, string, http.Header) {
		t.Helper()
		resp, err := http.Get(n.URL() + "/fn/iso-js" + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	for range 3 {
		code, body, _ := get("/state")
		want := `{"count":0,"cached":0,"pending":false,"thenRan":false,"leak":"undefined","proto":"undefined"}`
		if code != 200 || body != want {
			t.Fatalf("state carried over: %d %s, want %s", code, body, want)
		}
	}
	type random struct {
		Math  float64
		UUID  string
		Bytes []int
		Now   int64
		Date  string
	}
	seen := map[string]bool{}
	for i := range 3 {
		before := time.Now().UnixMilli()
		code, body, _ := get("/random")
		var r random
		if err := json.Unmarshal([]byte(body), &r); code != 200 || err != nil {
			t.Fatalf("random: %d %s", code, body)
		}
		for _, v := range []string{fmt.Sprint(r.Math), r.UUID, fmt.Sprint(r.Bytes)} {
			if seen[v] {
				t.Fatalf("request %d repeats %s: randomness carried over from the snapshot", i, v)
			}
			seen[v] = true
		}
		if r.Now < before-1000 || r.Now > time.Now().UnixMilli()+1000 || !strings.HasPrefix(r.Date, time.UnixMilli(r.Now).UTC().Format("2006-01-02T15")) {
			t.Fatalf("Date.now() %d is not the request's time (%d); Date %s", r.Now, before, r.Date)
		}
	}
	// A memory hog meets the memory cap or, when the collector slows it
	// enough near the cap, the timeout: either way it is stopped.
	for path, want := range map[string][]int{"/loop": {504}, "/recurse": {502}, "/catch-recurse": {502}, "/string": {502, 504}, "/array": {502, 504}, "/never": {502}, "/throw": {502}} {
		start := time.Now()
		code, body, h := get(path)
		if !slices.Contains(want, code) {
			t.Errorf("%s: %d %s, want %v", path, code, body, want)
		}
		took := time.Since(start)
		t.Logf("%s: %d in %v", path, code, took.Round(time.Millisecond))
		if took > 15*time.Second {
			t.Errorf("%s took %v", path, took)
		}
		id := h.Get("Moat-Invocation-Id")
		if id == "" || !strings.Contains(body, id) {
			t.Errorf("%s: the answer does not name invocation %q: %s", path, id, body)
		}
		if strings.Contains(body, "hunter2") || strings.Contains(body, "db.js") {
			t.Errorf("%s: the answer shows the script's error: %s", path, body)
		}
		// The log has what the answer leaves out.
		logWants := map[string][]string{"/throw": {"hunter2", "index.js"}, "/catch-recurse": {"stack overflow"}, "/never": {"never settled"}}
		if len(logWants[path]) > 0 {
			log := strings.Join(entryFor(t, n, "iso-js", id).Lines, "\n")
			for _, w := range logWants[path] {
				if !strings.Contains(log, w) {
					t.Errorf("%s: the log has no %q: %q", path, w, log)
				}
			}
		}
	}
	code, body, _ := get("/host")
	var host map[string]any
	if err := json.Unmarshal([]byte(body), &host); code != 200 || err != nil {
		t.Fatalf("host: %d %s", code, body)
	}
	for _, k := range []string{"process", "require", "module", "exports", "Deno", "Bun", "global", "__dirname", "importScripts", "WebAssembly"} {
		if host[k] != "undefined" {
			t.Errorf("%s is %v in the script", k, host[k])
		}
	}
	if host["fs"] != "ReferenceError" || host["ctor"] != "EvalError" {
		t.Errorf("require and the Function constructor: %s", body)
	}
	if g, _ := host["globals"].([]any); len(g) != 0 {
		t.Errorf("globals that look like the host: %v", g)
	}
	// And it still serves.
	if code, body, _ := get("/state"); code != 200 || !strings.Contains(body, `"count":0`) {
		t.Fatalf("after the faults: %d %s", code, body)
	}
}
