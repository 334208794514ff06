package node

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moatfn/moat/internal/api"
	"github.com/moatfn/moat/internal/audit"
	"github.com/moatfn/moat/internal/auth"
	"github.com/moatfn/moat/internal/bundle"
	"github.com/moatfn/moat/internal/client"
	"github.com/moatfn/moat/internal/fnlog"
	"github.com/moatfn/moat/internal/testwasm"
)

// capsResult is what the caps guest answers.
type capsResult struct {
	OK     bool     `json:"ok"`
	Code   uint32   `json:"code"`
	Err    string   `json:"err"`
	Value  string   `json:"value"`
	Rev    uint64   `json:"rev"`
	Keys   []string `json:"keys"`
	Status int      `json:"status"`
	Env    []string `json:"env"`
	Digest string   `json:"digest"`
	Size   int64    `json:"size"`
	Infos  []struct {
		Name, Digest, ContentType string
		Size                      int64
		Modified                  time.Time
	} `json:"infos"`
}

// Host status codes as the guest sees them.
const (
	codeDenied   = 1
	codeNotFound = 2
	codeConflict = 3
	codeInvalid  = 4
	codeTooLarge = 5
)

func capsManifest(name, extra string) string {
	return fmt.Sprintf("name: %s\nmodule: fn.wasm\nlimits: {memory: 64MiB, timeout: 10s}\nhttp: {auth: public}\n%s", name, extra)
}

// caps calls the caps guest deployed as fn and decodes its answer.
func caps(t *testing.T, n *testNode, fn, path string, q url.Values) capsResult {
	t.Helper()
	target := path
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	resp, body := invoke(t, n, http.MethodGet, fn, target, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s%s: status %d: %s", fn, target, resp.StatusCode, body)
	}
	var r capsResult
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("%s%s: %v: %s", fn, target, err, body)
	}
	return r
}

func wantCode(t *testing.T, what string, r capsResult, code uint32) {
	t.Helper()
	if code == 0 && !r.OK || r.Code != code {
		t.Fatalf("%s: ok=%v code=%d err=%q, want code %d", what, r.OK, r.Code, r.Err, code)
	}
}

