package node

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/moatfn/moat/internal/api"
	"github.com/moatfn/moat/internal/audit"
	"github.com/moatfn/moat/internal/auth"
	"github.com/moatfn/moat/internal/testwasm"
)

// screenshotDir is where the console's screenshots go for review:
// $MOAT_SCREENSHOTS, or .screenshots/console in the checkout (ignored by
// git).
func screenshotDir(t *testing.T) string {
	dir := os.Getenv("MOAT_SCREENSHOTS")
	if dir == "" {
		_, file, _, _ := runtime.Caller(0)
		dir = filepath.Join(filepath.Dir(file), "..", "..", ".screenshots", "console")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", dir)
	return dir
}

// consoleFixture is the widget demo's node with what the console's pages
// show beside: a second version of page to roll back to, the kitchen
// (whose attack page goes for the console), a function whose events fail
// into dead letters, invocations and errors, and an auditor's key.
type consoleFixture struct {
	*widgets
	console   string
	admin     string
	pageFirst string // page's first version: the rollback's target
	pageNext  string // the version serving after the redeploy
	auditor   *api.NewKey
}

func startConsoleFixture(t *testing.T) *consoleFixture {
	t.Helper()
	ctx := context.Background()
	w := startWidgets(t)
	f := &consoleFixture{widgets: w, console: w.n.ConsoleURL()}
	if f.console == "" {
		t.Fatal("no console")
	}
	admin, _ := os.ReadFile(filepath.Join(w.data, auth.TokenFile))
	f.admin = strings.TrimSpace(string(admin))
	pg, err := w.n.client.Get(ctx, "page")
	if err != nil {
		t.Fatal(err)
	}
	f.pageFirst = pg.Active
	f.pageNext = deployDir(t, w.n, widgetFolder(t, "page", widgetsDir("page"), func(y string) string { return y + "\n# the second version\n" }))
	kitchen := testwasm.Bytes(t, "kitchen")
	deploy(t, w.n, strings.Replace(kitchenManifest, "env: {TITLE: Widgets}\n", "owner: platform@example.com\n", 1), kitchen)
	failing := functionDir(t, `name: fails
module: fn.wasm
owner: platform@example.com
http: {auth: internal}
input: {schema: s.json}
triggers:
  - queue: {subject: console.fail, max_deliver: 1}
`, kitchen)
	os.WriteFile(filepath.Join(failing, "s.json"), []byte(`{"type": "object", "required": ["must"]}`), 0o644)
	deployDir(t, w.n, failing)
	if _, err := w.n.client.Publish(ctx, "console.fail", http.Header{"Content-Type": {"application/json"}}, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	lettersOf(t, w.n, "fails", 1)
	for _, p := range []string{"/fn/kitchen/hello", "/fn/kitchen/hello", "/fn/kitchen/log", "/fn/kitchen/exit3", "/fn/page/"} {
		resp, err := http.Get(w.n.URL() + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if f.auditor, err = w.n.client.CreateKey(ctx, api.KeyRequest{Role: auth.RoleAuditor, Note: "console test"}); err != nil {
		t.Fatal(err)
	}
	return f
}

// signIn signs the browser in with key, from wherever it is.
func (f *consoleFixture) signIn(b *browser, key string) {
	b.t.Helper()
	b.open(f.console + "/login")
	b.typeInto("input[name=key]", key)
	b.submit("button[type=submit]")
	if b.url() != f.console+"/" {
		b.t.Fatalf("signed in at %s: %s", b.url(), b.text("main"))
	}
}

// auditHas waits for a record that match accepts.
func auditHas(t *testing.T, n *testNode, q url.Values, match func(audit.Record) bool) audit.Record {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		recs, err := n.client.Audit(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if match(r) {
				return r
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no audit record matches among %d for %v", len(recs), q)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestConsoleInBrowser walks the console in headless Chromium as an admin
// and as an auditor, and attacks it from a page on the functions' origin.
func TestConsoleInBrowser(t *testing.T) {
	if os.Getenv("MOAT_NO_BROWSER") != "" {
		t.Skip("MOAT_NO_BROWSER is set")
	}
	f := startConsoleFixture(t)
	n, ctx := f.n, context.Background()
	shots := screenshotDir(t)
	b := newBrowser(t)

	b.open(f.console + "/functions/page")
	if u := b.url(); !strings.HasPrefix(u, f.console+"/login?next=") {
		t.Fatalf("signed out, the console sent the browser to %s", u)
	}
	b.screenshot(shots, "login")
	b.typeInto("input[name=key]", "moat_nope_guess")
	b.submit("button[type=submit]")
	if got := b.text("#error"); !strings.Contains(got, "not a valid API key") {
		t.Fatalf("a wrong key: %q", got)
	}
	b.typeInto("input[name=key]", f.admin)
	b.submit("button[type=submit]")
	if u := b.url(); u != f.console+"/functions/page" {
		t.Fatalf("after sign-in the browser is at %s, not where it was going", u)
	}

	t.Run("Functions", func(t *testing.T) {
		// The meter writes usage every five seconds: the charts follow.
		deadline := time.Now().Add(30 * time.Second)
		for {
			b.open(f.console + "/")
			if b.count("tr[data-fn=kitchen] svg.chart rect.err") > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no chart with errors for kitchen: %s", b.text("#functions"))
			}
			time.Sleep(time.Second)
		}
		for _, fn := range []string{"page", "contact", "catalog-pdf", "send-catalog", "inventory-admin", "kitchen", "fails"} {
			if b.count("tr[data-fn="+fn+"]") != 1 {
				t.Fatalf("no row for %s", fn)
			}
		}
		if got := b.text("tr[data-fn=kitchen]"); !strings.Contains(got, "platform@example.com") || !strings.Contains(got, "public") {
			t.Fatalf("kitchen's row: %q", got)
		}
		if got := b.text("tr[data-fn=fails]"); !strings.Contains(got, "queue") {
			t.Fatalf("fails's row shows no queue trigger: %q", got)
		}
		b.screenshot(shots, "functions")
		b.open(f.console + "/?q=cat")
		if got := b.count("tr[data-fn]"); got != 2 || b.count("tr[data-fn=catalog-pdf]") != 1 || b.count("tr[data-fn=send-catalog]") != 1 {
			t.Fatalf("filtered on cat: %d rows", got)
		}
		b.open(f.console + "/?exposure=internal")
		if b.count("tr[data-fn=fails]") != 1 || b.count("tr[data-fn=kitchen]") != 0 {
			t.Fatal("the exposure filter")
		}
		b.open(f.console + "/?sort=errors&desc=1")
		if got := b.attr("#functions tbody tr", "data-fn"); got != "kitchen" {
			t.Fatalf("most errors first: %s", got)
		}
		b.open(f.console + "/?sort=name&desc=1")
		if got := b.attr("#functions tbody tr", "data-fn"); got != "send-catalog" {
			t.Fatalf("names backwards: %s first", got)
		}
	})

	t.Run("FunctionAndRollback", func(t *testing.T) {
		b.open(f.console + "/functions/kitchen")
		if b.count("svg.chart") == 0 || !strings.Contains(b.text(".manifest"), `"name": "kitchen"`) {
			t.Fatal("kitchen's page has no chart or manifest")
		}
		if b.count("#log .entry") == 0 {
			t.Fatal("kitchen's page shows no log")
		}
		b.screenshot(shots, "function-kitchen")
		b.open(f.console + "/functions/contact")
		if got := b.text("#grants"); !strings.Contains(got, "kv:contacts") {
			t.Fatalf("contact's grants: %q", got)
		}
		b.screenshot(shots, "function-contact")
		b.open(f.console + "/functions/page")
		if b.count("button.rollback") != 1 {
			t.Fatalf("%d rollback buttons for two versions", b.count("button.rollback"))
		}
		b.screenshot(shots, "function-page")
		b.submit("button.rollback")
		if got := b.text("#flash"); !strings.HasPrefix(got, "Rolled back to") {
			t.Fatalf("after the rollback: %q", got)
		}
		if pg, err := n.client.Get(ctx, "page"); err != nil || pg.Active != f.pageFirst {
			t.Fatalf("page serves %v (%v), want %s", pg, err, f.pageFirst)
		}
		// Audited as the API audits a rollback, naming the console.
		auditHas(t, n, url.Values{"action": {"rollback"}, "fn": {"page"}}, func(r audit.Record) bool {
			return r.Actor == "admin" && r.Outcome == audit.OK && r.Version == f.pageFirst && strings.HasPrefix(r.UserAgent, "moat-console (")
		})
	})

	t.Run("Pages", func(t *testing.T) {
		b.open(f.console + "/posture")
		if got := b.text("main"); !strings.Contains(got, "public-no-schema") || !strings.Contains(got, "kitchen") {
			t.Fatalf("posture shows no public-no-schema finding for kitchen: %q", got)
		}
		b.screenshot(shots, "posture")
		b.open(f.console + "/audit?action=rollback")
		if got := b.text("#verify"); !strings.HasPrefix(got, "The chain verifies") {
			t.Fatalf("verification: %q", got)
		}
		if got := b.text("#audit tbody"); !strings.Contains(got, "rollback") || strings.Contains(got, "deploy") {
			t.Fatalf("filtered on rollback: %q", got)
		}
		b.screenshot(shots, "audit")
		b.submit("#audit tbody a")
		if got := b.text("#record"); !strings.Contains(got, `"action": "rollback"`) || !strings.Contains(got, "moat-console") {
			t.Fatalf("the record: %q", got)
		}
		b.screenshot(shots, "audit-record")
		b.open(f.console + "/node")
		if b.text("#version") == "" || !strings.Contains(b.text("#store"), "embedded") {
			t.Fatalf("node page: %q", b.text("main"))
		}
		b.screenshot(shots, "node")
		b.open(f.console + "/dead-letters")
		if got := b.text("#dead-letters"); !strings.Contains(got, "fails") || !strings.Contains(got, "send-catalog") {
			t.Fatalf("dead letters: %q", got)
		}
		b.screenshot(shots, "dead-letters")
		b.open(f.console + "/dead-letters/fails")
		if b.count("#letters button.replay") != 1 {
			t.Fatalf("fails's letters: %q", b.text("main"))
		}
		b.screenshot(shots, "dead-letters-fails")
		b.submit("#letters button.replay")
		if got := b.text("#flash"); got != "Replayed 1." {
			t.Fatalf("after replay: %q", got)
		}
		auditHas(t, n, url.Values{"action": {"dlq.replay"}, "fn": {"fails"}}, func(r audit.Record) bool {
			return r.Actor == "admin" && strings.HasPrefix(r.UserAgent, "moat-console (")
		})
		lettersOf(t, n, "fails", 1) // it fails again
		b.open(f.console + "/dead-letters/fails")
		b.submit("#purge")
		if got := b.text("#flash"); got != "Purged 1." {
			t.Fatalf("after purge: %q", got)
		}
		lettersOf(t, n, "fails", 0)
	})

	t.Run("LiveTail", func(t *testing.T) {
		ck := b.cookies()[auth.ConsoleCookie]
		req, _ := http.NewRequest(http.MethodGet, f.console+"/functions/kitchen/logs", nil)
		req.AddCookie(&http.Cookie{Name: auth.ConsoleCookie, Value: ck})
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		resp, err := http.DefaultClient.Do(req.WithContext(cctx))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || !strings.HasPrefix(ct, "text/html") {
			t.Fatalf("tail: %d %s", resp.StatusCode, ct)
		}
		rd := bufio.NewReader(resp.Body)
		for {
			line, err := rd.ReadString('\n')
			if err != nil {
				t.Fatalf("before the log began: %v", err)
			}
			if strings.Contains(line, `id="log"`) {
				break
			}
		}
		// An invocation after the page began shows up in it.
		r, err := http.Get(n.URL() + "/fn/kitchen/log")
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		id := r.Header.Get("Moat-Invocation-Id")
		var seen strings.Builder
		for !strings.Contains(seen.String(), id) {
			line, err := rd.ReadString('\n')
			seen.WriteString(line)
			if err != nil {
				t.Fatalf("the tail ended before %s: %v\n%s", id, err, seen.String())
			}
		}
	})

	t.Run("AttackFromTheFunctionsOrigin", func(t *testing.T) {
		before := b.cookies()[auth.ConsoleCookie]
		b.open(n.URL() + "/fn/kitchen/attack?console=" + url.QueryEscape(f.console))
		cookie := b.waitText("#cookie", func(s string) bool { return strings.HasPrefix(s, "cookie:") })
		if strings.Contains(cookie, "moat_console") || !strings.Contains(cookie, "kitchen=1") {
			t.Fatalf("the function's script sees cookies %q", cookie)
		}
		if got := b.text("#server-cookie"); got != "cookie header:" {
			t.Fatalf("the function was handed %q", got)
		}
		b.waitText("#post", func(s string) bool { return s != "pending" })
		if got := b.waitText("#read", func(s string) bool { return s != "pending" }); got != "blocked" {
			t.Fatalf("the function's script read the console: %q", truncateString(got, 200))
		}
		b.screenshot(shots, "attack-page")
		b.submit("#go") // a cross-origin form post, as a link in a phishing mail would make
		if got := b.text("h1"); got != "Refused" {
			t.Fatalf("the forged form post: %q", b.text("main"))
		}
		b.screenshot(shots, "attack-refused")
		if pg, err := n.client.Get(ctx, "page"); err != nil || pg.Disabled != "" {
			t.Fatalf("page after the attack: disabled %q (%v)", pg.Disabled, err)
		}
		// Both forged posts were refused and audited; the session is intact.
		recs, err := n.client.Audit(ctx, url.Values{"action": {"refuse"}, "fn": {"console POST /functions/page/disable"}})
		if err != nil || len(recs) < 2 {
			t.Fatalf("%d refusals audited (%v)", len(recs), err)
		}
		b.open(f.console + "/")
		if got := b.text("#who"); !strings.HasPrefix(got, "admin") || b.cookies()[auth.ConsoleCookie] != before {
			t.Fatalf("after the attack the console shows %q", got)
		}
	})

	t.Run("Auditor", func(t *testing.T) {
		b.submit(".who button")
		if !strings.HasPrefix(b.url(), f.console+"/login") {
			t.Fatalf("signed out at %s", b.url())
		}
		f.signIn(b, f.auditor.Token)
		if got := b.text("#who"); got != "key:"+f.auditor.ID+" (auditor)" {
			t.Fatalf("signed in as %q", got)
		}
		b.open(f.console + "/functions/page")
		if b.count("button.rollback") != 0 || b.count("#disable") != 0 {
			t.Fatal("an auditor is offered changes")
		}
		b.screenshot(shots, "function-page-auditor")
		b.open(f.console + "/dead-letters/fails")
		if b.count(".denied") != 1 {
			t.Fatalf("an auditor's dead letters page: %q", b.text("main"))
		}
		// The auditor forges the rollback form with its own session and
		// token: the API's role check refuses it.
		csrf := b.attr("input[name=csrf]", "value")
		form := url.Values{"csrf": {csrf}, "version": {f.pageNext}}
		req, _ := http.NewRequest(http.MethodPost, f.console+"/functions/page/rollback", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", f.console)
		req.AddCookie(&http.Cookie{Name: auth.ConsoleCookie, Value: b.cookies()[auth.ConsoleCookie]})
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "needs the role") {
			t.Fatalf("an auditor's rollback: %d %s", resp.StatusCode, body)
		}
		if pg, _ := n.client.Get(ctx, "page"); pg.Active != f.pageFirst {
			t.Fatalf("an auditor rolled page to %s", pg.Active)
		}
		auditHas(t, n, url.Values{"action": {"refuse"}, "actor": {"key:" + f.auditor.ID}}, func(r audit.Record) bool {
			return r.Reason == "role" && r.Target == "POST /api/v1/functions/page/rollback"
		})
		// Revoking the key ends its session at once.
		if err := n.client.RevokeKey(ctx, f.auditor.ID); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			b.open(f.console + "/")
			if strings.HasPrefix(b.url(), f.console+"/login") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("a revoked key's session goes on")
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
}

func truncateString(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
