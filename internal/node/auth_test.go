package node

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moatfn/moat/internal/api"
	"github.com/moatfn/moat/internal/auth"
	"github.com/moatfn/moat/internal/client"
	"github.com/moatfn/moat/internal/testwasm"
)

func createKey(t *testing.T, n *testNode, req api.KeyRequest) *api.NewKey {
	t.Helper()
	k, err := n.client.CreateKey(context.Background(), req)
	if err != nil {
		t.Fatalf("CreateKey(%+v): %v", req, err)
	}
	return k
}

func call(t *testing.T, url, method, token string) int {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader("{}"))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestRouteRoles checks every row of the route-to-role table with a key of
// every role: allowed roles get past the check, the others get 403.
func TestRouteRoles(t *testing.T) {
	n := startNode(t, t.TempDir())
	deploy(t, n, kitchenManifest, testwasm.Bytes(t, "kitchen"))
	tokens := map[string]string{}
	for _, role := range auth.Roles {
		req := api.KeyRequest{Role: role}
		if role == auth.RolePublisher {
			req.Subjects = []string{">"}
		}
		tokens[role] = createKey(t, n, req).Token
	}
	victim := createKey(t, n, api.KeyRequest{Role: auth.RoleAuditor, Note: "to be revoked"})
	for _, rt := range api.Routes() {
		method, path, _ := strings.Cut(rt.Pattern, " ")
		path = strings.NewReplacer("{name}", "kitchen", "{id}", victim.ID).Replace(path)
		for _, role := range auth.Roles {
			if method == "DELETE" && slices.Contains(rt.Roles, role) {
				continue // allowed deletes are exercised elsewhere; they would remove what the next row needs
			}
			got := call(t, n.URL()+path, method, tokens[role])
			allowed := slices.Contains(rt.Roles, role)
			if allowed && (got == 401 || got == 403) {
				t.Errorf("%s as %s = %d, want allowed", rt.Pattern, role, got)
			}
			if !allowed && got != 403 {
				t.Errorf("%s as %s = %d, want 403", rt.Pattern, role, got)
			}
		}
		if got := call(t, n.URL()+path, method, ""); got != 401 {
			t.Errorf("%s without a token = %d, want 401", rt.Pattern, got)
		}
	}
	// Admin deletes work.
	if err := n.client.RevokeKey(context.Background(), victim.ID); err != nil {
		t.Fatal(err)
	}
}

func TestKeyLifecycle(t *testing.T) {
	n := startNode(t, t.TempDir())
	deploy(t, n, strings.Replace(kitchenManifest, "auth: public", "auth: key", 1), testwasm.Bytes(t, "kitchen"))
	deploy(t, n, strings.Replace(strings.Replace(kitchenManifest, "auth: public", "auth: key", 1), "name: kitchen", "name: other", 1), testwasm.Bytes(t, "kitchen"))

	scoped := createKey(t, n, api.KeyRequest{Role: auth.RoleInvoker, Functions: []string{"kitchen"}, Note: "ci"})
	if !strings.HasPrefix(scoped.Token, "moat_"+scoped.ID+"_") || scoped.Hash != "" {
		t.Fatalf("created key: %+v", scoped)
	}
	url := n.URL() + "/fn/kitchen/env"
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+scoped.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), "REMOTE_USER=key:"+scoped.ID+"\n") || strings.Contains(string(b), scoped.Token) {
		t.Fatalf("scoped invoker on kitchen = %d\n%s", resp.StatusCode, b)
	}
	if got := call(t, n.URL()+"/fn/other/hello", "GET", scoped.Token); got != 403 {
		t.Errorf("scoped invoker on other = %d, want 403", got)
	}
	deployer := createKey(t, n, api.KeyRequest{Role: auth.RoleDeployer})
	if got := call(t, url, "GET", deployer.Token); got != 403 {
		t.Errorf("deployer invoking = %d, want 403", got)
	}
	if got := call(t, url, "GET", ""); got != 401 {
		t.Errorf("no token = %d, want 401", got)
	}

	// List shows no token or hash.
	keys, err := n.client.ListKeys(context.Background())
	if err != nil || len(keys) != 2 {
		t.Fatalf("ListKeys = %v, %v", keys, err)
	}
	for _, k := range keys {
		if k.Hash != "" {
			t.Errorf("ListKeys leaks a hash: %+v", k)
		}
	}

	// Expired keys stop working.
	short := createKey(t, n, api.KeyRequest{Role: auth.RoleInvoker, Expires: "1s"})
	if got := call(t, url, "GET", short.Token); got != 200 {
		t.Fatalf("fresh short-lived key = %d", got)
	}
	time.Sleep(2100 * time.Millisecond)
	if got := call(t, url, "GET", short.Token); got != 401 {
		t.Errorf("expired key = %d, want 401", got)
	}

	// Revoked keys stop working at once, and across a restart.
	if err := n.client.RevokeKey(context.Background(), scoped.ID); err != nil {
		t.Fatal(err)
	}
	if got := call(t, url, "GET", scoped.Token); got != 401 {
		t.Errorf("revoked key = %d, want 401", got)
	}
	var ce *client.Error
	if err := n.client.RevokeKey(context.Background(), scoped.ID); !errors.As(err, &ce) || ce.Status != 404 {
		t.Errorf("revoking twice = %v, want 404", err)
	}
	data := n.data
	n.stop()
	n = startNode(t, data)
	url = n.URL() + "/fn/kitchen/env"
	if got := call(t, url, "GET", scoped.Token); got != 401 {
		t.Errorf("revoked key after restart = %d, want 401", got)
	}
	if got := call(t, n.URL()+"/api/v1/functions", "GET", deployer.Token); got != 200 {
		t.Errorf("deployer key after restart = %d, want 200", got)
	}

	// Bad creation requests.
	for _, bad := range []api.KeyRequest{
		{Role: "root"},
		{Role: auth.RoleDeployer, Functions: []string{"kitchen"}},
		{Role: auth.RoleInvoker, Functions: []string{"Bad Name"}},
		{Role: auth.RoleInvoker, Expires: "-1d"},
		{Role: auth.RoleInvoker, Expires: "forever"},
		{Role: auth.RoleInvoker, Expires: "99999d"},
		{Role: auth.RoleInvoker, Note: strings.Repeat("x", 300)},
	} {
		if _, err := n.client.CreateKey(context.Background(), bad); !errors.As(err, &ce) || ce.Status != 400 {
			t.Errorf("CreateKey(%+v) = %v, want 400", bad, err)
		}
	}
}

