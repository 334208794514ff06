package node

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// browser is a headless Chromium driven over WebDriver (chromedriver), from
// Debian's packages; scripts/install-browser installs them when missing.
type browser struct {
	t       *testing.T
	base    string // chromedriver's URL
	session string
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	install := exec.Command("bash", filepath.Join(filepath.Dir(file), "..", "..", "scripts", "install-browser"))
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("scripts/install-browser: %v\n%s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	driver := exec.Command("/usr/bin/chromedriver", fmt.Sprintf("--port=%d", port))
	if err := driver.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { driver.Process.Kill(); driver.Wait() })
	b := &browser{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", port)}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if resp, err := http.Get(b.base + "/status"); err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("chromedriver did not start")
		}
		time.Sleep(100 * time.Millisecond)
	}
	args := []string{"--headless", "--no-sandbox", "--window-size=1400,1000", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--user-data-dir=" + t.TempDir()}
	var created struct {
		Value struct {
			SessionID string `json:"sessionId"`
		} `json:"value"`
	}
	b.do(http.MethodPost, "/session", map[string]any{"capabilities": map[string]any{"alwaysMatch": map[string]any{
		"browserName": "chrome", "goog:chromeOptions": map[string]any{"binary": "/usr/bin/chromium", "args": args},
	}}}, &created)
	b.session = "/session/" + created.Value.SessionID
	t.Cleanup(func() { b.do(http.MethodDelete, b.session, nil, nil) })
	return b
}

func (b *browser) do(method, path string, body, out any) {
	b.t.Helper()
	var r io.Reader
	if body != nil {
		j, _ := json.Marshal(body)
		r = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, b.base+path, r)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		b.t.Fatalf("webdriver %s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			b.t.Fatalf("webdriver %s %s: %v", method, path, err)
		}
	}
}

func (b *browser) open(url string) {
	b.do(http.MethodPost, b.session+"/url", map[string]string{"url": url}, nil)
}

// find returns the id of the element css selects.
func (b *browser) find(css string) string {
	b.t.Helper()
	var found struct {
		Value map[string]string `json:"value"`
	}
	b.do(http.MethodPost, b.session+"/element", map[string]string{"using": "css selector", "value": css}, &found)
	for _, id := range found.Value {
		return id
	}
	b.t.Fatalf("no element %s", css)
	return ""
}

func (b *browser) typeInto(css, text string) {
	b.do(http.MethodPost, b.session+"/element/"+b.find(css)+"/value", map[string]string{"text": text}, nil)
}

func (b *browser) click(css string) {
	b.do(http.MethodPost, b.session+"/element/"+b.find(css)+"/click", map[string]string{}, nil)
}

func (b *browser) text(css string) string {
	var v struct {
		Value string `json:"value"`
	}
	b.do(http.MethodGet, b.session+"/element/"+b.find(css)+"/text", nil, &v)
	return v.Value
}

// TestWidgetFormInBrowser fills in the catalog form in a real browser and
// follows the request to the mail in the stand-in's inbox.
func TestWidgetFormInBrowser(t *testing.T) {
	if os.Getenv("MOAT_NO_BROWSER") != "" {
		t.Skip("MOAT_NO_BROWSER is set")
	}
	w := startWidgets(t)
	b := newBrowser(t)
	b.open(w.n.URL() + "/fn/page/")
	b.typeInto("input[name=name]", "Carole")
	b.typeInto("input[name=email]", "carole@example.com")
	for _, v := range []string{"blue", "green", "big", "small"} {
		b.click("input[value=" + v + "]")
	}
	b.click("button[type=submit]")
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := b.text("#result")
		if strings.HasPrefix(got, "Thank you: your catalog is on its way") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the page says %q", got)
		}
		time.Sleep(200 * time.Millisecond)
	}
	msgs := mailsTo(t, w.mail, "carole@example.com", 1) // sent by send-catalog, after the page answered
	if len(msgs) != 1 || msgs[0].To != "carole@example.com" || !bytes.HasPrefix(msgs[0].Attachment, []byte("%PDF-")) {
		t.Fatalf("%d mails", len(msgs))
	}
	// The inbox, in the browser too.
	b.open(w.mail.Inbox + "/")
	if got := b.text("article h2"); got != "Your widget catalog" {
		t.Fatalf("the inbox shows %q", got)
	}
}

// attr returns the attribute (or property) name of the element css selects.
func (b *browser) attr(css, name string) string {
	var v struct {
		Value string `json:"value"`
	}
	b.do(http.MethodGet, b.session+"/element/"+b.find(css)+"/attribute/"+name, nil, &v)
	return v.Value
}

// count returns how many elements css selects.
func (b *browser) count(css string) int {
	var found struct {
		Value []map[string]string `json:"value"`
	}
	b.do(http.MethodPost, b.session+"/elements", map[string]string{"using": "css selector", "value": css}, &found)
	return len(found.Value)
}

// url returns the address of the page shown.
func (b *browser) url() string {
	var v struct {
		Value string `json:"value"`
	}
	b.do(http.MethodGet, b.session+"/url", nil, &v)
	return v.Value
}

// cookies returns the browser's cookies for the page shown, HttpOnly ones
// too (WebDriver sees them; a page's script does not).
func (b *browser) cookies() map[string]string {
	var v struct {
		Value []struct{ Name, Value string } `json:"value"`
	}
	b.do(http.MethodGet, b.session+"/cookie", nil, &v)
	out := map[string]string{}
	for _, c := range v.Value {
		out[c.Name] = c.Value
	}
	return out
}

// screenshot writes the page shown as a PNG under dir.
func (b *browser) screenshot(dir, name string) {
	b.t.Helper()
	var v struct {
		Value string `json:"value"`
	}
	b.do(http.MethodGet, b.session+"/screenshot", nil, &v)
	png, err := base64.StdEncoding.DecodeString(v.Value)
	if err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// waitText waits until the text of css satisfies ok.
func (b *browser) waitText(css string, ok func(string) bool) string {
	b.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		got := b.text(css)
		if ok(got) {
			return got
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("%s says %q", css, got)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// script runs js in the page shown and returns what it returns.
func (b *browser) script(js string) any {
	var v struct {
		Value any `json:"value"`
	}
	b.do(http.MethodPost, b.session+"/execute/sync", map[string]any{"script": js, "args": []any{}}, &v)
	return v.Value
}

// submit clicks what css selects and waits for the page it loads: the
// old page is marked, and the wait ends when a page without the mark has
// loaded (a form that answers with the page it was on has the same URL).
func (b *browser) submit(css string) {
	b.t.Helper()
	b.script("window.__moatOld = true")
	b.click(css)
	deadline := time.Now().Add(15 * time.Second)
	for b.script("return !window.__moatOld && document.readyState === 'complete'") != true {
		if time.Now().After(deadline) {
			b.t.Fatalf("clicking %s loaded no page", css)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
