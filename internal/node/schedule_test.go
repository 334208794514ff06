package node

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/moatfn/moat/internal/bundle"
	"github.com/moatfn/moat/internal/events"
	"github.com/moatfn/moat/internal/testwasm"
)

// tickRecord is what the caps guest records of one schedule tick.
type tickRecord struct {
	seenRecord
	ID    string
	Time  string `json:"time"`
	Start int64  `json:"start"`
	End   int64  `json:"end"`
}

// ticksOf reads what fn (the caps guest) recorded of its ticks, by start,
// through the function "reader".
func ticksOf(t *testing.T, n *testNode, fn string) []tickRecord {
	t.Helper()
	return seenRecords(t, n, "s_"+fn+"_")
}

// seenRecords reads what the caps guest recorded of the events whose ids
// start with prefix, by start.
func seenRecords(t *testing.T, n *testNode, prefix string) []tickRecord {
	t.Helper()
	keys := caps(t, n, "reader", "/kv/keys", url.Values{"b": {"seen"}}).Keys
	var out []tickRecord
	for _, k := range keys {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		r := caps(t, n, "reader", "/kv/get", url.Values{"b": {"seen"}, "k": {k}})
		rec := tickRecord{ID: k}
		if err := json.Unmarshal([]byte(r.Value), &rec); err != nil {
			t.Fatalf("tick %s: %v %q", k, err, r.Value)
		}
		out = append(out, rec)
	}
	slices.SortFunc(out, func(a, b tickRecord) int { return int(a.Start - b.Start) })
	return out
}

// eventsTotal is moat_events_total{fn, outcome} from /metrics.
func eventsTotal(t *testing.T, n *testNode, fn, outcome string) int {
	t.Helper()
	re := regexp.MustCompile(`moat_events_total\{fn="` + fn + `",outcome="` + outcome + `"\} (\d+)`)
	m := re.FindStringSubmatch(scrape(t, n))
	if m == nil {
		return 0
	}
	v, _ := strconv.Atoi(m[1])
	return v
}

func scheduleManifest(name, schedule, env string) string {
	return fmt.Sprintf(`name: %s
module: fn.wasm
limits: {memory: 64MiB, timeout: 10s, concurrency: 4}
http: {auth: public}
input: {content_types: [application/json], schema: s.json}
env: {%s}
permissions: {kv: {seen: read-write}}
triggers:
  - schedule: %s
`, name, env, schedule)
}

