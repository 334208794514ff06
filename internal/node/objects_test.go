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
