package node

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moatfn/moat/internal/api"
	"github.com/moatfn/moat/internal/audit"
	"github.com/moatfn/moat/internal/auth"
	"github.com/moatfn/moat/internal/testwasm"
)

func TestAuditTrail(t *testing.T) {
	data := t.TempDir()
	n := startNode(t, data)
	ctx := context.Background()
	keyed := strings.Replace(kitchenManifest, "auth: public", "auth: key", 1)
	v1 := deploy(t, n, keyed, testwasm.Bytes(t, "kitchen"))
	deploy(t, n, strings.Replace(keyed, "Widgets", "Gadgets", 1), testwasm.Bytes(t, "kitchen"))
	if _, err := n.client.Rollback(ctx, "kitchen", v1); err != nil {
		t.Fatal(err)
	}
	key := createKey(t, n, api.KeyRequest{Role: auth.RoleInvoker})
	req, _ := http.NewRequest("POST", n.URL()+"/fn/kitchen/echo", strings.NewReader("BODY-MARKER-1234"))
	req.Header.Set("User-Agent", "audit-test/1")
	req.Header.Set("Authorization", "Bearer "+key.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("invoke: %v %v", resp, err)
	}
	resp.Body.Close()
	call(t, n.URL()+"/api/v1/functions", "GET", "moat_wrong_token") // auth failure
	call(t, n.URL()+"/api/v1/keys", "GET", key.Token)               // role refusal
	call(t, n.URL()+"/fn/kitchen/hello", "GET", "")                 // refused at the gateway: no key
	if err := n.client.RevokeKey(ctx, key.ID); err != nil {
		t.Fatal(err)
	}
	if err := n.client.Remove(ctx, "kitchen"); err != nil {
		t.Fatal(err)
	}
	if resp, _, _ := n.client.Invoke(ctx, "GET", "kitchen", "/", nil, nil); resp.StatusCode != 404 {
		t.Fatalf("removed: %d", resp.StatusCode)
	}

	recs, err := n.client.Audit(ctx, url.Values{"limit": {"1000"}})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, r := range recs {
		actions = append(actions, r.Action+":"+r.Outcome)
	}
	all := strings.Join(actions, " ")
	for _, want := range []string{"deploy:ok", "rollback:ok", "key.create:ok", "invoke:ok", "auth.fail:refused", "refuse:refused", "key.revoke:ok", "remove:ok"} {
		if !strings.Contains(all, want) {
			t.Errorf("audit lacks %s: %s", want, all)
		}
	}
	// The invocation record has who, what, when, from where, and the result.
	inv, err := n.client.Audit(ctx, url.Values{"action": {"invoke"}, "actor": {"key:" + key.ID}})
	if err != nil || len(inv) != 1 {
		t.Fatalf("invoke records of the key: %+v %v", inv, err)
	}
	r := inv[0]
	if r.Target != "kitchen" || r.Version != v1 || r.Status != 200 || r.UserAgent != "audit-test/1" || !strings.HasPrefix(r.Source, "127.0.0.1:") ||
		r.InvocationID == "" || r.Memory != "64MiB" || r.Trigger != "http" || r.Time.IsZero() {
		t.Errorf("invoke record: %+v", r)
	}
	for _, want := range []struct{ target, reason string }{{"GET /api/v1/keys", "role"}, {"kitchen", "auth"}} {
		got, err := n.client.Audit(ctx, url.Values{"action": {"refuse"}, "fn": {want.target}})
		if err != nil || len(got) != 1 || got[0].Reason != want.reason {
			t.Errorf("refusal of %s: %+v %v", want.target, got, err)
		}
	}
	// Each filter returns exactly what matches.
	for q, check := range map[string]func(audit.Record) bool{
		"fn=kitchen":       func(r audit.Record) bool { return r.Target == "kitchen" },
		"action=deploy":    func(r audit.Record) bool { return r.Action == "deploy" },
		"outcome=refused":  func(r audit.Record) bool { return r.Outcome == "refused" },
		"actor=admin":      func(r audit.Record) bool { return r.Actor == "admin" },
		"source=127.0.0.1": func(r audit.Record) bool { return strings.HasPrefix(r.Source, "127.0.0.1:") },
	} {
		k, v, _ := strings.Cut(q, "=")
		got, err := n.client.Audit(ctx, url.Values{k: {v}, "limit": {"1000"}})
		if err != nil || len(got) == 0 {
			t.Errorf("%s: %v %v", q, got, err)
		}
		want := 0
		for _, r := range recs {
			if check(r) {
				want++
			}
		}
		if len(got) != want {
			t.Errorf("%s returned %d records, want %d", q, len(got), want)
		}
		for _, r := range got {
			if !check(r) {
				t.Errorf("%s returned %+v", q, r)
			}
		}
	}
	if got, _ := n.client.Audit(ctx, url.Values{"since": {"2099-01-01T00:00:00Z"}}); len(got) != 0 {
		t.Errorf("since the future: %d records", len(got))
	}

	rep, err := n.client.AuditVerify(ctx)
	if err != nil || !rep.OK() {
		t.Fatalf("verify: %+v %v", rep, err)
	}

	// After a restart the chain continues and still verifies; nothing
	// recorded holds a token, a secret or a body.
	n.stop()
	n = startNode(t, data)
	deploy(t, n, kitchenManifest, testwasm.Bytes(t, "kitchen"))
	rep, err = n.client.AuditVerify(ctx)
	if err != nil || !rep.OK() || rep.LastSigned == 0 {
		t.Fatalf("verify after restart: %+v %v", rep, err)
	}
	all2, err := n.client.Audit(ctx, url.Values{"limit": {"10000"}, "action": {""}})
	if err != nil || len(all2) <= len(recs) {
		t.Fatalf("records after restart: %d, before %d (%v)", len(all2), len(recs), err)
	}
	admin, _ := os.ReadFile(filepath.Join(data, "admin.token"))
	b, _ := json.Marshal(all2)
	_, secret, _ := strings.Cut(strings.TrimPrefix(key.Token, "moat_"), "_")
	for _, leak := range []string{strings.TrimSpace(string(admin)), key.Token, secret, "BODY-MARKER-1234", "moat_wrong_token"} {
		if strings.Contains(string(b), leak) {
			t.Errorf("an audit record holds %q", leak)
		}
	}
}