func TestMalformedTokensAndFailureLimit(t *testing.T) {
	n := startNode(t, t.TempDir())
	deploy(t, n, strings.Replace(kitchenManifest, "auth: public", "auth: key", 1), testwasm.Bytes(t, "kitchen"))
	good := createKey(t, n, api.KeyRequest{Role: auth.RoleInvoker})
	id, secret, _ := strings.Cut(strings.TrimPrefix(good.Token, "moat_"), "_")
	bad := []string{
		"x", "moat_", "moat__", "moat_" + id, "moat_" + id + "_", "moat_" + id + "_" + secret + "x",
		"moat_" + id + "_" + secret[:len(secret)-1], "moat_nosuchid_" + secret, strings.Repeat("A", 4000),
	}
	for i, tok := range bad {
		if got := call(t, n.URL()+"/fn/kitchen/hello", "GET", tok); got != 401 {
			t.Errorf("token %d = %d, want 401", i, got)
		}
	}
	// Past ten failures the source is refused, even with a good key, for a while.
	got := 0
	for i := 0; i < 5 && got != 429; i++ {
		got = call(t, n.URL()+"/fn/kitchen/hello", "GET", "wrong")
	}
	if got != 429 {
		t.Fatalf("after repeated failures: %d, want 429", got)
	}
	if got := call(t, n.URL()+"/fn/kitchen/hello", "GET", good.Token); got != 429 {
		t.Errorf("good key from a blocked source = %d, want 429", got)
	}
	if got := call(t, n.URL()+"/api/v1/functions", "GET", good.Token); got != 429 {
		t.Errorf("control API from a blocked source = %d, want 429", got)
	}
	// Each failed authentication is audited, and a blocked source's
	// requests are refusals of their own kind, both counted into windows.
	for range 20 {
		call(t, n.URL()+"/fn/kitchen/hello", "GET", good.Token)
		call(t, n.URL()+"/api/v1/functions", "GET", good.Token)
	}
	// (Read from the store: this source may not use the API for a while.)
	var failed, blocked, apiBlocked int
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		recs := storedAudit(t, n)
		failed, blocked, apiBlocked = 0, 0, 0
		for _, r := range recs {
			switch {
			case r.Action == "refuse" && r.Target == "kitchen" && r.Reason == "auth":
				failed += max(r.Repeats, 1)
			case r.Action == "refuse" && r.Target == "kitchen" && r.Reason == "auth_blocked":
				blocked += max(r.Repeats, 1)
			case r.Action == "auth.fail" && r.Reason == "blocked":
				apiBlocked += max(r.Repeats, 1)
			}
		}
		if failed >= 10 && blocked >= 21 && apiBlocked >= 21 {
			break
		}
	}
	if failed < 10 {
		t.Errorf("%d failed authentications audited, want at least 10", failed)
	}
	if apiBlocked < 21 {
		t.Errorf("blocked control API requests audited stand for %d, want at least 21", apiBlocked)
	}
	if blocked < 21 {
		t.Errorf("blocked refusals audited stand for %d, want at least 21", blocked)
	}
}

