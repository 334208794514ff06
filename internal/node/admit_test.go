package node

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/moatfn/moat/internal/api"
	"github.com/moatfn/moat/internal/auth"
	"github.com/moatfn/moat/internal/testwasm"
)

func TestAdmission(t *testing.T) {
	n := startNode(t, t.TempDir())
	deploy(t, n, strings.Replace(strings.Replace(kitchenManifest, "name: kitchen", "name: limited", 1),
		"limits: {", "limits: {rate: 5/s, ", 1), testwasm.Bytes(t, "kitchen"))
	deploy(t, n, strings.Replace(strings.Replace(strings.Replace(kitchenManifest, "name: kitchen", "name: percaller", 1),
		"limits: {", "limits: {rate_per_caller: 2/m, ", 1), "auth: public", "auth: key", 1), testwasm.Bytes(t, "kitchen"))

	started := n.InstancesStarted()
	ok, refused := 0, 0
	for i := 0; i < 40; i++ {
		resp, err := http.Get(n.URL() + "/fn/limited/hello")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		switch resp.StatusCode {
		case 200:
			ok++
		case 429:
			refused++
			if ra, _ := strconv.Atoi(resp.Header.Get("Retry-After")); ra < 1 {
				t.Errorf("Retry-After = %q", resp.Header.Get("Retry-After"))
			}
		default:
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	// A burst of 5, plus what refilled at 5/s while the loop ran.
	if ok < 5 || ok > 15 || refused < 25 {
		t.Fatalf("admitted %d, refused %d of 40 at 5/s", ok, refused)
	}
	if got := n.InstancesStarted() - started; got != uint64(ok) {
		t.Fatalf("%d instances for %d admitted requests", got, ok)
	}

	a := createKey(t, n, api.KeyRequest{Role: auth.RoleInvoker}).Token
	b := createKey(t, n, api.KeyRequest{Role: auth.RoleInvoker}).Token
	for _, tok := range []string{a, a, b, b} {
		if got := call(t, n.URL()+"/fn/percaller/hello", "GET", tok); got != 200 {
			t.Fatalf("within the caller's rate: %d", got)
		}
	}
	for _, tok := range []string{a, b} {
		if got := call(t, n.URL()+"/fn/percaller/hello", "GET", tok); got != 429 {
			t.Fatalf("past the caller's rate: %d, want 429", got)
		}
	}

	// /metrics is for auditors and admins.
	if got := call(t, n.URL()+"/metrics", "GET", ""); got != 401 {
		t.Errorf("/metrics without a token = %d", got)
	}
	if got := call(t, n.URL()+"/metrics", "GET", a); got != 403 {
		t.Errorf("/metrics as invoker = %d", got)
	}
	body := metricsText(t, n, http.DefaultClient)
	for _, want := range []string{
		`moat_refusals_total{fn="limited",reason="rate"} ` + strconv.Itoa(refused),
		`moat_refusals_total{fn="percaller",reason="caller_rate"} 2`,
		`moat_invocations_total{fn="limited",status="200"} ` + strconv.Itoa(ok),
		`moat_invocation_duration_seconds_count{fn="percaller"} 4`,
		"moat_instances_running 0",
	} {
		if !strings.Contains(string(body), want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// BenchmarkGatewayRefusal is the node's cost of refusing a request over
// its function's rate: the whole handler, without the network.
func BenchmarkGatewayRefusal(b *testing.B) {
	benchHandler(b, "name: limited\nmodule: fn.wasm\nlimits: {memory: 1MiB, rate: 1/h}\nhttp: {auth: public}\n",
		"/fn/limited", http.StatusTooManyRequests)
}

// BenchmarkGatewayAuthRefusal is a stranger's request without a token at
// a function that needs a key: refused, audited into a count, and logged
// once a second.
func BenchmarkGatewayAuthRefusal(b *testing.B) {
	benchHandler(b, "name: guarded\nmodule: fn.wasm\nlimits: {memory: 1MiB}\nhttp: {auth: key}\n",
		"/fn/guarded", http.StatusUnauthorized)
}
