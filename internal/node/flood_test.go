package node

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moatfn/moat/internal/api"
	"github.com/moatfn/moat/internal/audit"
	"github.com/moatfn/moat/internal/auth"
	"github.com/moatfn/moat/internal/testwasm"
)

// TestFlood: 10,000 requests over loopback HTTP from 32 clients at a
// function limited to 50/s admit what the limit allows, within 1%; a second
// function keeps answering every request while the flood runs; and the
// refusals reach the audit trail as a few records that stand for all of
// them, in a chain that still verifies. (How its latency holds up is a
// benchmark: bench/run, BENCHMARKS.md.)
func TestFlood(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, t.TempDir())
	deploy(t, n, "name: limited\nmodule: fn.wasm\nlimits: {memory: 1MiB, rate: 50/s}\nhttp: {auth: public}\n", testwasm.MinimalCGI())
	deploy(t, n, "name: quiet\nmodule: fn.wasm\nlimits: {memory: 1MiB}\nhttp: {auth: public}\n", testwasm.MinimalCGI())
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 30 * time.Second}
	get := func(fn string) int {
		resp, err := client.Get(n.URL() + "/fn/" + fn)
		if err != nil {
			t.Error(err)
			return 0
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}

	const total, clients = 10_000, 32
	// Open the clients' connections first, so that the flood's clock
	// starts when its requests do.
	var warm sync.WaitGroup
	for range clients {
		warm.Go(func() { get("quiet") })
	}
	warm.Wait()
	var next, admitted, refused, other, lastSent atomic.Int64
	quietDone := make(chan struct{})
	var quietOK, quietAll int
	go func() {
		defer close(quietDone)
		for next.Load() < total {
			quietAll++
			if get("quiet") == 200 {
				quietOK++
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	// Paced at about 4,000/s, so that the flood lasts long enough for the
	// limit's refill to count, and ends within seconds.
	start := time.Now()
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > total {
					return
				}
				if due := start.Add(time.Duration(i) * time.Second / 4000); time.Until(due) > 0 {
					time.Sleep(time.Until(due))
				}
				if i == total {
					lastSent.Store(int64(time.Since(start)))
				}
				switch get("limited") {
				case 200:
					admitted.Add(1)
				case 429:
					refused.Add(1)
				default:
					other.Add(1)
				}
			}
		})
	}
	wg.Wait()
	lasted := time.Since(start)
	<-quietDone

	// The bucket holds a second's worth and refills at 50/s, for as long
	// as requests were sent.
	limit := 50 + 50*time.Duration(lastSent.Load()).Seconds()
	slack := math.Ceil(limit / 100)
	if got := float64(admitted.Load()); got > limit+1 || got < limit-slack-1 {
		t.Errorf("admitted %v over %v; the limit allows %.1f (within 1%%: ±%v)", got, lasted, limit, slack)
	}
	if other.Load() != 0 || admitted.Load()+refused.Load() != total {
		t.Errorf("%d admitted, %d refused, %d other of %d", admitted.Load(), refused.Load(), other.Load(), total)
	}
	if quietOK != quietAll || quietAll < 10 {
		t.Errorf("the unflooded function answered %d of %d during the flood", quietOK, quietAll)
	}

	// Refusals are audited per kind and window: wait for the last window
	// to end and its summary to be published.
	var recs []int
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := n.client.Audit(ctx, url.Values{"action": {"refuse"}, "fn": {"limited"}, "limit": {"10000"}})
		if err != nil {
			t.Fatal(err)
		}
		recs = recs[:0]
		counted := 0
		for _, r := range got {
			recs = append(recs, r.Repeats)
			counted += max(r.Repeats, 1)
			if r.Reason != "rate" || r.Outcome != "refused" {
				t.Fatalf("refusal record %+v", r)
			}
		}
		if int64(counted) == refused.Load() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("audit records stand for %d refusals, want %d (%d records)", counted, refused.Load(), len(got))
		}
		time.Sleep(200 * time.Millisecond)
	}
	if max := 4 * (int(lasted.Seconds()) + 2); len(recs) > max {
		t.Errorf("%d audit records for %d refusals over %v: want at most %d", len(recs), refused.Load(), lasted, max)
	}
	rep, err := n.client.AuditVerify(ctx)
	if err != nil || !rep.OK() {
		t.Fatalf("verify: %+v %v", rep, err)
	}
	t.Logf("%v: %d admitted (limit %.1f), %d refused in %d audit records; unflooded %d/%d", lasted, admitted.Load(), limit, refused.Load(), len(recs), quietOK, quietAll)
}