func TestJWTAuth(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	b64 := base64.RawURLEncoding.EncodeToString
	jwks := fmt.Sprintf(`{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1","x":%q}]}`, b64(pub))
	n := startNodeConfig(t, Config{DataDir: t.TempDir(), JWT: &auth.JWTConfig{JWKS: []byte(jwks), Issuer: "https://idp.test", Audience: "widgets"}})
	deploy(t, n, strings.Replace(kitchenManifest, "auth: public", "auth: jwt", 1), testwasm.Bytes(t, "kitchen"))
	sign := func(alg string, claims map[string]any) string {
		h, _ := json.Marshal(map[string]any{"alg": alg, "kid": "k1"})
		c, _ := json.Marshal(claims)
		in := b64(h) + "." + b64(c)
		if alg == "none" {
			return in + "."
		}
		return in + "." + b64(ed25519.Sign(priv, []byte(in)))
	}
	claims := func(k string, v any) map[string]any {
		c := map[string]any{"iss": "https://idp.test", "aud": "widgets", "sub": "carole", "exp": time.Now().Add(time.Hour).Unix()}
		if k != "" {
			c[k] = v
		}
		return c
	}
	get := func(tok string) (int, string) {
		req, _ := http.NewRequest("GET", n.URL()+"/fn/kitchen/env", nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}
	good := sign("EdDSA", claims("", nil))
	if code, body := get(good); code != 200 || !strings.Contains(body, "REMOTE_USER=jwt:carole\n") || strings.Contains(body, good) {
		t.Fatalf("valid JWT = %d\n%s", code, body)
	}
	// A subject holding the chain's separators cannot forge a chain: it is
	// escaped, and the SDK's parser reads it back as one subject.
	deploy(t, n, strings.NewReplacer("name: hreactor", "name: jreactor", "auth: public", "auth: jwt").Replace(hardReactorManifest), testwasm.Bytes(t, "reactor"))
	for sub, want := range map[string]string{
		"mallory;key:admin": "jwt:mallory%3Bkey%3Aadmin",
		"fn:x;admin":        "jwt:fn%3Ax%3Badmin",
		"auth0|42 ,=%\"":    "jwt:auth0%7C42%20%2C%3D%25%22",
		"évé@idp.example":   "jwt:%C3%A9v%C3%A9@idp.example",
	} {
		tok := sign("EdDSA", claims("sub", sub))
		if code, body := get(tok); code != 200 || !strings.Contains(body, "REMOTE_USER="+want+"\n") {
			t.Errorf("sub %q: %d, want REMOTE_USER=%s in\n%s", sub, code, want, body)
		}
		req, _ := http.NewRequest("GET", n.URL()+"/fn/jreactor/request", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var seen struct {
			RemoteUser string `json:"remote_user"`
			Caller     []struct{ Kind, ID string }
			Error      string `json:"caller_error"`
		}
		json.NewDecoder(resp.Body).Decode(&seen)
		resp.Body.Close()
		if seen.RemoteUser != want || len(seen.Caller) != 1 || seen.Caller[0].Kind != "jwt" || seen.Caller[0].ID != sub || seen.Error != "" {
			t.Errorf("sub %q: the reactor saw %+v", sub, seen)
		}
	}
	for name, tok := range map[string]string{
		"none":           sign("none", claims("", nil)),
		"wrong audience": sign("EdDSA", claims("aud", "billing")),
		"expired":        sign("EdDSA", claims("exp", time.Now().Add(-time.Hour).Unix())),
		"not yet":        sign("EdDSA", claims("nbf", time.Now().Add(time.Hour).Unix())),
		"HS256":          sign("HS256", claims("", nil)),
		"missing":        "",
		"an API key":     createKey(t, n, api.KeyRequest{Role: auth.RoleInvoker}).Token,
	} {
		if code, body := get(tok); code != 401 {
			t.Errorf("%s: %d %s, want 401", name, code, body)
		}
	}
	// A node without JWT configuration refuses jwt functions outright.
	plain := startNode(t, t.TempDir())
	deploy(t, plain, strings.Replace(kitchenManifest, "auth: public", "auth: jwt", 1), testwasm.Bytes(t, "kitchen"))
	if got := call(t, plain.URL()+"/fn/kitchen/env", "GET", good); got != 401 {
		t.Errorf("jwt function on a node without JWT config = %d, want 401", got)
	}
}
