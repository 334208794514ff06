package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moatfn/moat/internal/bundle"
	"github.com/moatfn/moat/internal/client"
	"github.com/moatfn/moat/internal/fnlog"
	"github.com/moatfn/moat/internal/testwasm"
)

// testNode is a real node on 127.0.0.1 with a real embedded NATS.
type testNode struct {
	*Node
	client *client.Client
	stop   func()
	data   string
}

func startNode(t testing.TB, data string) *testNode {
	t.Helper()
	return startNodeConfig(t, Config{DataDir: data})
}

// startNodeConfig starts a node with cfg, on 127.0.0.1:0.
func startNodeConfig(t testing.TB, cfg Config) *testNode {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return startNodeLog(t, cfg, log)
}

// startNodeLog starts a node with cfg that logs to log.
func startNodeLog(t testing.TB, cfg Config, log *slog.Logger) *testNode {
	t.Helper()
	data := cfg.DataDir
	cfg.Listen = "127.0.0.1:0"
	cfg.DrainTimeout = 10 * time.Second
	ctx, cancel := context.WithCancel(context.Background())
	n, err := Start(ctx, log, cfg)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- n.Serve(ctx) }()
	token, err := os.ReadFile(filepath.Join(data, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(n.URL(), strings.TrimSpace(string(token)), "")
	if err != nil {
		t.Fatal(err)
	}
	tn := &testNode{Node: n, client: c, data: data}
	var once sync.Once
	tn.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Serve: %v", err)
			}
		})
	}
	t.Cleanup(tn.stop)
	return tn
}

// functionDir writes a function folder: moat.yaml and the module.
func functionDir(t testing.TB, manifest string, wasm []byte) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "moat.yaml"), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "fn.wasm"), wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func deploy(t testing.TB, n *testNode, manifest string, wasm []byte) string {
	t.Helper()
	return deployDir(t, n, functionDir(t, manifest, wasm))
}

// deployDir deploys the function folder dir.
func deployDir(t testing.TB, n *testNode, dir string) string {
	t.Helper()
	b, err := bundle.Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	v, err := n.client.Deploy(context.Background(), b)
	if err != nil {
		t.Fatalf("Deploy: %v", err)
	}
	return v.ID
}

const kitchenManifest = `name: kitchen
module: fn.wasm
env: {TITLE: Widgets}
limits: {memory: 64MiB, timeout: 2s, response: 1MiB, body: 1MiB}
http: {auth: public}
`

// setSecret sets a secret and, as an admin, the functions that may be
// granted it.
func setSecret(t testing.TB, n *testNode, name, value string, functions ...string) {
	t.Helper()
	if err := n.client.SetSecret(context.Background(), name, []byte(value)); err != nil {
		t.Fatal(err)
	}
	if err := n.client.SetSecretFunctions(context.Background(), name, functions); err != nil {
		t.Fatal(err)
	}
}

func invoke(t *testing.T, n *testNode, method, fn, path string, body []byte) (*http.Response, string) {
	t.Helper()
	resp, b, err := n.client.Invoke(context.Background(), method, fn, path, nil, body)
	if err != nil {
		t.Fatalf("invoke %s%s: %v", fn, path, err)
	}
	return resp, string(b)
}

func TestDeployInvoke(t *testing.T) {
	n := startNode(t, t.TempDir())
	deploy(t, n, kitchenManifest, testwasm.Bytes(t, "kitchen"))

	resp, body := invoke(t, n, "GET", "kitchen", "/hello?name=moat", nil)
	if resp.StatusCode != 200 || body != "hello, moat\n" {
		t.Fatalf("GET /fn/kitchen/hello = %d %q, want 200 hello, moat", resp.StatusCode, body)
	}
	if id := resp.Header.Get("Moat-Invocation-Id"); len(id) != 24 {
		t.Errorf("Moat-Invocation-Id = %q", id)
	}
	resp, body = invoke(t, n, "POST", "kitchen", "/echo", []byte("ping"))
	if resp.StatusCode != 200 || body != "ping" || resp.Header.Get("X-Method") != "POST" {
		t.Fatalf("POST /echo = %d %q", resp.StatusCode, body)
	}
	resp, body = invoke(t, n, "GET", "kitchen", "/status", nil)
	if resp.StatusCode != 418 || resp.Header.Get("X-Custom") != "yes" || body != "short and stout" {
		t.Fatalf("GET /status = %d %q %v", resp.StatusCode, body, resp.Header)
	}
	// Every request gets a fresh instance: the global counter is always 1.
	for i := 0; i < 5; i++ {
		if _, body := invoke(t, n, "GET", "kitchen", "/counter", nil); body != "1" {
			t.Fatalf("counter on request %d = %q, want 1", i, body)
		}
	}
	if resp, _ := invoke(t, n, "GET", "nosuch", "/", nil); resp.StatusCode != 404 {
		t.Errorf("unknown function: %d, want 404", resp.StatusCode)
	}
}