// records polls the audit trail for records matching q.
func records(t *testing.T, n *testNode, q url.Values, want int) []audit.Record {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		recs, err := n.client.Audit(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) >= want || time.Now().After(deadline) {
			return recs
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestKVGrants(t *testing.T) {
	n := startNode(t, t.TempDir())
	wasm := testwasm.Bytes(t, "caps")
	deploy(t, n, capsManifest("writer", "permissions: {kv: {contacts: write}}\n"), wasm)
	deploy(t, n, capsManifest("reader", "permissions: {kv: {contacts: read}}\n"), wasm)
	deploy(t, n, capsManifest("owner", "permissions: {kv: {contacts: read-write}}\n"), wasm)
	deploy(t, n, capsManifest("nogrant", ""), wasm)
	kv := func(fn, op string, kvs ...string) capsResult {
		t.Helper()
		q := url.Values{"b": {"contacts"}}
		for i := 0; i+1 < len(kvs); i += 2 {
			q.Set(kvs[i], kvs[i+1])
		}
		return caps(t, n, fn, "/kv/"+op, q)
	}

	// write: put and delete, nothing that reads.
	wantCode(t, "writer put", kv("writer", "put", "k", "carole@example.com", "v", "big blue"), 0)
	wantCode(t, "writer get", kv("writer", "get", "k", "carole@example.com"), codeDenied)
	wantCode(t, "writer keys", kv("writer", "keys"), codeDenied)
	wantCode(t, "writer create", kv("writer", "create", "k", "x", "v", "1"), codeDenied)
	wantCode(t, "writer update", kv("writer", "update", "k", "x", "v", "1", "rev", "1"), codeDenied)
	// write learns nothing of what else is stored: no revision (which would
	// count the others' writes in between), no existence (a put or delete
	// of a key that holds something answers as one that holds nothing).
	for i, r := range []capsResult{
		kv("writer", "put", "k", "carole@example.com", "v", "big blue"),
		kv("owner", "put", "k", "other", "v", "1"),
		kv("owner", "put", "k", "other", "v", "2"),
		kv("writer", "put", "k", "carole@example.com", "v", "big blue"),
		kv("writer", "put", "k", "never-seen", "v", "x", "ttl", "60s"),
		kv("writer", "delete", "k", "never-there"),
		kv("writer", "delete", "k", "never-seen"),
		kv("writer", "delete", "k", "never-seen"),
	} {
		wantCode(t, fmt.Sprint("write-only step ", i), r, 0)
		if fn := []string{"writer", "owner", "owner"}; (i >= len(fn) || fn[i] == "writer") && (r.Rev != 0 || r.Value != "") {
			t.Errorf("write-only step %d learned %+v", i, r)
		}
	}
	wantCode(t, "writer put again", kv("writer", "put", "k", "carole@example.com", "v", "big blue"), 0)

	// read: get and keys, nothing that writes.
	got := kv("reader", "get", "k", "carole@example.com")
	wantCode(t, "reader get", got, 0)
	if got.Value != "big blue" {
		t.Fatalf("reader got %q", got.Value)
	}
	wantCode(t, "reader put", kv("reader", "put", "k", "x", "v", "y"), codeDenied)
	wantCode(t, "reader delete", kv("reader", "delete", "k", "carole@example.com"), codeDenied)

	// no grant: nothing; another bucket: nothing.
	wantCode(t, "nogrant get", kv("nogrant", "get", "k", "carole@example.com"), codeDenied)
	wantCode(t, "nogrant put", kv("nogrant", "put", "k", "x", "v", "y"), codeDenied)
	if r := caps(t, n, "owner", "/kv/get", url.Values{"b": {"inventory"}, "k": {"x"}}); r.Code != codeDenied {
		t.Fatalf("owner on an ungranted bucket: %+v", r)
	}

	// read-write: compare-and-set.
	c := kv("owner", "create", "k", "order-1", "v", "paid")
	wantCode(t, "create", c, 0)
	wantCode(t, "create again", kv("owner", "create", "k", "order-1", "v", "paid"), codeConflict)
	wantCode(t, "stale update", kv("owner", "update", "k", "order-1", "v", "shipped", "rev", fmt.Sprint(c.Rev+100)), codeConflict)
	u := kv("owner", "update", "k", "order-1", "v", "shipped", "rev", fmt.Sprint(c.Rev))
	wantCode(t, "update", u, 0)
	wantCode(t, "update with the old revision", kv("owner", "update", "k", "order-1", "v", "twice", "rev", fmt.Sprint(c.Rev)), codeConflict)
	for _, k := range []string{"a.b", "ü/日本", "x y", "=3D", "order-2"} {
		wantCode(t, "put "+k, kv("owner", "put", "k", k, "v", k), 0)
		if r := kv("owner", "get", "k", k); r.Value != k {
			t.Fatalf("get %q = %+v", k, r)
		}
	}
	keys := kv("owner", "keys", "prefix", "order-")
	wantCode(t, "keys", keys, 0)
	if !slices.Equal(keys.Keys, []string{"order-1", "order-2"}) {
		t.Fatalf("keys order- = %q", keys.Keys)
	}
	wantCode(t, "delete", kv("owner", "delete", "k", "order-2"), 0)
	wantCode(t, "get deleted", kv("owner", "get", "k", "order-2"), codeNotFound)
	wantCode(t, "create after delete", kv("owner", "create", "k", "order-2", "v", "again"), 0)
	wantCode(t, "empty key", kv("owner", "put", "k", "", "v", "x"), codeInvalid)
	wantCode(t, "control character", kv("owner", "put", "k", "a\nb", "v", "x"), codeInvalid)
	wantCode(t, "bad bucket name", caps(t, n, "owner", "/kv/get", url.Values{"b": {"Contacts!"}, "k": {"x"}}), codeInvalid)

	// TTL: the value goes away by itself.
	wantCode(t, "put with ttl", kv("owner", "put", "k", "session", "v", "s", "ttl", "1s"), 0)
	deadline := time.Now().Add(15 * time.Second)
	for kv("owner", "get", "k", "session").OK {
		if time.Now().After(deadline) {
			t.Fatal("a value with a 1s TTL is still there after 15s")
		}
		time.Sleep(250 * time.Millisecond)
	}

	// Every denial is in the trail, with what was reached for.
	recs := records(t, n, url.Values{"action": {"deny"}, "fn": {"writer"}}, 4)
	if len(recs) < 4 {
		t.Fatalf("%d deny records for writer, want 4", len(recs))
	}
	r := recs[len(recs)-1]
	if r.Capability != "kv.get" || r.Resource != "contacts" || r.InvocationID == "" || r.Outcome != audit.Refused || r.Source == "" {
		t.Fatalf("deny record %+v", r)
	}
	metrics := scrape(t, n)
	if !strings.Contains(metrics, `moat_capability_denials_total{capability="kv.get",fn="writer"} 1`) {
		t.Fatalf("no denial counter in /metrics")
	}

	// moat kv ls: the bucket and who holds which grant.
	buckets, err := n.client.Buckets(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(buckets) != 1 || buckets[0].Name != "contacts" || !buckets[0].Exists ||
		buckets[0].Grants["writer"] != "write" || buckets[0].Grants["reader"] != "read" || buckets[0].Grants["owner"] != "read-write" {
		t.Fatalf("buckets %+v", buckets)
	}
}

func scrape(t *testing.T, n *testNode) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, n.URL()+"/metrics", nil)
	token, _ := os.ReadFile(filepath.Join(n.data, "admin.token"))
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestSecretsGrantedOnly(t *testing.T) {
	n := startNode(t, t.TempDir())
	ctx := context.Background()
	wasm := testwasm.Bytes(t, "caps")
	const value = "mk-live-7f3a9c2e1b"
	setSecret(t, n, "MAILER_KEY", value, "mailer")
	deploy(t, n, capsManifest("mailer", "env: {MODE: test}\npermissions: {secrets: [MAILER_KEY]}\n"), wasm)
	deploy(t, n, capsManifest("other", ""), wasm)
	if err := n.client.SetSecret(ctx, "DB_PASSWORD", []byte("hunter2-db")); err != nil {
		t.Fatal(err)
	}

	r := caps(t, n, "mailer", "/secret", url.Values{"name": {"MAILER_KEY"}})
	wantCode(t, "granted secret", r, 0)
	if r.Value != value {
		t.Fatalf("granted secret = %q", r.Value)
	}
	wantCode(t, "ungranted secret", caps(t, n, "mailer", "/secret", url.Values{"name": {"DB_PASSWORD"}}), codeDenied)
	wantCode(t, "no grants", caps(t, n, "other", "/secret", url.Values{"name": {"MAILER_KEY"}}), codeDenied)
	wantCode(t, "a guess", caps(t, n, "mailer", "/secret", url.Values{"name": {"../MAILER_KEY"}}), codeDenied)

	// Not in the environment, which holds only env and CGI.
	env := caps(t, n, "mailer", "/env", nil).Env
	for _, kv := range env {
		if strings.Contains(kv, value) || strings.Contains(kv, "hunter2") {
			t.Fatalf("a secret is in the environment: %q", kv)
		}
	}
	if !slices.Contains(env, "MODE=test") {
		t.Fatalf("env = %q", env)
	}

	// Listing shows names and dates, never values.
	list, err := n.client.ListSecrets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(list)
	if len(list) != 2 || list[0].Name != "DB_PASSWORD" || strings.Contains(string(b), value) || strings.Contains(string(b), "hunter2") {
		t.Fatalf("secret ls = %s", b)
	}

	// A careless function logs its secret: the stored log has it redacted.
	r = caps(t, n, "mailer", "/secret/log", url.Values{"name": {"MAILER_KEY"}})
	wantCode(t, "secret/log", r, 0)
	lines := logLines(t, n, "mailer", 2)
	all := strings.Join(lines, "\n")
	if strings.Contains(all, value) || strings.Count(all, "[redacted:MAILER_KEY]") != 2 {
		t.Fatalf("stored log lines:\n%s", all)
	}
}

// logLines returns the lines of fn's stored log, waiting for at least want.
func logLines(t *testing.T, n *testNode, fn string, want int) []string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var lines []string
		err := n.client.Logs(context.Background(), fn, 100, false, func(e *fnlog.Entry) { lines = append(lines, e.Lines...) })
		if err != nil {
			t.Fatal(err)
		}
		if len(lines) >= want || time.Now().After(deadline) {
			return lines
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestStructuredLogs(t *testing.T) {
	n := startNode(t, t.TempDir())
	deploy(t, n, capsManifest("logger", ""), testwasm.Bytes(t, "caps"))
	wantCode(t, "log", caps(t, n, "logger", "/log", nil), 0)
	lines := logLines(t, n, "logger", 2)
	if len(lines) != 2 || lines[0] != `level=WARN msg=structured n=42 who="carole smith"` || lines[1] != "plain line" {
		t.Fatalf("log lines %q", lines)
	}
}

func TestHostileHostCalls(t *testing.T) {
	n := startNode(t, t.TempDir())
	deploy(t, n, capsManifest("hostile", "permissions: {kv: {b: read-write}}\n"), testwasm.Bytes(t, "caps"))
	for _, c := range []struct {
		name string
		q    url.Values
		code uint32
	}{
		{"pointer past memory", url.Values{"op": {"10"}, "ptr": {"4294967000"}, "len": {"1000"}}, codeInvalid},
		{"huge length", url.Values{"op": {"10"}, "ptr": {"0"}, "len": {"4294967295"}}, codeInvalid},
		{"unknown op", url.Values{"op": {"999"}, "ptr": {"0"}, "len": {"0"}}, codeInvalid},
		{"empty request", url.Values{"op": {"10"}, "ptr": {"0"}, "len": {"0"}}, codeInvalid},
	} {
		r := caps(t, n, "hostile", "/raw", c.q)
		if r.Code != c.code {
			t.Errorf("%s: code %d, want %d", c.name, r.Code, c.code)
		}
	}
	// take into memory that is not there.
	r := caps(t, n, "hostile", "/raw", url.Values{"op": {"999"}, "ptr": {"0"}, "len": {"0"}, "takeptr": {"4294967000"}})
	if r.Status != -1 {
		t.Errorf("take outside memory copied %d", r.Status)
	}
	if r := caps(t, n, "hostile", "/raw/garbage", nil); r.Code != codeInvalid {
		t.Errorf("garbage request: code %d", r.Code)
	}
	// The node and the function still serve.
	wantCode(t, "put after abuse", caps(t, n, "hostile", "/kv/put", url.Values{"b": {"b"}, "k": {"k"}, "v": {"v"}}), 0)
}

func TestFunctionCalls(t *testing.T) {
	n := startNode(t, t.TempDir())
	wasm := testwasm.Bytes(t, "caps")
	deploy(t, n, capsManifest("front", "permissions: {invoke: [back, strict]}\n"), wasm)
	deploy(t, n, capsManifest("stranger", "permissions: {invoke: [back]}\n"), wasm)
	deploy(t, n, capsManifest("loner", ""), wasm)
	deploy(t, n, strings.Replace(capsManifest("back", ""), "http: {auth: public}", "http: {auth: internal, callers: [front]}", 1), wasm)
	schemaDir := functionDir(t, strings.Replace(capsManifest("strict", "input: {schema: in.json}\n"), "http: {auth: public}", "http: {auth: internal, callers: [front]}", 1), wasm)
	if err := os.WriteFile(filepath.Join(schemaDir, "in.json"), []byte(`{"type":"object","required":["email"],"properties":{"email":{"type":"string","format":"email"}}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	deployDir(t, n, schemaDir)

	// front may call back; back sees who called, through the chain.
	r := caps(t, n, "front", "/invoke", url.Values{"fn": {"back"}, "path": {"/whoami"}})
	wantCode(t, "front -> back", r, 0)
	var inner capsResult
	if r.Status != http.StatusOK || json.Unmarshal([]byte(r.Value), &inner) != nil || inner.Value != "fn:front" {
		t.Fatalf("front -> back: status %d, body %s", r.Status, r.Value)
	}
	// back is internal: not reachable from outside.
	if resp, body := invoke(t, n, http.MethodGet, "back", "/whoami", nil); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("outside -> back: %d %s", resp.StatusCode, body)
	}
	// stranger's manifest grants the call, but back does not list it.
	if r := caps(t, n, "stranger", "/invoke", url.Values{"fn": {"back"}, "path": {"/whoami"}}); !r.OK || r.Status != http.StatusForbidden {
		t.Fatalf("stranger -> back: %+v", r)
	}
	// loner has no invoke grant: the host call itself is denied.
	wantCode(t, "loner -> back", caps(t, n, "loner", "/invoke", url.Values{"fn": {"back"}, "path": {"/whoami"}}), codeDenied)
	// The callee's schema applies to calls from functions too.
	if r := caps(t, n, "front", "/invoke", url.Values{"fn": {"strict"}, "path": {"/whoami"}, "body": {`{"email":"x; cat /etc/passwd"}`}}); r.Status != http.StatusBadRequest {
		t.Fatalf("front -> strict with bad input: %+v", r)
	}
	if r := caps(t, n, "front", "/invoke", url.Values{"fn": {"strict"}, "path": {"/whoami"}, "body": {`{"email":"carole@example.com"}`}}); r.Status != http.StatusOK {
		t.Fatalf("front -> strict with good input: %+v", r)
	}
	// The trail shows the call as from the function.
	recs := records(t, n, url.Values{"action": {"invoke"}, "fn": {"back"}}, 1)
	if len(recs) == 0 || recs[0].Trigger != "fn" || recs[0].Actor != "fn:front" {
		t.Fatalf("invoke records of back: %+v", recs)
	}
}

func TestGrantUseReported(t *testing.T) {
	n := startNode(t, t.TempDir())
	setSecret(t, n, "NEVER_READ", "x", "partial")
	deploy(t, n, capsManifest("partial", "permissions: {kv: {used: read-write, idle: read}, secrets: [NEVER_READ]}\n"), testwasm.Bytes(t, "caps"))
	wantCode(t, "put", caps(t, n, "partial", "/kv/put", url.Values{"b": {"used"}, "k": {"k"}, "v": {"v"}}), 0)
	list, err := n.client.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 {
		t.Fatalf("ls: %+v", list)
	}
	used := map[string]bool{}
	for _, g := range list[0].Grants {
		used[g.Grant] = g.LastUsed != nil
	}
	want := map[string]bool{"kv:used:read-write": true, "kv:idle:read": false, "secret:NEVER_READ": false}
	if fmt.Sprint(used) != fmt.Sprint(want) {
		t.Fatalf("grant use %v, want %v", used, want)
	}
}

// TestEncryptedAtRest scans every file of the data directory for a stored
// secret and KV value: neither may be there in the clear.
func TestEncryptedAtRest(t *testing.T) {
	data := t.TempDir()
	n := startNode(t, data)
	ctx := context.Background()
	const secret, value = "s3cr3t-TOKEN-zq81xw", "kv-plaintext-marker-94jd"
	setSecret(t, n, "TOKEN", secret, "vault")
	deploy(t, n, capsManifest("vault", "permissions: {kv: {notes: read-write}, secrets: [TOKEN]}\n"), testwasm.Bytes(t, "caps"))
	wantCode(t, "put", caps(t, n, "vault", "/kv/put", url.Values{"b": {"notes"}, "k": {"n1"}, "v": {value}}), 0)
	n.stop()
	info, err := os.Stat(filepath.Join(data, "master.key"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("master.key: %v %v", info, err)
	}
	scanFor(t, data, secret, value)

	// After a master key rotation and a restart, both still read; the old
	// master key is gone.
	oldKey, _ := os.ReadFile(filepath.Join(data, "master.key"))
	n = startNode(t, data)
	out, err := n.client.RotateMaster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if out["data_keys_rewrapped"].(float64) < 2 {
		t.Fatalf("rotate: %v", out)
	}
	n.stop()
	newKey, _ := os.ReadFile(filepath.Join(data, "master.key"))
	if string(newKey) == string(oldKey) {
		t.Fatal("master.key did not change")
	}
	scanFor(t, data, strings.TrimSpace(string(oldKey)))
	n = startNode(t, data)
	if r := caps(t, n, "vault", "/secret", url.Values{"name": {"TOKEN"}}); r.Value != secret {
		t.Fatalf("secret after rotation: %+v", r)
	}
	if r := caps(t, n, "vault", "/kv/get", url.Values{"b": {"notes"}, "k": {"n1"}}); r.Value != value {
		t.Fatalf("kv after rotation: %+v", r)
	}
}

// scanFor fails if any file under dir holds one of needles.
func scanFor(t *testing.T, dir string, needles ...string) {
	t.Helper()
	files := 0
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files++
		for _, s := range needles {
			if strings.Contains(string(b), s) {
				t.Errorf("%s holds %q in the clear", p, s)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 5 {
		t.Fatalf("only %d files under %s: the scan saw nothing", files, dir)
	}
}

// TestSecretBoundary: the operator draws which functions may be granted a
// secret, the deployer works inside it. A deployer key cannot deploy a
// public function granted a secret outside its list (and so cannot echo
// the secret), cannot change the list, and a function dropped from the list
// after its deploy can no longer read the secret.
func TestSecretBoundary(t *testing.T) {
	n := startNode(t, t.TempDir())
	ctx := context.Background()
	wasm := testwasm.Bytes(t, "caps")
	const value = "sk-boundary-91cf3e"
	setSecret(t, n, "STRIPE_KEY", value, "billing")

	dep := createKey(t, n, api.KeyRequest{Role: auth.RoleDeployer})
	deployer, err := client.New(n.URL(), dep.Token, "")
	if err != nil {
		t.Fatal(err)
	}
	tryDeploy := func(c *client.Client, name, perms string) error {
		b, err := bundle.Read(functionDir(t, capsManifest(name, perms), wasm))
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Deploy(ctx, b)
		return err
	}
	for name, tt := range map[string]struct{ perms, want string }{
		"echo":    {"permissions: {secrets: [STRIPE_KEY]}\n", "STRIPE_KEY may not be granted to echo"},
		"unset":   {"permissions: {secrets: [NOT_SET]}\n", "NOT_SET is not set"},
		"several": {"permissions: {secrets: [STRIPE_KEY, NOT_SET]}\n", "not"},
	} {
		if err := tryDeploy(deployer, name, tt.perms); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("deploy of %s by a deployer: %v, want a refusal naming %q", name, err, tt.want)
		}
		if err := tryDeploy(n.client, name, tt.perms); err == nil {
			t.Errorf("deploy of %s by the admin succeeded: the list binds admins' deploys too", name)
		}
	}
	if _, err := n.client.Get(ctx, "echo"); err == nil {
		t.Error("a refused deploy left a function behind")
	}
	// The deployer cannot widen the list, nor clear it; the admin's list stands.
	for _, fns := range [][]string{{"billing", "echo"}, {}} {
		if err := deployer.SetSecretFunctions(ctx, "STRIPE_KEY", fns); err == nil || !strings.Contains(err.Error(), "403") && !strings.Contains(err.Error(), "forbidden") {
			t.Errorf("a deployer set the functions of a secret to %v: %v", fns, err)
		}
	}
	// Inside the boundary: the deployer deploys billing, which reads the secret.
	if err := tryDeploy(deployer, "billing", "permissions: {secrets: [STRIPE_KEY]}\n"); err != nil {
		t.Fatal(err)
	}
	if r := caps(t, n, "billing", "/secret", url.Values{"name": {"STRIPE_KEY"}}); !r.OK || r.Value != value {
		t.Fatalf("billing reads its secret: %+v", r)
	}
	// Setting the value again (a rotation, a deployer may) keeps the list.
	if err := deployer.SetSecret(ctx, "STRIPE_KEY", []byte(value+"-2")); err != nil {
		t.Fatal(err)
	}
	if r := caps(t, n, "billing", "/secret", url.Values{"name": {"STRIPE_KEY"}}); !r.OK || r.Value != value+"-2" {
		t.Fatalf("after rotation: %+v", r)
	}
	// The operator takes billing off the list: the deployed version is denied.
	if err := n.client.SetSecretFunctions(ctx, "STRIPE_KEY", []string{"payroll"}); err != nil {
		t.Fatal(err)
	}
	if r := caps(t, n, "billing", "/secret", url.Values{"name": {"STRIPE_KEY"}}); r.Code != codeDenied || strings.Contains(r.Err, value) {
		t.Fatalf("billing after it left the list: %+v", r)
	}
	if recs := records(t, n, url.Values{"action": {"secret.functions"}}, 2); len(recs) < 2 || recs[0].Target != "STRIPE_KEY" {
		t.Fatalf("secret.functions records: %+v", recs)
	}
	list, err := n.client.ListSecrets(ctx)
	if err != nil || len(list) != 1 || fmt.Sprint(list[0].Functions) != "[payroll]" || strings.Contains(fmt.Sprint(list), value) {
		t.Fatalf("secret ls: %+v %v", list, err)
	}
	// Hostile lists are refused, and the list stands.
	for _, bad := range [][]string{{"../x"}, {"UPPER"}, {strings.Repeat("a", 70)}} {
		if err := n.client.SetSecretFunctions(ctx, "STRIPE_KEY", bad); err == nil {
			t.Errorf("functions %q accepted", bad)
		}
	}
	if err := n.client.SetSecretFunctions(ctx, "NOT_SET", []string{"x"}); err == nil || !strings.Contains(err.Error(), "404") && !strings.Contains(err.Error(), "no such secret") {
		t.Errorf("functions of a secret not set: %v", err)
	}
}