// lockedBuffer is a log sink for concurrent writers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestStrangerFlood: requests with no token, or a malformed one, come
// before any limit and cost their sender nothing. A flood of them at a
// function that needs a key and at the control API is answered 401 each,
// but leaves a few audit records that count every request, and a few log
// lines that count the ones they stand for, not a record and a line each.
func TestStrangerFlood(t *testing.T) {
	var logs lockedBuffer
	n := startNodeLog(t, Config{DataDir: t.TempDir()}, slog.New(slog.NewTextHandler(&logs, nil)))
	deploy(t, n, "name: guarded\nmodule: fn.wasm\nlimits: {memory: 1MiB}\nhttp: {auth: key}\n", testwasm.MinimalCGI())
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}, Timeout: 30 * time.Second}

	const each = 2000
	var statuses sync.Map
	start := time.Now()
	var wg sync.WaitGroup
	for c := range 16 {
		wg.Go(func() {
			for i := range each / 8 {
				url := n.URL() + "/fn/guarded"
				if c%2 == 1 {
					url = n.URL() + "/api/v1/functions"
				}
				req, _ := http.NewRequest("GET", url, nil)
				if i%2 == 1 {
					// Malformed: no guess at a key, so the source is not
					// blocked, and every request is answered 401.
					req.Header.Set("Authorization", "Basic "+strings.Repeat("A", 100))
				}
				resp, err := client.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				v, _ := statuses.LoadOrStore(resp.StatusCode, new(atomic.Int64))
				v.(*atomic.Int64).Add(1)
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	statuses.Range(func(k, v any) bool {
		if k.(int) != 401 {
			t.Errorf("%d requests answered %d, want 401", v.(*atomic.Int64).Load(), k)
		}
		return true
	})
	// The node still serves its owner.
	if _, err := n.client.Get(context.Background(), "guarded"); err != nil {
		t.Fatalf("the control API after the flood: %v", err)
	}

	seconds := int(took/time.Second) + 2 // windows the flood touched, at most
	var gwRecs, gwCount, apiRecs, apiCount int
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		recs := storedAudit(t, n)
		gwRecs, gwCount, apiRecs, apiCount = 0, 0, 0, 0
		for _, r := range recs {
			switch {
			case r.Action == "refuse" && r.Target == "guarded" && r.Reason == "auth":
				gwRecs++
				gwCount += max(r.Repeats, 1)
			case r.Action == "auth.fail" && r.Reason == "credential":
				apiRecs++
				apiCount += max(r.Repeats, 1)
			}
		}
		if gwCount >= each && apiCount >= each {
			break
		}
	}
	if gwCount != each || apiCount != each {
		t.Errorf("audit records stand for %d refused invocations and %d refused API calls, want %d each", gwCount, apiCount, each)
	}
	// A window has its first record and one that counts the rest.
	if gwRecs > 2*seconds || apiRecs > 2*seconds {
		t.Errorf("%d and %d audit records for a flood of %v, want at most %d each", gwRecs, apiRecs, took.Round(time.Millisecond), 2*seconds)
	}
	if rep, err := n.client.AuditVerify(context.Background()); err != nil || !rep.OK() {
		t.Errorf("the audit chain after the flood: %+v %v", rep, err)
	}

	lines, told := 0, 0
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "authentication failed") {
			lines++
			if _, after, ok := strings.Cut(line, " dropped="); ok {
				d, _ := strconv.Atoi(strings.Fields(after)[0])
				told += d
			}
		}
	}
	if lines == 0 || lines > 2*seconds {
		t.Errorf("%d log lines of failed authentication for %d failures in %v, want 1 to %d", lines, 2*each, took.Round(time.Millisecond), 2*seconds)
	}
	if lines+told > 2*each {
		t.Errorf("log lines tell of %d failures, more than the %d sent", lines+told, 2*each)
	}
}