func TestGuestEnvironment(t *testing.T) {
	t.Setenv("MOAT_NODE_SECRET", "node-secret-value")
	n := startNode(t, t.TempDir())
	deploy(t, n, kitchenManifest, testwasm.Bytes(t, "kitchen"))
	resp, b, err := n.client.Invoke(context.Background(), "GET", "kitchen", "/env", http.Header{
		"Authorization": {"Bearer caller-credential"}, "Cookie": {"sid=caller-cookie"}, "X-Ok": {"1"},
	}, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /env: %v %v", err, resp)
	}
	env := string(b)
	for _, bad := range []string{"node-secret-value", "caller-credential", "caller-cookie", "PATH=", "HOME="} {
		if strings.Contains(env, bad) {
			t.Errorf("guest environment holds %q:\n%s", bad, env)
		}
	}
	for _, want := range []string{"TITLE=Widgets", "REQUEST_METHOD=GET", "PATH_INFO=/env", "HTTP_X_OK=1", "REMOTE_ADDR=127.0.0.1"} {
		if !strings.Contains(env, want+"\n") {
			t.Errorf("guest environment lacks %q:\n%s", want, env)
		}
	}
}

func TestHostileGuests(t *testing.T) {
	n := startNode(t, t.TempDir())
	deploy(t, n, kitchenManifest, testwasm.Bytes(t, "kitchen"))
	// The memory and output caps get a generous timeout, so that a slow
	// machine reaches the cap before the clock.
	deploy(t, n, strings.NewReplacer("name: kitchen", "name: hog", "memory: 64MiB, timeout: 2s", "memory: 32MiB, timeout: 20s").Replace(kitchenManifest), testwasm.Bytes(t, "kitchen"))
	tests := []struct {
		fn, path   string
		wantStatus int
		wantDetail string
	}{
		{"kitchen", "/loop", 504, "timeout of 2s"},
		{"kitchen", "/sleep?d=1h", 504, "timeout of 2s"},
		{"hog", "/alloc", 502, "memory limit of 32MiB"},
		{"hog", "/spew", 502, "response limit of 1MiB"},
		{"kitchen", "/spewerr", 504, "timeout"},
		{"kitchen", "/panic", 502, "kitchen failed"},
		{"kitchen", "/exit3", 502, "kitchen failed"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			resp, body := invoke(t, n, "GET", tt.fn, tt.path, nil)
			if resp.StatusCode != tt.wantStatus || !strings.Contains(body, tt.wantDetail) {
				t.Fatalf("GET %s = %d %s, want %d with %q", tt.path, resp.StatusCode, body, tt.wantStatus, tt.wantDetail)
			}
			id := resp.Header.Get("Moat-Invocation-Id")
			if !strings.Contains(body, id) {
				t.Errorf("body lacks the invocation id %s: %s", id, body)
			}
			for _, leak := range []string{"goroutine", "secret stack detail", "about to exit", ".go:"} {
				if strings.Contains(body, leak) {
					t.Errorf("caller sees guest internals %q: %s", leak, body)
				}
			}
		})
	}
	// A module that traps at once.
	deploy(t, n, "name: trap\nmodule: fn.wasm\nlimits: {memory: 1MiB}\nhttp: {auth: public}\n", testwasm.Trap())
	if resp, body := invoke(t, n, "GET", "trap", "/", nil); resp.StatusCode != 502 || strings.Contains(body, "unreachable") {
		t.Errorf("trap = %d %s, want 502 without the trap's detail", resp.StatusCode, body)
	}
	// The node still serves.
	if resp, body := invoke(t, n, "GET", "kitchen", "/hello", nil); resp.StatusCode != 200 {
		t.Fatalf("after hostile guests: %d %s", resp.StatusCode, body)
	}
	// The panic's stack went to the function's log, with the invocation id.
	var entries []*fnlog.Entry
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for len(entries) == 0 || !strings.Contains(fmt.Sprint(entries[len(entries)-1].Lines), "about to exit 3") {
		entries = entries[:0]
		if err := n.client.Logs(ctx, "kitchen", 100, false, func(e *fnlog.Entry) { entries = append(entries, e) }); err != nil {
			t.Fatal(err)
		}
		if ctx.Err() != nil {
			t.Fatalf("log never showed the exit: %v", entries)
		}
		time.Sleep(50 * time.Millisecond)
	}
	all := ""
	for _, e := range entries {
		all += fmt.Sprintln(e.Status, e.Error, e.Lines)
	}
	for _, want := range []string{"secret stack detail", "goroutine", "about to exit 3", "exit code 3"} {
		if !strings.Contains(all, want) {
			t.Errorf("function log lacks %q:\n%s", want, all)
		}
	}
	hog := ""
	if err := n.client.Logs(ctx, "hog", 100, false, func(e *fnlog.Entry) { hog += fmt.Sprintln(e.Status, e.Error, e.Lines) }); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(hog, "memory limit 32MiB exceeded") || !strings.Contains(hog, "out of memory") {
		t.Errorf("hog's log lacks the memory limit:\n%s", hog)
	}
}

