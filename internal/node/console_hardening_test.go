package node

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moatfn/moat/internal/api"
	"github.com/moatfn/moat/internal/audit"
	"github.com/moatfn/moat/internal/auth"
	"github.com/moatfn/moat/internal/console"
	"github.com/moatfn/moat/internal/testwasm"
)

// consoleClient is a browser-less client of the console: a cookie jar and
// the last CSRF token seen.
type consoleClient struct {
	t    *testing.T
	base string
	http *http.Client
	csrf string
}

func newConsoleClient(t *testing.T, base string, tr http.RoundTripper) *consoleClient {
	jar := &cookieJar{}
	return &consoleClient{t: t, base: base, http: &http.Client{Transport: tr, Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// cookieJar keeps every cookie by name, whatever the browser rules: the
// test looks at what the console sets, not at what a jar would keep.
type cookieJar struct {
	mu sync.Mutex
	c  map[string]*http.Cookie
}

func (j *cookieJar) SetCookies(_ *url.URL, cs []*http.Cookie) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.c == nil {
		j.c = map[string]*http.Cookie{}
	}
	for _, c := range cs {
		if c.MaxAge < 0 {
			delete(j.c, c.Name)
			continue
		}
		j.c[c.Name] = c
	}
}

func (j *cookieJar) Cookies(*url.URL) []*http.Cookie {
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []*http.Cookie
	for _, c := range j.c {
		out = append(out, &http.Cookie{Name: c.Name, Value: c.Value})
	}
	return out
}

func (c *consoleClient) do(method, path string, form url.Values, h http.Header) (*http.Response, string) {
	c.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, c.base+path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", c.base)
	}
	for k, vs := range h {
		req.Header[k] = vs
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if i := strings.Index(string(b), `name="csrf" value="`); i >= 0 {
		rest := string(b)[i+len(`name="csrf" value="`):]
		c.csrf = rest[:strings.IndexByte(rest, '"')]
	}
	return resp, string(b)
}

func (c *consoleClient) signIn(key string) *http.Response {
	c.t.Helper()
	resp, body := c.do(http.MethodPost, "/login", url.Values{"key": {key}, "next": {"/"}}, nil)
	if resp.StatusCode == http.StatusSeeOther {
		c.do(http.MethodGet, "/", nil, nil) // for the CSRF token
	} else {
		c.t.Logf("sign-in: %d %s", resp.StatusCode, body)
	}
	return resp
}

// TestConsoleHardening attacks the console without a browser: foreign
// hosts, open redirects, forged and oversized posts, keys of the wrong
// role, guessing, sessions that should have ended.
func TestConsoleHardening(t *testing.T) {
	data := t.TempDir()
	n := startNodeConfig(t, Config{DataDir: data, NoSync: true, ConsoleListen: "127.0.0.1:0"})
	deploy(t, n, kitchenManifest, testwasm.Bytes(t, "kitchen"))
	ctx := context.Background()
	admin, _ := os.ReadFile(filepath.Join(data, auth.TokenFile))
	adminToken := strings.TrimSpace(string(admin))
	base := n.ConsoleURL()

	t.Run("Headers", func(t *testing.T) {
		c := newConsoleClient(t, base, nil)
		for _, p := range []string{"/login", "/", "/nosuch", "/static/console.css"} {
			resp, _ := c.do(http.MethodGet, p, nil, nil)
			h := resp.Header
			if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "script-src") ||
				!strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "form-action 'self'") {
				t.Errorf("%s: CSP %q", p, csp)
			}
			if h.Get("X-Frame-Options") != "DENY" || h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Cache-Control") != "no-store" {
				t.Errorf("%s: headers %v", p, h)
			}
		}
	})

	t.Run("ForeignHost", func(t *testing.T) {
		// DNS rebinding: a name of the attacker's resolving to 127.0.0.1.
		req, _ := http.NewRequest(http.MethodGet, base+"/login", nil)
		req.Host = "evil.example:" + strings.Split(base, ":")[2]
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMisdirectedRequest {
			t.Fatalf("a foreign Host: %d", resp.StatusCode)
		}
		local := strings.Replace(base, "127.0.0.1", "localhost", 1)
		if resp, err := http.Get(local + "/login"); err != nil || resp.StatusCode != 200 {
			t.Fatalf("localhost: %v %v", resp, err)
		}
	})

	t.Run("Cookie", func(t *testing.T) {
		c := newConsoleClient(t, base, nil)
		resp := c.signIn(adminToken)
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("sign-in: %d", resp.StatusCode)
		}
		raw := resp.Header.Get("Set-Cookie")
		for _, want := range []string{console.Cookie + "=", "HttpOnly", "SameSite=Strict", "Path=/"} {
			if !strings.Contains(raw, want) {
				t.Fatalf("cookie %q lacks %s", raw, want)
			}
		}
		if strings.Contains(raw, adminToken) || strings.Contains(raw, "Domain") {
			t.Fatalf("cookie %q", raw)
		}
	})

	t.Run("OpenRedirect", func(t *testing.T) {
		for _, next := range []string{"//evil.example/", "/\\evil.example", "https://evil.example/", "/\r\nSet-Cookie: x=1", "javascript:alert(1)", "/\t/evil.example"} {
			c := newConsoleClient(t, base, nil)
			resp, _ := c.do(http.MethodPost, "/login", url.Values{"key": {adminToken}, "next": {next}}, nil)
			if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || loc != "/" {
				t.Errorf("next %q: %d to %q", next, resp.StatusCode, loc)
			}
		}
		c := newConsoleClient(t, base, nil)
		resp, _ := c.do(http.MethodPost, "/login", url.Values{"key": {adminToken}, "next": {"/audit?action=deploy"}}, nil)
		if loc := resp.Header.Get("Location"); loc != "/audit?action=deploy" {
			t.Errorf("a path of the console: to %q", loc)
		}
	})

	t.Run("Roles", func(t *testing.T) {
		for _, role := range []string{auth.RoleInvoker, auth.RolePublisher} {
			req := api.KeyRequest{Role: role}
			if role == auth.RolePublisher {
				req.Subjects = []string{"x.y"}
			}
			k, err := n.client.CreateKey(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			c := newConsoleClient(t, base, nil)
			if resp := c.signIn(k.Token); resp.StatusCode != http.StatusForbidden {
				t.Fatalf("a %s key signed in: %d", role, resp.StatusCode)
			}
			auditHas(t, n, url.Values{"action": {"console.signin"}, "actor": {"key:" + k.ID}}, func(r audit.Record) bool { return r.Outcome == "refused" })
		}
	})

	t.Run("ForgedPosts", func(t *testing.T) {
		c := newConsoleClient(t, base, nil)
		c.signIn(adminToken)
		good := c.csrf
		if good == "" {
			t.Fatal("no CSRF token on the page")
		}
		// The right token with its last character changed.
		wrong := good[:len(good)-1] + map[bool]string{true: "B", false: "A"}[strings.HasSuffix(good, "A")]
		cases := []struct {
			name string
			form url.Values
			h    http.Header
			want int
		}{
			{"no token", url.Values{"reason": {"x"}}, nil, http.StatusForbidden},
			{"wrong token", url.Values{"csrf": {wrong}}, nil, http.StatusForbidden},
			{"token in the query only", url.Values{}, nil, http.StatusForbidden},
			{"cross-site", url.Values{"csrf": {good}}, http.Header{"Sec-Fetch-Site": {"cross-site"}}, http.StatusForbidden},
			{"same-site (the functions' origin)", url.Values{"csrf": {good}}, http.Header{"Sec-Fetch-Site": {"same-site"}}, http.StatusForbidden},
			{"another origin", url.Values{"csrf": {good}}, http.Header{"Origin": {n.URL()}}, http.StatusForbidden},
			{"origin null", url.Values{"csrf": {good}}, http.Header{"Origin": {"null"}}, http.StatusForbidden},
		}
		for _, tc := range cases {
			path := "/functions/kitchen/disable"
			if tc.name == "token in the query only" {
				path += "?csrf=" + url.QueryEscape(good)
			}
			resp, body := c.do(http.MethodPost, path, tc.form, tc.h)
			if resp.StatusCode != tc.want {
				t.Errorf("%s: %d %s", tc.name, resp.StatusCode, body)
			}
		}
		if f, _ := n.client.Get(ctx, "kitchen"); f.Disabled != "" {
			t.Fatalf("a forged post disabled kitchen: %q", f.Disabled)
		}
		// Over the bound of a form: refused, nothing done.
		big := url.Values{"csrf": {good}, "reason": {strings.Repeat("x", 100<<10)}}
		if resp, _ := c.do(http.MethodPost, "/functions/kitchen/disable", big, nil); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("a 100 KiB form: %d", resp.StatusCode)
		}
		if resp, _ := c.do(http.MethodPost, "/login", url.Values{"key": {strings.Repeat("k", 20<<10)}}, nil); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("a 20 KiB sign-in: %d", resp.StatusCode)
		}
		// The API's own validation answers through the console: a reason
		// with a control character.
		if resp, body := c.do(http.MethodPost, "/functions/kitchen/disable", url.Values{"csrf": {good}, "reason": {"a\x01b"}}, nil); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "plain text") {
			t.Errorf("a bad reason: %d %s", resp.StatusCode, body)
		}
		// And the genuine post goes through.
		if resp, _ := c.do(http.MethodPost, "/functions/kitchen/disable", url.Values{"csrf": {good}, "reason": {"maintenance"}}, nil); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("the console's own post: %d", resp.StatusCode)
		}
		if f, _ := n.client.Get(ctx, "kitchen"); f.Disabled != "maintenance" {
			t.Fatalf("kitchen: disabled %q", f.Disabled)
		}
		if resp, _ := c.do(http.MethodPost, "/functions/kitchen/enable", url.Values{"csrf": {good}}, nil); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("enable: %d", resp.StatusCode)
		}
		auditHas(t, n, url.Values{"action": {"function.enable"}, "fn": {"kitchen"}}, func(r audit.Record) bool {
			return r.Actor == "admin" && strings.HasPrefix(r.UserAgent, "moat-console (")
		})
	})

	t.Run("HostilePaths", func(t *testing.T) {
		c := newConsoleClient(t, base, nil)
		c.signIn(adminToken)
		for _, p := range []string{"/functions/..%2f..%2fetc", "/functions/%3Cscript%3E", "/functions/nosuch", "/audit/0", "/audit/abc", "/audit/99999999999",
			"/audit?limit=100000", "/audit?since=yesterday", "/audit?before=-1", "/?sort=%00&q=" + strings.Repeat("a", 8000), "/dead-letters/NOPE!",
			"/static/../console.go", "/functions/nosuch/logs"} {
			resp, body := c.do(http.MethodGet, p, nil, nil)
			if resp.StatusCode >= 500 || strings.Contains(body, "<script") {
				t.Errorf("%s: %d", p, resp.StatusCode)
			}
		}
		if resp, _ := c.do(http.MethodGet, "/", nil, nil); resp.StatusCode != 200 {
			t.Fatalf("the console after hostile paths: %d", resp.StatusCode)
		}
	})

	t.Run("FunctionsCannotSetTheCookie", func(t *testing.T) {
		resp, err := http.Get(n.URL() + "/fn/kitchen/attack?console=x")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		got := resp.Header.Values("Set-Cookie")
		if len(got) != 1 || !strings.HasPrefix(got[0], "kitchen=1") {
			t.Fatalf("Set-Cookie from a function: %q", got)
		}
	})

	t.Run("SessionsEnd", func(t *testing.T) {
		c := newConsoleClient(t, base, nil)
		c.signIn(adminToken)
		if resp, _ := c.do(http.MethodGet, "/node", nil, nil); resp.StatusCode != 200 {
			t.Fatalf("signed in: %d", resp.StatusCode)
		}
		now := time.Now()
		n.console.SetClock(func() time.Time { return now.Add(console.IdleTimeout + time.Minute) })
		defer n.console.SetClock(time.Now)
		if resp, _ := c.do(http.MethodGet, "/node", nil, nil); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login") {
			t.Fatalf("after the idle timeout: %d %s", resp.StatusCode, resp.Header.Get("Location"))
		}
		// Kept busy, a session still ends at its maximum age.
		n.console.SetClock(time.Now)
		c.signIn(adminToken)
		start := time.Now()
		for at := time.Duration(0); at < console.MaxAge; at += console.IdleTimeout / 2 {
			n.console.SetClock(func() time.Time { return start.Add(at) })
			if resp, _ := c.do(http.MethodGet, "/node", nil, nil); resp.StatusCode != 200 {
				t.Fatalf("busy at %v: %d", at, resp.StatusCode)
			}
		}
		n.console.SetClock(func() time.Time { return start.Add(console.MaxAge + time.Minute) })
		if resp, _ := c.do(http.MethodGet, "/node", nil, nil); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("past the maximum age: %d", resp.StatusCode)
		}
		n.console.SetClock(time.Now)
		// Signing out ends it on the node, not only in the browser.
		c.signIn(adminToken)
		stolen := c.http.Jar.Cookies(nil)
		c.do(http.MethodPost, "/logout", url.Values{"csrf": {c.csrf}}, nil)
		replay := newConsoleClient(t, base, nil)
		replay.http.Jar.SetCookies(nil, stolen)
		if resp, _ := replay.do(http.MethodGet, "/node", nil, nil); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("a signed-out session's cookie: %d", resp.StatusCode)
		}
	})

	// Last: it blocks the test's address for a while.
	t.Run("Guessing", func(t *testing.T) {
		c := newConsoleClient(t, base, nil)
		var last int
		for i := 0; i < 12; i++ {
			last = c.signIn("moat_guess_" + strings.Repeat("x", i)).StatusCode
		}
		if last != http.StatusTooManyRequests {
			t.Fatalf("the twelfth wrong key: %d", last)
		}
		// Shared with the API: the guesser is blocked there too.
		req, _ := http.NewRequest(http.MethodGet, n.URL()+"/api/v1/functions", nil)
		req.Header.Set("Authorization", "Bearer "+adminToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("the API after guessing at the console: %d", resp.StatusCode)
		}
	})
}

