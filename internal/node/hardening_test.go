package node

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/moatfn/moat/internal/fnlog"
	"github.com/moatfn/moat/internal/testwasm"
)

// The findings of the outside review (issue 16), each as a class, against
// one node shared by the cases.

const hardReactorManifest = `name: hreactor
module: fn.wasm
limits: {memory: 64MiB, timeout: 20s, response: 1MiB, body: 1MiB}
http: {auth: public, methods: [GET, POST]}
`

// hardNode starts the node the hardening cases share, with the kitchen
// (a command) and a reactor deployed under generous timeouts, so that a slow
// machine reaches a cap before the clock.
func hardNode(t *testing.T) *testNode {
	t.Helper()
	n := startNode(t, t.TempDir())
	deploy(t, n, strings.Replace(kitchenManifest, "timeout: 2s", "timeout: 20s", 1), testwasm.Bytes(t, "kitchen"))
	deploy(t, n, hardReactorManifest, testwasm.Bytes(t, "reactor"))
	return n
}

// entryFor waits for the log entry of invocation id of fn.
func entryFor(t *testing.T, n *testNode, fn, id string) *fnlog.Entry {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		var found *fnlog.Entry
		err := n.client.Logs(ctx, fn, 100, false, func(e *fnlog.Entry) {
			if e.InvocationID == id {
				found = e
			}
		})
		if err != nil {
			t.Fatalf("logs of %s: %v", fn, err)
		}
		if found != nil {
			return found
		}
		if ctx.Err() != nil {
			t.Fatalf("no log entry for invocation %s of %s", id, fn)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestHardening(t *testing.T) {
	n := hardNode(t)
	t.Run("OutputCaps", func(t *testing.T) { testOutputCaps(t, n) })
	t.Run("RequestTarget", func(t *testing.T) { testRequestTarget(t, n) })
	t.Run("Framing", func(t *testing.T) { testFraming(t, n) })
	t.Run("GuestProtocol", func(t *testing.T) { testGuestProtocol(t, n) })
}

// raw writes req to the node over a bare TCP connection and returns
// everything the node sends back until it closes the connection or goes
// quiet for a second.
func raw(t *testing.T, n *testNode, req string) string {
	t.Helper()
	u, _ := url.Parse(n.URL())
	c, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	var out []byte
	buf := make([]byte, 64<<10)
	for {
		c.SetReadDeadline(time.Now().Add(time.Second))
		k, err := c.Read(buf)
		out = append(out, buf[:k]...)
		if err != nil {
			return string(out)
		}
	}
}

// testRequestTarget: the function is handed the request target as the
// client sent it: an escaped "?" stays in the path, an escaped "%" is a
// percent sign, and a raw "#" is refused (400) rather than hidden from the
// function. (The node's mux redirects "//" to "/" before the gateway; the
// gateway's own tests hand it "//".)
func testRequestTarget(t *testing.T, n *testNode) {
	for _, tt := range []struct{ fn, target, path, query, uri string }{
		{"kitchen", "/request/x%3Frole%3Dadmin?role=user", "/request/x?role=admin", "role=user", "/request/x%3Frole%3Dadmin?role=user"},
		{"kitchen", "/request/100%25", "/request/100%", "", "/request/100%25"},
		{"hreactor", "/request?a=%25", "/request", "a=%25", "/request?a=%25"},
	} {
		resp, body := invoke(t, n, "GET", tt.fn, tt.target, nil)
		var got struct {
			Path       string `json:"path"`
			Query      string `json:"query"`
			RequestURI string `json:"request_uri"`
		}
		if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &got) != nil {
			t.Errorf("%s %s = %d %.200s", tt.fn, tt.target, resp.StatusCode, body)
			continue
		}
		if got.Path != tt.path || got.Query != tt.query || got.RequestURI != tt.uri {
			t.Errorf("%s %s reached the function as path %q query %q REQUEST_URI %q, want %q %q %q",
				tt.fn, tt.target, got.Path, got.Query, got.RequestURI, tt.path, tt.query, tt.uri)
		}
	}
	out := raw(t, n, "GET /fn/kitchen/request#x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(out)), nil)
	if err != nil || resp.StatusCode != 400 {
		t.Errorf("a raw # in the target: %.300q, want 400", out)
	}
}

// testOutputCaps: past the response cap the answer is the documented 502
// naming the cap whatever the guest does after the failed write (here: it
// exits 0, or returns, as if all were well), and the function's log says
// so; a log over its caps leaves an entry counting what was dropped.
func testOutputCaps(t *testing.T, n *testNode) {
	for _, fn := range []string{"kitchen", "hreactor"} {
		resp, body := invoke(t, n, "GET", fn, "/spewexit", nil)
		if resp.StatusCode != 502 || !strings.Contains(body, "response limit of 1MiB") {
			t.Errorf("%s /spewexit = %d %.200s, want 502 naming the response limit", fn, resp.StatusCode, body)
		}
		e := entryFor(t, n, fn, resp.Header.Get("Moat-Invocation-Id"))
		if e.Status != 502 || !strings.Contains(e.Error, "response limit 1MiB") {
			t.Errorf("%s /spewexit log entry: status %d error %q", fn, e.Status, e.Error)
		}

		resp, body = invoke(t, n, "GET", fn, "/spewlog", nil)
		if resp.StatusCode != 200 || !strings.Contains(body, "logged a lot") {
			t.Errorf("%s /spewlog = %d %.200s", fn, resp.StatusCode, body)
		}
		e = entryFor(t, n, fn, resp.Header.Get("Moat-Invocation-Id"))
		if e.Dropped == 0 {
			t.Errorf("%s /spewlog: the log entry does not count what the caps dropped: %d lines kept", fn, len(e.Lines))
		}
	}
}

// testFraming: a request another parser could frame differently never
// smuggles a second one through the node, on the function door or the
// control API: CL beside TE is refused, a chunked request is answered and
// the connection closed, and keep-alive still serves honest pipelines.
func testFraming(t *testing.T, n *testNode) {
	answers := func(out string) []int {
		var codes []int
		br := bufio.NewReader(strings.NewReader(out))
		for {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				return codes
			}
			io.Copy(io.Discard, resp.Body)
			codes = append(codes, resp.StatusCode)
		}
	}
	smuggled := "GET /fn/kitchen/status HTTP/1.1\r\nHost: h\r\n\r\n"
	for _, tt := range []struct {
		stream string
		want   string
	}{
		{"POST /fn/kitchen/echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\n" + smuggled, "[400]"},
		{"POST /api/v1/functions HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled, "[400]"},
		{"POST /fn/kitchen/echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n" + smuggled, "[200]"},
		{"POST /fn/kitchen/echo HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n" + smuggled, "[400]"},
		{"GET /fn/kitchen/hello HTTP/1.1\nHost: h\n\n" + smuggled, "[400]"},
		{"POST /fn/kitchen/echo HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi" + smuggled, "[200 418]"},
	} {
		if got := fmt.Sprint(answers(raw(t, n, tt.stream))); got != tt.want {
			t.Errorf("%q answered %s, want %s", tt.stream, got, tt.want)
		}
	}
}

// testGuestProtocol: a function answers 200-599 only, and no spelling of a
// hop-by-hop, framing, origin-wide or Moat-* header reaches the client.
func testGuestProtocol(t *testing.T, n *testNode) {
	for _, fn := range []string{"kitchen", "hreactor"} {
		for _, status := range []string{"101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade", "100 Continue", "103", "199", "600", "0"} {
			resp, body := invoke(t, n, "POST", fn, "/raw", []byte("Status: "+status+"\r\n\r\nhi"))
			if resp.StatusCode != 502 || resp.Header.Get("Upgrade") != "" {
				t.Errorf("%s answering Status %q: %d %v %.200s, want 502", fn, status, resp.StatusCode, resp.Header, body)
				continue
			}
			if e := entryFor(t, n, fn, resp.Header.Get("Moat-Invocation-Id")); !strings.Contains(e.Error, "bad Status") {
				t.Errorf("%s answering Status %q: log entry error %q", fn, status, e.Error)
			}
		}
		forged := "Moat_Invocation_Id: forged\r\nmoat-caller: key:admin\r\ntransfer_encoding: chunked\r\nCONNECTION: close\r\n" +
			"Content_Length: 1\r\nkeep_alive: timeout=999\r\nUPGRADE: h2c\r\nProxy_Authenticate: Basic\r\nAlt_Svc: h2=\"evil.example:443\"\r\n" +
			"clear-site-data: \"*\"\r\nTrailer: X\r\nTE: trailers\r\nX-Kept: yes\r\n\r\nbody"
		resp, body := invoke(t, n, "POST", fn, "/raw", []byte(forged))
		// (The reactor's SDK appends its own empty answer to the body.)
		if resp.StatusCode != 200 || !strings.HasPrefix(body, "body") || resp.Header.Get("X-Kept") != "yes" {
			t.Errorf("%s forged headers: %d %q %v", fn, resp.StatusCode, body, resp.Header)
			continue
		}
		id := resp.Header.Get("Moat-Invocation-Id")
		for k := range resp.Header {
			switch k {
			case "X-Kept", "Date", "Content-Type", "Content-Length", "Moat-Invocation-Id":
			default:
				t.Errorf("%s: header %s: %q reached the client", fn, k, resp.Header[k])
			}
		}
		if len(resp.Header["Moat-Invocation-Id"]) != 1 || len(id) != 24 || resp.Close || resp.ContentLength != int64(len(body)) {
			t.Errorf("%s: Moat-Invocation-Id %q, close %v, length %d", fn, resp.Header["Moat-Invocation-Id"], resp.Close, resp.ContentLength)
		}
	}
}
