package node

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/moatfn/moat/internal/api"
	"github.com/moatfn/moat/internal/testwasm"
)

// TestDormantFunctionsDisabled runs the dormant policy with a short window:
// a function nobody invokes is disabled (503, saying why), audited, and
// serves again once enabled; one in use is left alone.
func TestDormantFunctionsDisabled(t *testing.T) {
	n := startNodeConfig(t, Config{DataDir: t.TempDir(), NoSync: true, DormantAfter: 2 * time.Second, DisableDormant: true, DormantSweep: 300 * time.Millisecond})
	wasm := testwasm.Bytes(t, "caps")
	deploy(t, n, capsManifest("idle", "permissions: {kv: {seen: read}}\n"), wasm)
	ctx := context.Background()
	deadline := time.Now().Add(20 * time.Second)
	for {
		f, err := n.client.Get(ctx, "idle")
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(f.Disabled, api.DormantPrefix) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not disabled: %+v", f.Disabled)
		}
		time.Sleep(100 * time.Millisecond)
	}
	resp, body := invoke(t, n, http.MethodGet, "idle", "/whoami", nil)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "dormant") {
		t.Fatalf("a dormant function answered %d %s", resp.StatusCode, body)
	}
	recs := records(t, n, url.Values{"action": {"function.disable"}, "fn": {"idle"}}, 1)
	if len(recs) == 0 || recs[0].Actor != "posture" {
		t.Fatalf("audit %+v", recs)
	}
	if err := n.client.Enable(ctx, "idle"); err != nil {
		t.Fatal(err)
	}
	if resp, _ := invoke(t, n, http.MethodGet, "idle", "/whoami", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("enabled, it answers %d", resp.StatusCode)
	}
	if recs := records(t, n, url.Values{"action": {"function.enable"}, "fn": {"idle"}}, 1); len(recs) == 0 || recs[0].Actor != "admin" {
		t.Fatalf("enable audit %+v", recs)
	}
	// Enabled again, it is not disabled again at the next sweep: idleness
	// counts from the enable.
	time.Sleep(time.Second)
	if f, _ := n.client.Get(ctx, "idle"); f.Disabled != "" {
		t.Fatalf("disabled again at once: %q", f.Disabled)
	}
	// By hand too, with a reason; bad reasons refused.
	if err := n.client.Disable(ctx, "idle", "maintenance\nwindow"); err == nil {
		t.Error("a reason with a newline accepted")
	}
	if err := n.client.Disable(ctx, "idle", "maintenance"); err != nil {
		t.Fatal(err)
	}
	if resp, body := invoke(t, n, http.MethodGet, "idle", "/whoami", nil); resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "maintenance") {
		t.Fatalf("disabled by hand: %d %s", resp.StatusCode, body)
	}
	if err := n.client.Enable(ctx, "nosuch"); err == nil {
		t.Error("enable of a function that is not there succeeded")
	}
}