func TestBodyLimits(t *testing.T) {
	n := startNode(t, t.TempDir())
	deploy(t, n, kitchenManifest, testwasm.Bytes(t, "kitchen"))
	// 100 MB against a 1 MiB cap: refused before any instance starts.
	req, _ := http.NewRequest("POST", n.URL()+"/fn/kitchen/echo", io.LimitReader(zeros{}, 100<<20))
	req.ContentLength = 100 << 20
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 413 || !strings.Contains(string(b), "1MiB") {
			t.Fatalf("100MB body: %d %s, want 413", resp.StatusCode, b)
		}
	} // else the server closed the connection mid-upload, which is a refusal too
	if resp, _ := invoke(t, n, "POST", "kitchen", "/hello", make([]byte, 1<<20)); resp.StatusCode != 200 {
		t.Fatalf("1MiB body: %d, want 200", resp.StatusCode)
	}
	if resp, _ := invoke(t, n, "GET", "kitchen", "/hello", nil); resp.StatusCode != 200 {
		t.Fatalf("after a 100MB body: %d", resp.StatusCode)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func TestBadDeploys(t *testing.T) {
	n := startNode(t, t.TempDir())
	deploy(t, n, kitchenManifest, testwasm.Bytes(t, "kitchen"))
	tests := []struct {
		name, manifest string
		wasm           []byte
		wantStatus     int
		wantDetail     string
	}{
		{"not wasm", kitchenManifest, []byte("#!/bin/sh\nrm -rf /\n"), 400, "not WebAssembly"},
		{"no _start", kitchenManifest, testwasm.NoStart(), 400, "no _start"},
		{"foreign import", kitchenManifest, testwasm.ForeignImport(), 400, "imports env.system"},
		{"unknown field", "name: kitchen\nmodule: fn.wasm\nlimts: {memory: 1MiB}\n", testwasm.MinimalCGI(), 400, `moat.yaml:3: unknown field "limts"`},
		{"bad size", "name: kitchen\nmodule: fn.wasm\nlimits:\n  memory: 64MB\n", testwasm.MinimalCGI(), 400, "moat.yaml:4: limits.memory"},
		{"bad duration", "name: kitchen\nmodule: fn.wasm\nlimits: {timeout: soon}\n", testwasm.MinimalCGI(), 400, "limits.timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Sent as is: the node must check what a client may not have.
			b := &bundle.Bundle{Source: []byte(tt.manifest), Files: map[string][]byte{"fn.wasm": tt.wasm}}
			_, err := n.client.Deploy(context.Background(), b)
			var ce *client.Error
			if !errors.As(err, &ce) || ce.Status != tt.wantStatus || !strings.Contains(ce.Detail, tt.wantDetail) {
				t.Fatalf("Deploy = %v, want %d with %q", err, tt.wantStatus, tt.wantDetail)
			}
		})
	}
	// A missing module file is refused before anything is sent, naming it.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "moat.yaml"), []byte("name: x\nmodule: gone.wasm\n"), 0o644)
	if _, err := bundle.Read(dir); err == nil || !strings.Contains(err.Error(), "moat.yaml:2: module") {
		t.Errorf("bundle.Read with a missing module = %v", err)
	}
	// Nothing stored was lost: the good version still serves.
	if resp, body := invoke(t, n, "GET", "kitchen", "/hello", nil); resp.StatusCode != 200 {
		t.Fatalf("after bad deploys: %d %s", resp.StatusCode, body)
	}
	f, err := n.client.Get(context.Background(), "kitchen")
	if err != nil || len(f.Versions) != 1 {
		t.Fatalf("versions after bad deploys: %v %v", f, err)
	}
}

