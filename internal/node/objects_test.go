package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moatfn/moat/internal/api"
	"github.com/moatfn/moat/internal/auth"
	"github.com/moatfn/moat/internal/client"
	"github.com/moatfn/moat/internal/objstore"
	"github.com/moatfn/moat/internal/testwasm"
)

// TestObjectsAPI: object buckets through the control API on a real node:
// a deploy's grant makes the bucket; put, get, list and delete round trip,
// audited; hostile names, sizes and roles are refused, and nothing stored
// is lost to a refusal.
func TestObjectsAPI(t *testing.T) {
	n := startNodeConfig(t, Config{DataDir: t.TempDir(), ObjectLimits: objstore.Limits{Object: 1 << 20}})
	ctx := context.Background()
	c := n.client
	if _, err := c.PutObject(ctx, "uploads", "a.csv", "text/csv", strings.NewReader("x")); !isStatus(err, 404) {
		t.Fatalf("put before any grant: %v, want 404", err)
	}
	deploy(t, n, kitchenManifest+"permissions: {objects: {uploads: read}}\n", testwasm.Bytes(t, "kitchen"))

	data := bytes.Repeat([]byte("sku,qty\nw-1,4\n"), 10000) // 140 kB: several segments
	info, err := c.PutObject(ctx, "uploads", "in/stock 2026-12.csv", "text/csv", bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	if info.Size != int64(len(data)) || info.Digest != "sha-256:"+hex.EncodeToString(sum[:]) {
		t.Fatalf("put: %+v", info)
	}
	var got bytes.Buffer
	ct, digest, err := c.GetObject(ctx, "uploads", "in/stock 2026-12.csv", &got)
	if err != nil || !bytes.Equal(got.Bytes(), data) || ct != "text/csv" || digest != info.Digest {
		t.Fatalf("get: %d bytes, %q %q, %v", got.Len(), ct, digest, err)
	}
	// Served as a download, never rendered on the functions' origin.
	req, _ := http.NewRequest("GET", n.URL()+"/api/v1/objects/uploads/object?name="+url.QueryEscape("in/stock 2026-12.csv"), nil)
	req.Header.Set("Authorization", "Bearer "+adminToken(t, n))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("Content-Type") != "application/octet-stream" || resp.Header.Get("X-Content-Type-Options") != "nosniff" ||
		!strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("get's headers: %v", resp.Header)
	}
	list, err := c.Objects(ctx, "uploads", "in/")
	if err != nil || len(list) != 1 || list[0].Name != "in/stock 2026-12.csv" {
		t.Fatalf("ls: %+v, %v", list, err)
	}
	if b, err := c.ObjectBuckets(ctx); err != nil || len(b) != 1 || b[0] != "uploads" {
		t.Fatalf("buckets: %v, %v", b, err)
	}

	// Hostile names, each refused whole with 400, never cleaned into
	// another name.
	for _, name := range []string{"../etc/passwd", "in/../../x", "a\x00b", "a\nb", "/abs", "a//b", strings.Repeat("n", 10<<10), ""} {
		if _, err := c.PutObject(ctx, "uploads", name, "", strings.NewReader("evil")); !isStatus(err, 400) {
			t.Errorf("put %q: %v, want 400", truncateName(name), err)
		}
	}
	for _, raw := range []string{"/api/v1/objects/uploads/object", "/api/v1/objects/uploads/object?name=a&name=b", "/api/v1/objects/Up%2E/object?name=a"} {
		req, _ := http.NewRequest("PUT", n.URL()+raw, strings.NewReader("x"))
		req.Header.Set("Authorization", "Bearer "+adminToken(t, n))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 400 && resp.StatusCode != 404 {
			t.Errorf("PUT %s = %d", raw, resp.StatusCode)
		}
	}
	// Over the node's cap: 413, the object of that name untouched.
	if _, err := c.PutObject(ctx, "uploads", "in/stock 2026-12.csv", "", bytes.NewReader(make([]byte, 1<<20+1))); !isStatus(err, 413) {
		t.Fatalf("a put over the cap: %v, want 413", err)
	}
	// The same with no length announced (chunked): refused as it streams.
	chunked := io.MultiReader(bytes.NewReader(make([]byte, 1<<20)), strings.NewReader("!"))
	if _, err := c.PutObject(ctx, "uploads", "in/stock 2026-12.csv", "", chunked); !isStatus(err, 413) {
		t.Fatalf("a chunked put over the cap: %v, want 413", err)
	}
	got.Reset()
	if _, _, err := c.GetObject(ctx, "uploads", "in/stock 2026-12.csv", &got); err != nil || !bytes.Equal(got.Bytes(), data) {
		t.Fatalf("after a refused put: %d bytes, %v", got.Len(), err)
	}
	if _, err := c.PutObject(ctx, "uploads", "x", "not a type", strings.NewReader("x")); !isStatus(err, 400) {
		t.Fatalf("bad content type: %v", err)
	}

	// Roles: an auditor lists but reads no content; an invoker and a
	// publisher reach nothing.
	auditor, _ := client.New(n.URL(), createKey(t, n, api.KeyRequest{Role: auth.RoleAuditor}).Token, "")
	if _, err := auditor.Objects(ctx, "uploads", ""); err != nil {
		t.Fatalf("auditor ls: %v", err)
	}
	if _, _, err := auditor.GetObject(ctx, "uploads", "in/stock 2026-12.csv", &got); !isStatus(err, 403) {
		t.Fatalf("auditor get: %v, want 403", err)
	}
	invoker, _ := client.New(n.URL(), createKey(t, n, api.KeyRequest{Role: auth.RoleInvoker}).Token, "")
	if _, err := invoker.PutObject(ctx, "uploads", "x", "", strings.NewReader("x")); !isStatus(err, 403) {
		t.Fatalf("invoker put: %v, want 403", err)
	}

	if err := c.RemoveObject(ctx, "uploads", "in/stock 2026-12.csv"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.GetObject(ctx, "uploads", "in/stock 2026-12.csv", &got); !isStatus(err, 404) {
		t.Fatalf("get after rm: %v", err)
	}
	recs, err := c.Audit(ctx, url.Values{"limit": {"1000"}})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, r := range recs {
		if strings.ContainsAny(r.Resource, "\x00\n") {
			t.Errorf("an audit record holds a raw NUL or newline: %q", r.Resource)
		}
		if strings.HasPrefix(r.Action, "object.") {
			seen[r.Action+" "+string(r.Outcome)]++
		}
	}
	if seen["object.put ok"] != 1 || seen["object.get ok"] < 2 || seen["object.delete ok"] != 1 || seen["object.put failed"] < 3 ||
		seen["object.put refused"] != 8 { // the hostile names
		t.Fatalf("audit: %v", seen)
	}
	t.Run("host calls", func(t *testing.T) { testObjectHostCalls(t, n) })
}

// pattern is the caps guest's pattern of n bytes.
func pattern(n int) []byte {
	block := make([]byte, 4096)
	for i := range block {
		block[i] = byte(i*7 + i/251)
	}
	return bytes.Repeat(block, n/4096+1)[:n]
}

func sha(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha-256:" + hex.EncodeToString(sum[:])
}

// testObjectHostCalls: functions reach object buckets through the SDK only
// as their grants say, objects stream through in pieces, and what an
// invocation leaves open or aborts is never stored. n caps an object at
// 1 MiB.
func testObjectHostCalls(t *testing.T, n *testNode) {
	ctx := context.Background()
	wasm := testwasm.Bytes(t, "caps")
	deploy(t, n, capsManifest("docowner", "permissions: {objects: {docs: read-write}}\n"), wasm)
	deploy(t, n, capsManifest("docreader", "permissions: {objects: {docs: read}}\n"), wasm)
	deploy(t, n, capsManifest("docwriter", "permissions: {objects: {docs: write}}\n"), wasm)
	deploy(t, n, capsManifest("docnone", "permissions: {kv: {docs: read-write}}\n"), wasm) // a KV grant is no object grant
	obj := func(fn, op string, kvs ...string) capsResult {
		t.Helper()
		q := url.Values{"b": {"docs"}}
		for i := 0; i+1 < len(kvs); i += 2 {
			q.Set(kvs[i], kvs[i+1])
		}
		return caps(t, n, fn, "/obj/"+op, q)
	}

	// A write streams in pieces (1 MiB is four of the SDK's writes and 16
	// sealed segments), and reads back whole by another function.
	big := pattern(1 << 20)
	r := obj("docowner", "put", "name", "reports/2026/q4.bin", "n", "1048576", "ct", "application/x-report")
	wantCode(t, "owner put", r, 0)
	if len(r.Infos) != 1 || r.Infos[0].Size != 1<<20 || r.Infos[0].Digest != sha(big) || r.Infos[0].ContentType != "application/x-report" {
		t.Fatalf("owner put: %+v", r.Infos)
	}
	r = obj("docreader", "get", "name", "reports/2026/q4.bin")
	wantCode(t, "reader get", r, 0)
	if r.Size != 1<<20 || r.Digest != sha(big) || r.Infos[0].Digest != r.Digest {
		t.Fatalf("reader read %d bytes, %s (described %+v)", r.Size, r.Digest, r.Infos)
	}
	// The same object through the control API: one store, one sealing.
	var got bytes.Buffer
	if _, digest, err := n.client.GetObject(ctx, "docs", "reports/2026/q4.bin", &got); err != nil || digest != sha(big) || !bytes.Equal(got.Bytes(), big) {
		t.Fatalf("API get of a function's object: %d bytes, %s, %v", got.Len(), digest, err)
	}
	wantCode(t, "owner copy", obj("docowner", "copy", "name", "reports/2026/q4.bin", "to", "archive/q4.bin"), 0)
	r = obj("docreader", "list", "prefix", "archive/")
	wantCode(t, "reader list", r, 0)
	if r.Size != 1 || r.Infos[0].Name != "archive/q4.bin" || r.Infos[0].Digest != sha(big) || r.Infos[0].Modified.IsZero() {
		t.Fatalf("list after copy: %+v", r.Infos)
	}
	r = obj("docreader", "info", "name", "archive/q4.bin")
	if wantCode(t, "reader info", r, 0); r.Infos[0].Size != 1<<20 || r.Infos[0].ContentType != "application/x-report" {
		t.Fatalf("info: %+v", r.Infos)
	}
	wantCode(t, "info of nothing", obj("docreader", "info", "name", "nothing"), codeNotFound)
	wantCode(t, "open of nothing", obj("docreader", "get", "name", "nothing"), codeNotFound)

	// Grants: read reads, write writes, each nothing more; no grant, nothing.
	wantCode(t, "reader put", obj("docreader", "put", "name", "x", "v", "x"), codeDenied)
	wantCode(t, "reader delete", obj("docreader", "delete", "name", "archive/q4.bin"), codeDenied)
	r = obj("docwriter", "put", "name", "in/upload.txt", "v", "hello")
	if wantCode(t, "writer put", r, 0); r.Infos[0].Size != 5 {
		t.Fatalf("writer put: %+v", r.Infos)
	}
	for _, op := range []string{"get", "info", "list", "copy"} {
		wantCode(t, "writer "+op, obj("docwriter", op, "name", "in/upload.txt", "to", "x"), codeDenied)
	}
	// A delete answers the same whether or not the object was there.
	wantCode(t, "writer delete", obj("docwriter", "delete", "name", "in/upload.txt"), 0)
	wantCode(t, "writer delete again", obj("docwriter", "delete", "name", "in/upload.txt"), 0)
	for _, op := range []string{"get", "info", "list", "put", "delete"} {
		wantCode(t, "no grant "+op, obj("docnone", op, "name", "archive/q4.bin", "v", "x"), codeDenied)
	}
	r = caps(t, n, "docowner", "/obj/get", url.Values{"b": {"uploads"}, "name": {"x"}})
	wantCode(t, "owner of docs reading uploads", r, codeDenied)

	// Hostile names: refused whole, through every call that takes one.
	for _, name := range []string{"../etc/passwd", "in/../../x", "a\x00b", "a\nb", "/abs", "a//b", "a\\b", "\u202egnp.exe", strings.Repeat("n", 10<<10), ""} {
		for _, op := range []string{"put", "get", "info", "delete"} {
			wantCode(t, op+" "+truncateName(name), obj("docowner", op, "name", name, "v", "evil"), codeInvalid)
		}
	}
	wantCode(t, "bad content type", obj("docowner", "put", "name", "x", "v", "x", "ct", "not a type"), codeInvalid)

	// Over the cap: too large, the object of that name intact.
	wantCode(t, "over the cap", obj("docowner", "put", "name", "archive/q4.bin", "n", "1048577"), codeTooLarge)
	// Abandoned (never closed) and aborted writes keep nothing, and leave
	// an older object of the name as it was.
	wantCode(t, "abandoned", obj("docowner", "abandon", "name", "archive/q4.bin", "n", "300000"), 0)
	wantCode(t, "aborted", obj("docowner", "abort", "name", "archive/q4.bin", "n", "300000"), 0)
	wantCode(t, "abandoned new", obj("docowner", "abandon", "name", "fresh.bin", "n", "300000"), 0)
	wantCode(t, "nothing kept of it", obj("docowner", "info", "name", "fresh.bin"), codeNotFound)
	r = obj("docowner", "get", "name", "archive/q4.bin")
	if wantCode(t, "after refusals", r, 0); r.Digest != sha(big) {
		t.Fatalf("the object changed under refused writes: %+v", r)
	}
	// Handles are capped per invocation, readers and writers alike.
	for _, mode := range []string{"read", "write"} {
		r = obj("docowner", "leak", "name", "archive/q4.bin", "mode", mode)
		if r.Code != codeTooLarge || r.Size != 16 {
			t.Fatalf("leaking %s handles: opened %d, then %+v", mode, r.Size, r)
		}
	}
	wantCode(t, "nothing kept of leaked writers", obj("docowner", "list", "prefix", "archive/q4.bin"), 0)
	if r := obj("docowner", "list", "prefix", "archive/"); r.Size != 1 {
		t.Fatalf("leaked writers left objects: %+v", r.Infos)
	}

	// Every refusal of a grant is in the audit trail with its call.
	recs := records(t, n, url.Values{"action": {"deny"}, "limit": {"1000"}}, 12)
	denied := map[string]int{}
	for _, rec := range recs {
		if strings.HasPrefix(rec.Capability, "obj.") {
			denied[rec.Target+" "+rec.Capability]++
		}
	}
	for _, want := range []string{"docreader obj.create", "docreader obj.delete", "docwriter obj.open", "docwriter obj.info",
		"docwriter obj.list", "docnone obj.open", "docnone obj.create", "docowner obj.open"} {
		if denied[want] == 0 {
			t.Errorf("no audit record of %s (have %v)", want, denied)
		}
	}
}

func isStatus(err error, status int) bool {
	var ce *client.Error
	return errors.As(err, &ce) && ce.Status == status
}

func truncateName(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

func adminToken(t *testing.T, n *testNode) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(n.data, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}
