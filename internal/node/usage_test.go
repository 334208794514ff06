package node

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/moatfn/moat/internal/testwasm"
)

func TestUsage(t *testing.T) {
	data := t.TempDir()
	n := startNode(t, data)
	deploy(t, n, strings.Replace(kitchenManifest, "limits: {", "limits: {rate: 3/h, ", 1), testwasm.Bytes(t, "kitchen"))
	get200s(t, n.URL()+"/fn/kitchen/hello", 2)
	get200s(t, n.URL()+"/fn/kitchen/exit3", 1)
	get200s(t, n.URL()+"/fn/kitchen/hello", 4) // refused: rate
	n.stop()                                   // flushes the meter
	n = startNode(t, data)
	rows, err := n.client.Usage(context.Background(), "kitchen", "")
	if err != nil || len(rows) != 1 {
		t.Fatalf("Usage = %+v, %v", rows, err)
	}
	r := rows[0]
	if r.Invocations != 3 || r.Errors != 1 || r.Refusals["rate"] != 4 || r.GBSeconds <= 0 || r.Cost <= 0 {
		t.Fatalf("usage row = %+v", r)
	}
	if rows, err := n.client.Usage(context.Background(), "", "1h"); err != nil || len(rows) != 1 {
		t.Fatalf("Usage since 1h = %+v, %v", rows, err)
	}
	if rows, err := n.client.Usage(context.Background(), "other", ""); err != nil || len(rows) != 0 {
		t.Fatalf("Usage of another function = %+v, %v", rows, err)
	}
	for _, bad := range []string{"yesterday", "-1d"} {
		if _, err := n.client.Usage(context.Background(), "", bad); err == nil {
			t.Errorf("Usage since %q succeeded", bad)
		}
	}
}

// TestUsageRetention: usage records older than --usage-retention go.
func TestUsageRetention(t *testing.T) {
	n := startNodeConfig(t, Config{DataDir: t.TempDir(), UsageRetention: 2 * time.Second})
	deploy(t, n, "name: m\nmodule: fn.wasm\nhttp: {auth: public}\n", testwasm.MinimalCGI())
	invoke(t, n, http.MethodGet, "m", "", nil)
	n.usage.Flush(context.Background())
	rows, err := n.client.Usage(context.Background(), "m", "")
	if err != nil || len(rows) != 1 {
		t.Fatalf("usage right after: %+v %v", rows, err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for len(rows) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("usage still kept past its retention: %+v", rows)
		}
		time.Sleep(250 * time.Millisecond)
		if rows, err = n.client.Usage(context.Background(), "m", ""); err != nil {
			t.Fatal(err)
		}
	}
}