func TestAdminToken(t *testing.T) {
	data := t.TempDir()
	n := startNode(t, data)
	fi, err := os.Stat(filepath.Join(data, "admin.token"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin.token mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	for _, tok := range []string{"", "wrong", "moat_admin_" + strings.Repeat("A", 43)} {
		c, _ := client.New(n.URL(), tok, "")
		_, err := c.List(context.Background())
		var ce *client.Error
		if !errors.As(err, &ce) || ce.Status != 401 {
			t.Errorf("List with token %q = %v, want 401", tok, err)
		}
	}
	req, _ := http.NewRequest("GET", n.URL()+"/api/v1/functions", nil)
	req.Header.Set("Authorization", "Basic YWRtaW46YWRtaW4=")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 401 {
		t.Fatalf("Basic auth: %v %v", resp, err)
	}
	for k, want := range map[string]string{
		"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Cache-Control": "no-store",
		"Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'", "Referrer-Policy": "no-referrer",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("API response %s = %q, want %q", k, got, want)
		}
	}
	if _, err := n.client.List(context.Background()); err != nil {
		t.Fatalf("List with the admin token: %v", err)
	}
}

func TestRestartKeepsEverything(t *testing.T) {
	data := t.TempDir()
	n := startNode(t, data)
	v1 := deploy(t, n, kitchenManifest, testwasm.Bytes(t, "kitchen"))
	v2 := deploy(t, n, strings.Replace(kitchenManifest, "Widgets", "Gadgets", 1), testwasm.Bytes(t, "kitchen"))
	if v1 == v2 {
		t.Fatal("a changed manifest kept the version id")
	}
	if again := deploy(t, n, kitchenManifest, testwasm.Bytes(t, "kitchen")); again != v1 {
		t.Fatalf("redeploy of identical content = %s, want %s", again, v1)
	}
	deploy(t, n, strings.Replace(kitchenManifest, "kitchen", "second", 1), testwasm.MinimalCGI())
	n.stop()

	n = startNode(t, data)
	fns, err := n.client.List(context.Background())
	if err != nil || len(fns) != 2 {
		t.Fatalf("after restart: %v %v", fns, err)
	}
	if _, body := invoke(t, n, "GET", "kitchen", "/env", nil); !strings.Contains(body, "TITLE=Widgets") {
		t.Fatalf("after restart the active version is not v1: %s", body)
	}
	if _, err := n.client.Rollback(context.Background(), "kitchen", v2); err != nil {
		t.Fatal(err)
	}
	if _, body := invoke(t, n, "GET", "kitchen", "/env", nil); !strings.Contains(body, "TITLE=Gadgets") {
		t.Fatalf("after rollback to v2: %s", body)
	}
	if _, err := n.client.Rollback(context.Background(), "kitchen", "0000000000000000"); err == nil {
		t.Fatal("rollback to an unknown version succeeded")
	}
	if err := n.client.Remove(context.Background(), "second"); err != nil {
		t.Fatal(err)
	}
	if resp, _ := invoke(t, n, "GET", "second", "/", nil); resp.StatusCode != 404 {
		t.Fatalf("removed function answers %d", resp.StatusCode)
	}
	n.stop()
	n = startNode(t, data)
	if resp, body := invoke(t, n, "GET", "kitchen", "/env", nil); resp.StatusCode != 200 || !strings.Contains(body, "TITLE=Gadgets") {
		t.Fatalf("rollback did not survive a restart: %d %s", resp.StatusCode, body)
	}
	if resp, _ := invoke(t, n, "GET", "second", "/", nil); resp.StatusCode != 404 {
		t.Fatalf("removal did not survive a restart: %d", resp.StatusCode)
	}
}

func TestMethodsAndDrain(t *testing.T) {
	n := startNode(t, t.TempDir())
	deploy(t, n, strings.Replace(kitchenManifest, "http: {auth: public}", "http: {auth: public, methods: [GET]}", 1), testwasm.Bytes(t, "kitchen"))
	if resp, _ := invoke(t, n, "DELETE", "kitchen", "/hello", nil); resp.StatusCode != 405 || resp.Header.Get("Allow") != "GET" {
		t.Fatalf("DELETE = %d Allow=%q, want 405 GET", resp.StatusCode, resp.Header.Get("Allow"))
	}
	// An in-flight invocation finishes when the node is told to stop.
	done := make(chan string, 1)
	go func() {
		resp, body, err := n.client.Invoke(context.Background(), "GET", "kitchen", "/sleep?d=1s", nil, nil)
		if err != nil {
			done <- err.Error()
			return
		}
		done <- fmt.Sprint(resp.StatusCode, " ", string(body))
	}()
	// A log follower does not hold the drain up.
	followed := make(chan error, 1)
	go func() {
		followed <- n.client.Logs(context.Background(), "kitchen", 0, true, func(*fnlog.Entry) {})
	}()
	time.Sleep(300 * time.Millisecond)
	stopped := time.Now()
	n.stop()
	if took := time.Since(stopped); took > 5*time.Second {
		t.Errorf("drain took %s with a log follower attached", took)
	}
	<-followed
	if got := <-done; got != "200 slept" {
		t.Fatalf("in-flight request during drain = %q, want 200 slept", got)
	}
}

func TestNonLoopbackNeedsTLS(t *testing.T) {
	_, err := Start(context.Background(), slog.New(slog.NewTextHandler(io.Discard, nil)), Config{DataDir: t.TempDir(), Listen: "0.0.0.0:0"})
	if err == nil || !strings.Contains(err.Error(), "needs TLS") {
		t.Fatalf("Start on 0.0.0.0 without TLS = %v", err)
	}
}

func TestSelfSignedTLS(t *testing.T) {
	data := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n, err := Start(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)), Config{DataDir: data, Listen: "127.0.0.1:0", TLSSelfSigned: true})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- n.Serve(ctx) }()
	defer func() { cancel(); <-done }()
	if !strings.HasPrefix(n.URL(), "https://") {
		t.Fatalf("URL = %s", n.URL())
	}
	if _, err := http.Get(n.URL() + "/healthz"); err == nil {
		t.Fatal("an untrusted self-signed certificate was accepted")
	}
	fi, err := os.Stat(filepath.Join(data, "tls", "key.pem"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key.pem mode: %v %v", fi, err)
	}
	c, err := client.New(n.URL(), "", filepath.Join(data, "tls", "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if resp, _, err := c.Invoke(ctx, "GET", "nosuch", "", nil, nil); err != nil || resp.StatusCode != 404 {
		t.Fatalf("over TLS: %v %v", resp, err)
	}
}

func TestControlAPIHostileInput(t *testing.T) {
	n := startNode(t, t.TempDir())
	deploy(t, n, kitchenManifest, testwasm.Bytes(t, "kitchen"))
	token, _ := os.ReadFile(filepath.Join(n.data, "admin.token"))
	auth := "Bearer " + strings.TrimSpace(string(token))
	multipartBody := func(parts ...[2]string) (string, io.Reader) {
		var b strings.Builder
		for _, p := range parts {
			fmt.Fprintf(&b, "--XX\r\nContent-Disposition: form-data; name=%q; filename=\"f\"\r\n\r\n%s\r\n", p[0], p[1])
		}
		b.WriteString("--XX--\r\n")
		return "multipart/form-data; boundary=XX", strings.NewReader(b.String())
	}
	tests := []struct {
		name, method, path, ctype string
		body                      io.Reader
		wantStatus                int
		wantDetail                string
	}{
		{"json instead of multipart", "POST", "/api/v1/functions", "application/json", strings.NewReader("{}"), 415, "multipart"},
		{"garbage multipart", "POST", "/api/v1/functions", "multipart/form-data; boundary=XX", strings.NewReader("not multipart at all"), 400, ""},
		{"no boundary", "POST", "/api/v1/functions", "multipart/form-data", strings.NewReader(""), 400, ""},
		{"no manifest", "", "", "", nil, 400, `manifest`},
		{"two manifests", "", "", "", nil, 400, "repeated part"},
		{"unnamed file", "", "", "", nil, 400, "not named by the manifest"},
		{"missing module", "", "", "", nil, 400, "does not carry it"},
		{"path traversal file", "", "", "", nil, 400, "module"},
		{"rollback garbage", "POST", "/api/v1/functions/kitchen/rollback", "application/json", strings.NewReader("{{{"), 400, "version"},
		{"rollback unknown field", "POST", "/api/v1/functions/kitchen/rollback", "application/json", strings.NewReader(`{"version":"x","evil":1}`), 400, "version"},
		{"logs bad n", "GET", "/api/v1/functions/kitchen/logs?n=-1", "", nil, 400, "n must be"},
		{"logs huge n", "GET", "/api/v1/functions/kitchen/logs?n=99999999999999999999", "", nil, 400, "n must be"},
		{"unknown function", "GET", "/api/v1/functions/nosuch", "", nil, 404, "not found"},
		{"invalid name", "GET", "/api/v1/functions/a*b", "", nil, 404, "not found"},
		{"unknown route", "GET", "/api/v1/secretz", "", nil, 404, "no such route"},
		{"secret with a bad name", "PUT", "/api/v1/secrets/lower", "", strings.NewReader("v"), 400, "not a valid secret name"},
		{"secret with a traversal name", "PUT", "/api/v1/secrets/..%2FX", "", strings.NewReader("v"), 400, "not a valid secret name"},
		{"empty secret", "PUT", "/api/v1/secrets/EMPTY", "", strings.NewReader(""), 400, "empty"},
		{"oversized secret", "PUT", "/api/v1/secrets/BIG", "", io.LimitReader(zeros{}, 64<<10+1), 413, "64KiB"},
		{"removing a missing secret", "DELETE", "/api/v1/secrets/NONE", "", nil, 404, "no secret named NONE"},
		{"sbom of no function", "GET", "/api/v1/functions/nonesuch/sbom", "", nil, 404, "not found"},
		{"removing a missing exception", "DELETE", "/api/v1/vulns/exceptions/f/GO-2020-0001", "", nil, 404, "no such exception"},
		{"an exception with unknown fields", "POST", "/api/v1/vulns/exceptions", "application/json", strings.NewReader(`{"id":"GO-1","function":"f","until":"2099-01-01","reason":"r","admin":true}`), 400, "the body must be"},
		{"an exception for a bad function name", "POST", "/api/v1/vulns/exceptions", "application/json", strings.NewReader(`{"id":"GO-1","function":"../f","until":"` + time.Now().AddDate(0, 1, 0).Format(time.DateOnly) + `","reason":"r"}`), 400, "not a function name"},
		{"advisories that are not a zip", "POST", "/api/v1/vulndb", "application/zip", strings.NewReader("PK\x03\x04garbage"), 400, "nothing was changed"},
		{"an advisory that is not OSV", "POST", "/api/v1/vulndb", "application/json", strings.NewReader(`{"id":1}`), 400, "nothing was changed"},
		{"a scan that is not JSON", "POST", "/api/v1/vulns/scan", "application/json", strings.NewReader(`[`), 400, "the body must be"},
		{"a scan with unknown fields", "POST", "/api/v1/vulns/scan", "application/json", strings.NewReader(`{"components":[],"db":"/etc"}`), 400, "the body must be"},
		{"a scan for a bad function name", "POST", "/api/v1/vulns/scan", "application/json", strings.NewReader(`{"function":"../x","components":[]}`), 400, "not a function name"},
		{"a scan with a bad policy", "POST", "/api/v1/vulns/scan", "application/json", strings.NewReader(`{"components":[],"block":"severe"}`), 400, "is not low"},
		{"a scan with control characters", "POST", "/api/v1/vulns/scan", "application/json", strings.NewReader(`{"components":[{"Ecosystem":"Go","Name":"a\u0000b","Version":"v1"}]}`), 400, "not plain text"},
		{"a scan too large", "POST", "/api/v1/vulns/scan", "application/json", io.MultiReader(strings.NewReader(`{"components":[`), strings.NewReader(strings.Repeat(`{"Name":"x"},`, 200000))), 400, "the body must be"},
		{"a scan of nothing", "POST", "/api/v1/vulns/scan", "application/json", strings.NewReader(`{"components":[]}`), 200, `"findings": []`},
	}
	for i := range tests {
		tt := &tests[i]
		switch tt.name {
		case "no manifest":
			tt.ctype, tt.body = multipartBody([2]string{"file:fn.wasm", "x"})
		case "two manifests":
			tt.ctype, tt.body = multipartBody([2]string{"manifest", kitchenManifest}, [2]string{"manifest", kitchenManifest})
		case "unnamed file":
			tt.ctype, tt.body = multipartBody([2]string{"manifest", kitchenManifest}, [2]string{"file:fn.wasm", "x"}, [2]string{"file:extra.txt", "x"})
		case "missing module":
			tt.ctype, tt.body = multipartBody([2]string{"manifest", kitchenManifest})
		case "path traversal file":
			tt.ctype, tt.body = multipartBody([2]string{"manifest", "name: evil\nmodule: ../../etc/passwd\n"}, [2]string{"file:../../etc/passwd", "x"})
		}
		if tt.method == "" {
			tt.method, tt.path = "POST", "/api/v1/functions"
		}
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, n.URL()+tt.path, tt.body)
			req.Header.Set("Authorization", auth)
			if tt.ctype != "" {
				req.Header.Set("Content-Type", tt.ctype)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus || !strings.Contains(string(b), tt.wantDetail) {
				t.Fatalf("%s %s = %d %s, want %d with %q", tt.method, tt.path, resp.StatusCode, b, tt.wantStatus, tt.wantDetail)
			}
		})
	}
	// An oversized deploy is cut off at 128MiB.
	req, _ := http.NewRequest("POST", n.URL()+"/api/v1/functions", io.LimitReader(zeros{}, 129<<20))
	req.Header.Set("Authorization", auth)
	req.Header.Set("Content-Type", "multipart/form-data; boundary=XX")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		if resp.StatusCode != 400 && resp.StatusCode != 413 {
			t.Errorf("129MiB deploy = %d", resp.StatusCode)
		}
	}
	// Hostile function names at the gateway.
	for _, p := range []string{"/fn/", "/fn/a*b", "/fn/a.b", "/fn/%2e%2e/api/v1/functions", "/fn/KITCHEN", "/fn/" + strings.Repeat("a", 5000)} {
		resp, err := http.Get(n.URL() + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 404 {
			t.Errorf("GET %s = %d, want 404", p, resp.StatusCode)
		}
	}
	// Nothing stored was lost.
	f, err := n.client.Get(context.Background(), "kitchen")
	if err != nil || len(f.Versions) != 1 {
		t.Fatalf("after hostile input: %v %v", f, err)
	}
	if resp, _ := invoke(t, n, "GET", "kitchen", "/hello", nil); resp.StatusCode != 200 {
		t.Fatalf("after hostile input: %d", resp.StatusCode)
	}
}