// TestConnectionBounds: an address holding connections it sends nothing
// on, or only part of a request's headers (a slowloris), keeps no more
// than its share of the node's: a new connection of its own takes the
// place of its oldest. Connections whose request is being served (here:
// waiting for a body that does not come) keep their places, so a fifth
// from an address with four such is refused, while another address is
// served meanwhile. The node counts what it refused in /metrics.
func TestConnectionBounds(t *testing.T) {
	n := startNodeConfig(t, Config{DataDir: t.TempDir(), MaxConnectionsPerSource: 4, BodyWait: 2 * time.Second})
	deploy(t, n, "name: quiet\nmodule: fn.wasm\nlimits: {memory: 1MiB}\nhttp: {auth: public}\n", testwasm.MinimalCGI())
	addr := strings.TrimPrefix(n.URL(), "http://")
	from := func(ip string) *http.Client {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
		return &http.Client{Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}, Timeout: 10 * time.Second}
	}
	servedFrom := func(ip string) bool {
		resp, err := from(ip).Get(n.URL() + "/fn/quiet")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}
	// The slowloris is 127.0.0.4 (loopback answers for all of 127/8).
	slow := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.4")}, Timeout: 5 * time.Second}
	open := func(first string) []net.Conn {
		var cs []net.Conn
		for range 4 {
			c, err := slow.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			if first != "" {
				io.WriteString(c, first)
			}
			cs = append(cs, c)
			time.Sleep(20 * time.Millisecond) // in order, each accepted
		}
		return cs
	}

	for _, first := range []string{"", "GET /fn/quiet HTTP/1.1\r\nHost: x\r\n"} {
		slowloris := open(first)
		if !servedFrom("127.0.0.4") {
			t.Fatalf("a new connection did not take the place of one that sent %q", first)
		}
		slowloris[0].SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := slowloris[0].Read(make([]byte, 1)); err == nil {
			t.Fatalf("the oldest connection that sent %q was not closed for the new one", first)
		}
		for _, c := range slowloris {
			c.Close()
		}
	}

	// Four requests waiting for their bodies: busy, not to be closed.
	open("GET /fn/quiet HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
	deadline := time.Now().Add(5 * time.Second)
	for servedFrom("127.0.0.4") {
		if time.Now().After(deadline) {
			t.Fatal("a fifth connection from an address with four busy ones was served")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !servedFrom("127.0.0.2") {
		t.Fatal("another address was refused while 127.0.0.4 held its share")
	}

	// A body must come within the body wait (2s here, 30s by default):
	// then the four are answered 400 and the address is served again.
	for deadline := time.Now().Add(10 * time.Second); !servedFrom("127.0.0.4"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("bodies that never came held their connections past the body wait")
		}
	}

	body := metricsText(t, n, from("127.0.0.3"))
	if !regexp.MustCompile(`(?m)^moat_connections_refused_total\{reason="source"\} [1-9]`).Match(body) {
		t.Errorf("/metrics does not count the refused connections:\n%s", grepLines(string(body), "moat_connections"))
	}
}

// storedAudit flushes the node's audit batch and reads its records from
// the store (not the API, which a blocked source may not use).
func storedAudit(t *testing.T, n *testNode) []audit.Record {
	t.Helper()
	if err := n.audit.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	recs, err := audit.Read(context.Background(), n.store.JS, n.audit.Node())
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// metricsText reads /metrics through c with an auditor's key.
func metricsText(t *testing.T, n *testNode, c *http.Client) []byte {
	t.Helper()
	req, _ := http.NewRequest("GET", n.URL()+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+createKey(t, n, api.KeyRequest{Role: auth.RoleAuditor}).Token)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d %v", resp.StatusCode, err)
	}
	return body
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestConnectionRate: an address opening connection after connection (a
// TLS handshake flood costs the node a handshake each) gets its burst, then
// resets; the node counts them.
func TestConnectionRate(t *testing.T) {
	n := startNodeConfig(t, Config{DataDir: t.TempDir(), ConnectionRatePerSource: 2})
	deploy(t, n, "name: quiet\nmodule: fn.wasm\nlimits: {memory: 1MiB}\nhttp: {auth: public}\n", testwasm.MinimalCGI())
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.5")}, Timeout: 5 * time.Second}
	c := &http.Client{Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}, Timeout: 10 * time.Second}
	ok := 0
	for range 20 {
		if resp, err := c.Get(n.URL() + "/fn/quiet"); err == nil {
			resp.Body.Close()
			ok++
		}
	}
	// A burst of 4, and what refills at 2 a second while the 20 are tried.
	if ok < 4 || ok > 8 {
		t.Errorf("%d of 20 new connections served at 2 a second (bursts of 4)", ok)
	}
	body := metricsText(t, n, http.DefaultClient)
	if !regexp.MustCompile(`(?m)^moat_connections_refused_total\{reason="rate"\} [1-9]`).Match(body) {
		t.Errorf("/metrics does not count the connections refused for their rate:\n%s", grepLines(string(body), "moat_connections"))
	}
}

// TestBodyWaitEndsWithBody: the body wait bounds the body only. A function
// that runs longer than it, after its body came, is not cut off (a read
// deadline left in place would end the request's context when net/http's
// background read of the connection times out).
func TestBodyWaitEndsWithBody(t *testing.T) {
	n := startNodeConfig(t, Config{DataDir: t.TempDir(), BodyWait: 300 * time.Millisecond})
	deploy(t, n, kitchenManifest, testwasm.Bytes(t, "kitchen"))
	for _, body := range []io.Reader{nil, strings.NewReader("{}")} {
		req, _ := http.NewRequest("GET", n.URL()+"/fn/kitchen/sleep?d=1200ms", body)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(got) != "slept" {
			t.Errorf("a function that runs past the body wait (body %v): %d %q", body != nil, resp.StatusCode, got)
		}
	}
}
