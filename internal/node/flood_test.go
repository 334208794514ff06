package node

import (
	"context"
	"io"
	"math"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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