const contactSchema = `{
  "type": "object", "additionalProperties": false, "required": ["name", "email"],
  "properties": {
    "name": {"type": "string", "minLength": 1, "maxLength": 100, "pattern": "^[\\p{L} .'-]+$"},
    "email": {"type": "string", "format": "email", "maxLength": 254}
  }
}`

// TestInputSchema shows that a request failing the input schema is refused
// at the edge: 400 with each failure, and no instance started.
func TestInputSchema(t *testing.T) {
	n := startNode(t, t.TempDir())
	dir := functionDir(t, strings.Replace(kitchenManifest, "http: {auth: public}",
		"http: {auth: public, methods: [POST]}\ninput: {schema: contact.schema.json, content_types: [application/json]}", 1), testwasm.Bytes(t, "kitchen"))
	os.WriteFile(filepath.Join(dir, "contact.schema.json"), []byte(contactSchema), 0o644)
	b, err := bundle.Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.client.Deploy(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	post := func(ctype, body string) (int, string) {
		t.Helper()
		resp, rb, err := n.client.Invoke(context.Background(), "POST", "kitchen", "/echo", http.Header{"Content-Type": {ctype}}, []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(rb)
	}
	if code, body := post("application/json", `{"name":"Carole","email":"carole@example.com"}`); code != 200 {
		t.Fatalf("valid body = %d %s", code, body)
	}
	started := n.InstancesStarted()
	for _, tt := range []struct{ ctype, body, want string }{
		{"application/json", `{"name":"Carole","email":"a@b.com; cat /etc/passwd"}`, `"location":"/email"`},
		{"application/json", `{"name":"x\"; rm -rf / #","email":"x@example.com"}`, `"location":"/name"`},
		{"application/json", `{"name":"<img src=x onerror=alert(1)>","email":"x@example.com"}`, `"location":"/name"`},
		{"application/json", `{"name":"Carole","email":"c@example.com","isAdmin":true}`, "additional"},
		{"application/json", `not json`, "not JSON"},
		{"application/json", strings.Repeat(`{"a":`, 20000) + "1" + strings.Repeat("}", 20000), "not JSON"},
		{"text/plain", `{"name":"Carole","email":"carole@example.com"}`, "accepts application/json"},
	} {
		code, body := post(tt.ctype, tt.body)
		if (code != 400 && code != 415) || !strings.Contains(body, tt.want) {
			t.Errorf("POST %.50q = %d %s, want refusal with %q", tt.body, code, body, tt.want)
		}
	}
	if got := n.InstancesStarted(); got != started {
		t.Fatalf("refused requests started %d instances", got-started)
	}
	// A broken schema, or one that reaches out, is a deploy error.
	for _, doc := range []string{`{"type": "strnig"}`, `{"$ref": "https://evil.example/s.json"}`, `{`} {
		b.Files["contact.schema.json"] = []byte(doc)
		var ce *client.Error
		if _, err := n.client.Deploy(context.Background(), b); !errors.As(err, &ce) || ce.Status != 400 || !strings.Contains(ce.Detail, "contact.schema.json") {
			t.Errorf("deploy with schema %s = %v, want 400 naming the file", doc, err)
		}
	}
	// After a restart the schema still applies.
	data := n.data
	n.stop()
	n = startNode(t, data)
	if resp, rb, _ := n.client.Invoke(context.Background(), "POST", "kitchen", "/echo", http.Header{"Content-Type": {"application/json"}}, []byte(`{"name":"C","email":"bad"}`)); resp.StatusCode != 400 {
		t.Fatalf("after restart: %d %s", resp.StatusCode, rb)
	}
}

// TestRestartCompilesEarly: a restarted node compiles the Go commands that
// were loaded when it stopped while its store starts, and takes them only
// when the stored record still names the same version; a hints file that
// lies or is garbage costs nothing but the early start.
func TestRestartCompilesEarly(t *testing.T) {
	data := t.TempDir()
	n := startNode(t, data)
	v1 := deploy(t, n, kitchenManifest, testwasm.Bytes(t, "kitchen"))
	n.stop()

	n = startNode(t, data)
	if resp, body := invoke(t, n, "GET", "kitchen", "/env", nil); resp.StatusCode != 200 || !strings.Contains(body, "TITLE=Widgets") {
		t.Fatalf("after restart: %d %s", resp.StatusCode, body)
	}
	if got := n.early.Taken(); got != 1 {
		t.Fatalf("early modules taken = %d, want 1", got)
	}
	n.stop()

	hints := filepath.Join(data, "cache", "modules", "loaded.json")
	b, err := os.ReadFile(hints)
	if err != nil || !strings.Contains(string(b), v1) {
		t.Fatalf("hints: %s %v", b, err)
	}
	if info, err := os.Stat(hints); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("hints file mode: %v %v", info, err)
	}
	for name, lie := range map[string]string{
		"other version": strings.ReplaceAll(string(b), v1, "0000000000000000"),
		"other memory":  strings.ReplaceAll(string(b), `"memory":`, `"memory":1`),
		"path in sum":   `[{"fn":"kitchen","version":"` + v1 + `","sum":"../../../../etc/passwd","memory":67108864}]`,
		"garbage":       "\x00\xff{[",
		"huge":          strings.Repeat(" ", 2<<20),
	} {
		if err := os.WriteFile(hints, []byte(lie), 0o600); err != nil {
			t.Fatal(err)
		}
		n = startNode(t, data)
		if resp, body := invoke(t, n, "GET", "kitchen", "/env", nil); resp.StatusCode != 200 || !strings.Contains(body, "TITLE=Widgets") {
			t.Fatalf("%s: after restart: %d %s", name, resp.StatusCode, body)
		}
		if got := n.early.Taken(); got != 0 {
			t.Fatalf("%s: early modules taken = %d, want 0", name, got)
		}
		n.stop()
	}
}

// TestStartFailsCleanly: a start that fails late (here the console's port
// is taken) returns the error, does not panic, and releases what it had
// started, so that the same data directory starts at once after.
func TestStartFailsCleanly(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	data := t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	n, err := Start(context.Background(), log, Config{DataDir: data, Listen: "127.0.0.1:0", NoSync: true, ConsoleListen: taken.Addr().String()})
	if err == nil || n != nil || !strings.Contains(err.Error(), taken.Addr().String()) {
		t.Fatalf("start with the console's port taken: %v, %v", n, err)
	}
	tn := startNodeConfig(t, Config{DataDir: data, NoSync: true})
	if resp, err := http.Get(tn.URL() + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("the next start: %v %v", resp, err)
	}
}