// deploySchedule deploys the caps guest with a schedule and an input
// schema that a tick (which has no input) must not be held to.
func deploySchedule(t *testing.T, n *testNode, name, schedule, env string) {
	t.Helper()
	dir := functionDir(t, scheduleManifest(name, schedule, env), testwasm.Bytes(t, "caps"))
	if err := os.WriteFile(filepath.Join(dir, "s.json"), []byte(`{"type": "object", "required": ["never"]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	deployDir(t, n, dir)
	t.Cleanup(func() { n.client.Remove(context.Background(), name) })
}

// deployReader deploys the caps guest as "reader", which may read what the
// scheduled functions record.
func deployReader(t *testing.T, n *testNode) {
	deploy(t, n, capsManifest("reader", "permissions: {kv: {seen: read}}\n"), testwasm.Bytes(t, "caps"))
}

func TestScheduleTriggers(t *testing.T) {
	n := startNodeConfig(t, Config{DataDir: t.TempDir(), NoSync: true, EventAckWait: 3 * time.Second})
	deployReader(t, n)

	t.Run("Group", func(t *testing.T) {
		t.Run("ForbidSkipsTicksWhileARunGoes", func(t *testing.T) {
			t.Parallel()
			deploySchedule(t, n, "tick-forbid", `{cron: "* * * * * *"}`, `TICK_SLEEP: 2500ms`)
			time.Sleep(8 * time.Second)
			ticks := ticksOf(t, n, "tick-forbid")
			if len(ticks) < 2 || len(ticks) > 4 {
				t.Fatalf("%d runs in 8s of a per-second schedule whose runs take 2.5s, overlap forbid: %+v", len(ticks), ticks)
			}
			for i, r := range ticks {
				if r.Trigger != "schedule" || r.Type != events.TickType || r.Source != "/schedule/tick-forbid" || r.Subject != "* * * * * *" ||
					r.User != "schedule" || r.Method != "POST" || r.Data != "" || r.Count != 1 {
					t.Errorf("tick %+v", r)
				}
				if i > 0 && ticks[i-1].End != 0 && r.Start < ticks[i-1].End {
					t.Errorf("runs overlap: %+v then %+v", ticks[i-1], r)
				}
			}
			if eventsTotal(t, n, "tick-forbid", events.Skipped) == 0 {
				t.Error("no tick was skipped")
			}
			// inspect's view of it: a schedule, when it fires next.
			ts, err := n.client.Triggers(context.Background(), "tick-forbid")
			if err != nil || len(ts) != 1 || ts[0].Kind != "schedule" || ts[0].Overlap != "forbid" || ts[0].Next == nil ||
				ts[0].Next.Before(time.Now().Add(-time.Second)) || ts[0].Next.After(time.Now().Add(2*time.Second)) {
				t.Errorf("triggers %v %+v", err, ts)
			}
		})
		t.Run("AllowOverlaps", func(t *testing.T) {
			t.Parallel()
			deploySchedule(t, n, "tick-allow", `{cron: "* * * * * *", overlap: allow}`, `TICK_SLEEP: 2500ms`)
			time.Sleep(6 * time.Second)
			ticks := ticksOf(t, n, "tick-allow")
			overlapped := false
			for i := 1; i < len(ticks); i++ {
				overlapped = overlapped || ticks[i-1].End == 0 || ticks[i].Start < ticks[i-1].End
			}
			if len(ticks) < 4 || !overlapped {
				t.Fatalf("%d runs in 6s, overlapped %v: %+v", len(ticks), overlapped, ticks)
			}
		})
		t.Run("ReplaceCancelsTheRunGoing", func(t *testing.T) {
			t.Parallel()
			deploySchedule(t, n, "tick-replace", `{cron: "* * * * * *", overlap: replace}`, `TICK_SLEEP: 2500ms`)
			time.Sleep(6 * time.Second)
			ticks := ticksOf(t, n, "tick-replace")
			for _, r := range ticks[:len(ticks)-1] {
				if r.End != 0 {
					t.Errorf("a run finished though a newer tick replaced it: %+v", r)
				}
			}
			if len(ticks) < 3 || eventsTotal(t, n, "tick-replace", events.Replaced) < 2 {
				t.Fatalf("%d runs, %d replaced", len(ticks), eventsTotal(t, n, "tick-replace", events.Replaced))
			}
		})
		t.Run("FailedRunsAreRetriedThenDeadLetteredThenReplayed", func(t *testing.T) {
			t.Parallel()
			deploySchedule(t, n, "tick-fail", `{cron: "* * * * * *", max_deliver: 2, backoff: [1s]}`, `TICK_FAIL: "1"`)
			ls := lettersOf(t, n, "tick-fail", 1)
			l := ls.Letters[0]
			if l.Reason != events.ReasonFailed || l.Status != 500 || l.Attempts != 2 || len(l.InvocationIDs) != 2 || l.Subject != "schedule" ||
				l.Trigger != "* * * * * *" || l.Publisher != "schedule" || l.Event == nil || l.Event.Type != events.TickType {
				t.Fatalf("letter %+v", l)
			}
			// Fixed, and replayed: the same tick runs again, as a replay.
			deploySchedule(t, n, "tick-fail", `{cron: "0 0 1 1 *", max_deliver: 2, backoff: [1s]}`, `FORCE_OK: "1"`)
			if _, err := n.client.Replay(context.Background(), "tick-fail", []uint64{l.ID}, false); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(20 * time.Second)
			for {
				r := caps(t, n, "reader", "/kv/get", url.Values{"b": {"seen"}, "k": {l.Event.ID}})
				var s seenRecord
				json.Unmarshal([]byte(r.Value), &s)
				if s.Trigger == "replay" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("replayed tick not run: %+v", s)
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
	})

	// Removed functions leave no schedule behind.
	time.Sleep(time.Second)
	s, err := n.store.JS.Stream(context.Background(), events.StreamSchedules)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background(), jetstream.WithSubjectFilter(">"))
	if err != nil {
		t.Fatal(err)
	}
	for subject := range info.State.Subjects {
		t.Errorf("left over: %s", subject)
	}

	// A bad schedule is a deploy error naming field and line.
	dir := functionDir(t, scheduleManifest("bad-tick", `{cron: "0 0 31 2 mon", timezone: Moon/Base}`, ``), testwasm.Bytes(t, "caps"))
	if _, err := bundle.Read(dir); err == nil || !strings.Contains(err.Error(), "moat.yaml:9: triggers[0].schedule.timezone") {
		t.Errorf("bad zone: %v", err)
	}
}

// TestScheduleMissedTick stops the node over a tick's time: once back, the
// missed tick fires once.
func TestScheduleMissedTick(t *testing.T) {
	data := t.TempDir()
	n := startNodeConfig(t, Config{DataDir: data, NoSync: true, EventAckWait: 3 * time.Second})
	deployReader(t, n)
	at := time.Now().UTC().Add(5 * time.Second)
	cron := fmt.Sprintf("%d %d %d * * *", at.Second(), at.Minute(), at.Hour()) // once a day, 5s from now
	deploySchedule(t, n, "daily", `{cron: "`+cron+`"}`, ``)
	n.stop()
	if time.Now().After(at.Truncate(time.Second)) {
		t.Fatalf("too slow: the node stopped after the tick it was to miss (%s)", at)
	}
	t.Logf("stopped at %s, tick at %s", time.Now().UTC(), at.Truncate(time.Second))
	time.Sleep(time.Until(at.Truncate(time.Second)) + 2*time.Second)
	t.Logf("restarting at %s", time.Now().UTC())

	n = startNodeConfig(t, Config{DataDir: data, NoSync: true, EventAckWait: 3 * time.Second})
	deadline := time.Now().Add(15 * time.Second)
	var ticks []tickRecord
	for len(ticks) == 0 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		ticks = ticksOf(t, n, "daily")
	}
	time.Sleep(3 * time.Second)
	if ticks = ticksOf(t, n, "daily"); len(ticks) != 1 {
		t.Fatalf("%d runs of a missed tick, want 1: %+v", len(ticks), ticks)
	}
}
