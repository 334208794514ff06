package node

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/moatfn/moat/internal/events"
	"github.com/moatfn/moat/internal/testwasm"
)

// recordsOf reads what the caps guest recorded of the events whose ids
// start with prefix, through the function "reader".
func recordsOf(t *testing.T, n *testNode, prefix string) map[string]seenRecord {
	t.Helper()
	out := map[string]seenRecord{}
	for _, r := range seenRecords(t, n, prefix) {
		out[r.ID] = r.seenRecord
	}
	return out
}

// waitRecords polls until want events with ids starting with prefix were
// recorded.
func waitRecords(t *testing.T, n *testNode, prefix string, want int) map[string]seenRecord {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := recordsOf(t, n, prefix)
		if len(got) >= want {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d events of %s handled, want %d", len(got), prefix, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestEventsUnderLimitsAndRedeploys(t *testing.T) {
	n := startNodeConfig(t, Config{DataDir: t.TempDir(), NoSync: true, EventAckWait: 3 * time.Second})
	wasm := testwasm.Bytes(t, "caps")
	deployReader(t, n)

	t.Run("AFloodWaitsForTheBudget", func(t *testing.T) {
		// A budget of 3 invocations an hour and 10 events: 3 run, the rest
		// wait (neither dropped nor dead-lettered nor counted as attempts).
		m := capsManifest("thrifty", "budget: {invocations: 3/hour}\npermissions: {kv: {seen: read-write}}\ntriggers:\n  - queue: {subject: thrifty.in, concurrency: 2, max_deliver: 1}\n")
		deploy(t, n, m, wasm)
		for i := range 10 {
			publishAPI(t, n, "thrifty.in", `{"mode":"ok"}`, map[string][]string{"Ce-Id": {"thrifty-" + string(rune('a'+i))}})
		}
		waitRecords(t, n, "thrifty-", 3)
		time.Sleep(3 * time.Second) // longer than the ack wait: waiting events are kept alive
		if got := recordsOf(t, n, "thrifty-"); len(got) != 3 {
			t.Fatalf("the budget of 3 let %d events run", len(got))
		}
		ts, err := n.client.Triggers(context.Background(), "thrifty")
		if err != nil || len(ts) != 1 || ts[0].Pending+uint64(ts[0].InFlight) != 7 || ts[0].DeadLetters != 0 {
			t.Fatalf("while the budget is spent: %v %+v", err, ts)
		}
		if eventsTotal(t, n, "thrifty", events.Waited) == 0 {
			t.Error("no event waited")
		}
		// More budget: every waiting event runs, once.
		deploy(t, n, strings.Replace(m, "3/hour", "100/hour", 1), wasm)
		got := waitRecords(t, n, "thrifty-", 10)
		for id, r := range got {
			if r.Count != 1 {
				t.Errorf("%s delivered %d times", id, r.Count)
			}
		}
		if ls := lettersOf(t, n, "thrifty", 0); ls.Total != 0 {
			t.Errorf("dead letters: %+v", ls)
		}
	})

	t.Run("PendingEventsGoToTheNewVersion", func(t *testing.T) {
		m := capsManifest("slowpoke", "env: {V: \"1\"}\npermissions: {kv: {seen: read-write}}\ntriggers:\n  - queue: {subject: slow.in}\n")
		deploy(t, n, m, wasm)
		for i := range 4 {
			publishAPI(t, n, "slow.in", `{"mode":"sleep","ms":800}`, map[string][]string{"Ce-Id": {"slow-" + string(rune('a'+i))}})
		}
		waitRecords(t, n, "slow-", 1)
		deploy(t, n, strings.Replace(m, `V: "1"`, `V: "2"`, 1), wasm)
		got := waitRecords(t, n, "slow-", 4)
		if got["slow-a"].Version != "1" || got["slow-d"].Version != "2" {
			t.Errorf("versions that handled the events: %+v", got)
		}
		for id, r := range got {
			if r.Count != 1 {
				t.Errorf("%s delivered %d times", id, r.Count)
			}
		}
		// The consumer is the same: nothing was left behind.
		ts, _ := n.client.Triggers(context.Background(), "slowpoke")
		if len(ts) != 1 || ts[0].Pending != 0 {
			t.Errorf("after the redeploy: %+v", ts)
		}
	})
}
