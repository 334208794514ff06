package node

import (
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/moatfn/moat/internal/manifest"
	"github.com/moatfn/moat/internal/testwasm"
)

func get200s(t *testing.T, url string, n int) (ok int, last *http.Response) {
	t.Helper()
	for i := 0; i < n; i++ {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 {
			ok++
		}
		last = resp
	}
	return ok, last
}

// TestInvocationBudget: a budget of N invocations admits exactly N, across
// a restart, then refuses until the window turns.
func TestInvocationBudget(t *testing.T) {
	data := t.TempDir()
	n := startNode(t, data)
	deploy(t, n, kitchenManifest+"budget: {invocations: 10/day}\n", testwasm.Bytes(t, "kitchen"))
	started := n.InstancesStarted()
	if ok, _ := get200s(t, n.URL()+"/fn/kitchen/hello", 4); ok != 4 {
		t.Fatalf("first 4 of a budget of 10: %d admitted", ok)
	}
	n.stop()
	n = startNode(t, data)
	ok, last := get200s(t, n.URL()+"/fn/kitchen/hello", 10)
	if ok != 6 {
		t.Fatalf("after a restart, %d more admitted of the 6 left", ok)
	}
	if last.StatusCode != 429 {
		t.Fatalf("past the budget: %d, want 429", last.StatusCode)
	}
	if ra, _ := strconv.Atoi(last.Header.Get("Retry-After")); ra < 1 || ra > 86400 {
		t.Errorf("Retry-After = %q, want the rest of the day", last.Header.Get("Retry-After"))
	}
	if got := n.InstancesStarted(); got != 6 {
		t.Errorf("%d instances started on the restarted node, want 6 (first node: %d)", got, started)
	}
}

// TestGBSecondsBudget: GB-seconds are charged by wall time and memory cap,
// reserved at the worst case before a run, so the budget is never overshot.
func TestGBSecondsBudget(t *testing.T) {
	n := startNode(t, t.TempDir())
	// 64MiB x 1s timeout = 1/16 GB-s reserved at worst; a run that sleeps
	// 400ms uses about 1/40 GB-s (1/32 on a slow machine): on a budget of
	// 0.15, three or four fit, never more, and the worst case of the next
	// does not.
	m := strings.Replace(kitchenManifest, "timeout: 2s", "timeout: 1s", 1) + "budget: {gb_seconds: 0.15/day}\n"
	deploy(t, n, m, testwasm.Bytes(t, "kitchen"))
	ok, last := get200s(t, n.URL()+"/fn/kitchen/sleep?d=400ms", 6)
	if ok < 3 || ok > 4 || last.StatusCode != 429 {
		t.Fatalf("%d runs of ~1/40 GB-s admitted on a budget of 0.15, last %d; want 3 or 4, then 429", ok, last.StatusCode)
	}
}

// TestNodeBudgetAndAlerts: a node-wide budget caps all functions together;
// crossing 80% of a budget is an audit record, once per window; /metrics
// says what is left.
func TestNodeBudgetAndAlerts(t *testing.T) {
	n := startNodeConfig(t, Config{DataDir: t.TempDir(), NodeBudget: manifest.Budget{Invocations: manifest.BudgetAmount{Amount: 10, Window: "day"}}})
	minimal := testwasm.MinimalCGI()
	deploy(t, n, "name: a\nmodule: fn.wasm\nhttp: {auth: public}\nbudget: {invocations: 5/day}\n", minimal)
	deploy(t, n, "name: b\nmodule: fn.wasm\nhttp: {auth: public}\n", minimal)
	if ok, _ := get200s(t, n.URL()+"/fn/a", 5); ok != 5 {
		t.Fatalf("a: %d of its 5 admitted", ok)
	}
	if _, last := get200s(t, n.URL()+"/fn/a", 1); last.StatusCode != 429 {
		t.Fatalf("a past its budget: %d", last.StatusCode)
	}
	ok, last := get200s(t, n.URL()+"/fn/b", 8)
	if ok != 5 || last.StatusCode != 429 {
		t.Fatalf("b: %d admitted of the node's 5 left, last %d", ok, last.StatusCode)
	}
	resp, body := invoke(t, n, http.MethodGet, "b", "", nil)
	if resp.StatusCode != 429 || !strings.Contains(body, "the node has spent its budget") {
		t.Fatalf("b past the node's budget: %d %s", resp.StatusCode, body)
	}
	m := scrape(t, n)
	for _, want := range []string{
		`moat_budget_remaining{budget="invocations",fn="_node",window="day"} 0`,
		`moat_budget_remaining{budget="invocations",fn="a",window="day"} 0`,
		`moat_refusals_total{fn="b",reason="node_budget"}`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	for _, target := range []string{"a", "_node"} {
		recs := records(t, n, url.Values{"action": {"budget.alert"}, "fn": {target}}, 1)
		if len(recs) != 1 || !strings.Contains(recs[0].Reason, "invocations") {
			t.Errorf("budget.alert records of %s: %+v", target, recs)
		}
	}
}