// TestConsoleTLS serves the console over TLS: a __Host- cookie, Secure,
// and no plain HTTP console on a public address.
func TestConsoleTLS(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := Start(ctx, slog.New(slog.DiscardHandler), Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0", ConsoleListen: "0.0.0.0:0"}); err == nil ||
		!strings.Contains(err.Error(), "console listen") {
		t.Fatalf("a console on 0.0.0.0 without TLS: %v", err)
	}
	data := t.TempDir()
	n, err := Start(ctx, slog.New(slog.DiscardHandler), Config{DataDir: data, Listen: "127.0.0.1:0", ConsoleListen: "127.0.0.1:0", TLSSelfSigned: true})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- n.Serve(ctx) }()
	defer func() { cancel(); <-done }()
	if !strings.HasPrefix(n.ConsoleURL(), "https://") {
		t.Fatalf("console at %s", n.ConsoleURL())
	}
	pem, _ := os.ReadFile(filepath.Join(data, "tls", "cert.pem"))
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	admin, _ := os.ReadFile(filepath.Join(data, auth.TokenFile))
	c := newConsoleClient(t, n.ConsoleURL(), tr)
	resp := c.signIn(strings.TrimSpace(string(admin)))
	raw := resp.Header.Get("Set-Cookie")
	if !strings.HasPrefix(raw, console.SecureCookie+"=") || !strings.Contains(raw, "Secure") || !strings.Contains(raw, "HttpOnly") {
		t.Fatalf("cookie over TLS: %q", raw)
	}
	if resp, _ := c.do(http.MethodGet, "/node", nil, nil); resp.StatusCode != 200 || resp.Header.Get("Strict-Transport-Security") == "" {
		t.Fatalf("over TLS: %d %v", resp.StatusCode, resp.Header)
	}
	// A plain-HTTP cookie of the same value is not the session.
	plain := newConsoleClient(t, n.ConsoleURL(), tr)
	var v string
	for _, ck := range c.http.Jar.Cookies(nil) {
		v = ck.Value
	}
	plain.http.Jar.SetCookies(nil, []*http.Cookie{{Name: console.Cookie, Value: v}})
	if resp, _ := plain.do(http.MethodGet, "/node", nil, nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("the session under the plain cookie's name: %d", resp.StatusCode)
	}
}
