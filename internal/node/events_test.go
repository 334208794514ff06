package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moatfn/moat/internal/api"
	"github.com/moatfn/moat/internal/audit"
	"github.com/moatfn/moat/internal/auth"
	"github.com/moatfn/moat/internal/bundle"
	"github.com/moatfn/moat/internal/client"
	"github.com/moatfn/moat/internal/events"
	"github.com/moatfn/moat/internal/objstore"
	"github.com/moatfn/moat/internal/testwasm"
)

// seenRecord is what the caps guest records of an event's deliveries.
type seenRecord struct {
	Count   int               `json:"count"`
	User    string            `json:"user"`
	Trigger string            `json:"trigger"`
	Remote  string            `json:"remote"`
	Method  string            `json:"method"`
	Type    string            `json:"type"`
	Source  string            `json:"source"`
	Subject string            `json:"subject"`
	CT      string            `json:"ct"`
	Data    string            `json:"data"`
	Ext     map[string]string `json:"ext"`
	Version string            `json:"version"` // $V of the version that handled it
}

const sinkManifest = `name: sink
module: fn.wasm
limits: {timeout: 5s}
http: {auth: public}
permissions: {kv: {seen: read-write}}
triggers:
  - queue: {subject: orders.created, max_deliver: 3, backoff: [1s], concurrency: 2}
  - queue: {subject: "audit.*"}
`

// seenOf polls the sink for the record of event id until cond holds.
func seenOf(t *testing.T, n *testNode, id string, cond func(seenRecord) bool) seenRecord {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := caps(t, n, "sink", "/seen", url.Values{"id": {id}})
		var s seenRecord
		if r.OK {
			json.Unmarshal([]byte(r.Value), &s)
		}
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("event %s: last seen %+v (%s)", id, s, r.Err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// lettersOf polls fn's dead letters until there are want.
func lettersOf(t *testing.T, n *testNode, fn string, want int) *api.Letters {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ls, err := n.client.Letters(context.Background(), fn)
		if err != nil {
			t.Fatal(err)
		}
		if ls.Total >= want || time.Now().After(deadline) {
			if ls.Total != want {
				t.Fatalf("%d dead letters, want %d: %+v", ls.Total, want, ls.Letters)
			}
			return ls
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func publishAPI(t *testing.T, n *testNode, subject, data string, h http.Header) *events.Published {
	t.Helper()
	if h == nil {
		h = http.Header{}
	}
	h.Set("Content-Type", "application/json")
	pub, err := n.client.Publish(context.Background(), subject, h, []byte(data))
	if err != nil {
		t.Fatalf("publish %s: %v", subject, err)
	}
	return pub
}

func TestQueueTriggers(t *testing.T) {
	n := startNodeConfig(t, Config{DataDir: t.TempDir(), NoSync: true, EventAckWait: 3 * time.Second})
	wasm := testwasm.Bytes(t, "caps")
	deploy(t, n, sinkManifest, wasm)
	deploy(t, n, capsManifest("pub", "permissions: {publish: [\"orders.>\", \"audit.login\"], invoke: [sink]}\n"), wasm)
	schemaDir := functionDir(t, `name: strict
module: fn.wasm
http: {auth: public}
input: {schema: s.json}
permissions: {kv: {seen: read-write}}
triggers:
  - queue: {subject: strict.in}
`, wasm)
	os.WriteFile(filepath.Join(schemaDir, "s.json"), []byte(`{"type": "object", "required": ["mode"], "properties": {"mode": {"enum": ["ok"]}}}`), 0o644)
	deployDir(t, n, schemaDir)

	t.Run("PublishedByAFunction", func(t *testing.T) {
		r := caps(t, n, "pub", "/publish", url.Values{"subject": {"orders.created"}, "body": {`{"mode":"ok"}`}})
		wantCode(t, "publish", r, 0)
		s := seenOf(t, n, r.Value, func(s seenRecord) bool { return s.Count == 1 })
		want := seenRecord{Count: 1, User: "fn:pub", Trigger: "queue", Method: "POST", Type: "orders.created", Source: "/fn/pub",
			CT: "application/json", Data: `{"mode":"ok"}`}
		if s.Remote != "" || s.User != want.User || s.Trigger != want.Trigger || s.Method != want.Method || s.Type != want.Type ||
			s.Source != want.Source || s.CT != want.CT || s.Data != want.Data {
			t.Fatalf("seen %+v, want %+v", s, want)
		}
		time.Sleep(500 * time.Millisecond)
		if s := seenOf(t, n, r.Value, func(seenRecord) bool { return true }); s.Count != 1 {
			t.Fatalf("delivered %d times", s.Count)
		}
	})

	t.Run("PublishDenied", func(t *testing.T) {
		wantCode(t, "ungranted", caps(t, n, "pub", "/publish", url.Values{"subject": {"billing.charged"}}), codeDenied)
		wantCode(t, "no listener", caps(t, n, "pub", "/publish", url.Values{"subject": {"orders.nobody"}}), codeNotFound)
		wantCode(t, "wildcard", caps(t, n, "pub", "/publish", url.Values{"subject": {"orders.*"}}), codeInvalid)
		wantCode(t, "not granted at all", caps(t, n, "sink", "/publish", url.Values{"subject": {"orders.created"}}), codeDenied)
		recs := records(t, n, url.Values{"action": {"deny"}, "target": {"pub"}}, 1)
		if !slices.ContainsFunc(recs, func(r audit.Record) bool { return r.Capability == "publish" && r.Resource == "billing.charged" }) {
			t.Fatalf("no audited denial: %+v", recs)
		}
	})

	t.Run("PublishedThroughTheAPI", func(t *testing.T) {
		pub := publishAPI(t, n, "audit.login", `{"mode":"ok"}`, http.Header{"Ce-Type": {"com.example.login"}, "Ce-Subject": {"carole%20%C3%A9"}, "Ce-Traceid": {"t1"}})
		s := seenOf(t, n, pub.ID, func(s seenRecord) bool { return s.Count == 1 })
		if s.User != "admin" || s.Type != "com.example.login" || s.Subject != "carole é" || s.Ext["traceid"] != "t1" || !strings.HasPrefix(s.Source, "/api/") {
			t.Fatalf("seen %+v", s)
		}
		// The same source and id again is kept once.
		again := publishAPI(t, n, "audit.login", `{"mode":"ok"}`, http.Header{"Ce-Id": {pub.ID}, "Ce-Source": {s.Source}})
		if !again.Duplicate {
			t.Fatalf("a republished id is not a duplicate: %+v", again)
		}
		for name, tc := range map[string]struct {
			subject string
			h       http.Header
			status  int
		}{
			"bad attribute": {"audit.login", http.Header{"Ce-Subject": {"a%0Ab"}}, 400},
			"bad time":      {"audit.login", http.Header{"Ce-Time": {"noon"}}, 400},
			"old version":   {"audit.login", http.Header{"Ce-Specversion": {"0.3"}}, 400},
			"bad subject":   {"audit..login", nil, 400},
			"wildcard":      {"audit.>", nil, 400},
			"no listener":   {"nobody.home", nil, 404},
		} {
			_, err := n.client.Publish(context.Background(), tc.subject, tc.h, []byte(`{}`))
			var ce *client.Error
			if !errors.As(err, &ce) || ce.Status != tc.status {
				t.Errorf("%s: %v, want status %d", name, err, tc.status)
			}
		}
		big := strings.Repeat("x", events.MaxData+1)
		var ce *client.Error
		if _, err := n.client.Publish(context.Background(), "audit.login", nil, []byte(big)); !errors.As(err, &ce) || ce.Status != 413 {
			t.Errorf("an oversized event: %v", err)
		}
		r := caps(t, n, "pub", "/publish", url.Values{"subject": {"orders.created"}, "size": {fmt.Sprint(events.MaxData + 1)}})
		wantCode(t, "publish of an oversized event", r, 5)
	})

	t.Run("RetriedThenDelivered", func(t *testing.T) {
		pub := publishAPI(t, n, "orders.created", `{"mode":"failonce"}`, nil)
		s := seenOf(t, n, pub.ID, func(s seenRecord) bool { return s.Count == 2 })
		if s.Count != 2 {
			t.Fatalf("seen %+v", s)
		}
	})

	t.Run("ObjectTrigger", func(t *testing.T) { testObjectTrigger(t, n, wasm) })

	t.Run("AlwaysFailsThenDeadLetter", func(t *testing.T) {
		pub := publishAPI(t, n, "orders.created", `{"mode":"fail"}`, nil)
		ls := lettersOf(t, n, "sink", 1)
		l := ls.Letters[0]
		if l.Reason != events.ReasonFailed || l.Status != 500 || l.Attempts != 3 || len(l.InvocationIDs) != 3 || l.Event.ID != pub.ID || l.Event.Data != nil {
			t.Fatalf("letter %+v", l)
		}
		if s := seenOf(t, n, pub.ID, func(seenRecord) bool { return true }); s.Count != 3 {
			t.Fatalf("tried %d times, want exactly 3", s.Count)
		}
		full, err := n.client.Letter(context.Background(), "sink", l.ID)
		if err != nil || string(full.Event.Data) != `{"mode":"fail"}` {
			t.Fatalf("show: %v %+v", err, full)
		}
		// Each attempt is audited under the invocation id the letter names,
		// with its trigger and subject.
		recs := records(t, n, url.Values{"action": {"invoke"}, "target": {"sink"}}, 1)
		for _, id := range l.InvocationIDs {
			if !slices.ContainsFunc(recs, func(r audit.Record) bool {
				return r.InvocationID == id && r.Status == 500 && r.Trigger == "queue" && r.Source == "orders.created"
			}) {
				t.Errorf("attempt %s is not audited", id)
			}
		}
		// Another function's letters are not reachable through this one.
		if _, err := n.client.Letter(context.Background(), "pub", l.ID); err == nil {
			t.Fatal("a letter of sink was shown as pub's")
		}

		// Fixed, redeployed: the letter is replayed and handled.
		deploy(t, n, strings.Replace(sinkManifest, "http: {auth: public}", "http: {auth: public}\nenv: {FORCE_OK: \"1\"}", 1), wasm)
		rep, err := n.client.Replay(context.Background(), "sink", []uint64{l.ID}, false)
		if err != nil || len(rep.Replayed) != 1 || rep.Replayed[0].ID != pub.ID {
			t.Fatalf("replay: %v %+v", err, rep)
		}
		s := seenOf(t, n, pub.ID, func(s seenRecord) bool { return s.Count == 4 })
		if s.Trigger != "replay" {
			t.Fatalf("replayed as %q", s.Trigger)
		}
		lettersOf(t, n, "sink", 0)
		if recs := records(t, n, url.Values{"action": {"dlq.replay"}}, 1); len(recs) != 1 || recs[0].Target != "sink" {
			t.Fatalf("replay audit %+v", recs)
		}
		deploy(t, n, sinkManifest, wasm)
	})

	t.Run("RejectedAtOnce", func(t *testing.T) {
		pub := publishAPI(t, n, "orders.created", `{"mode":"reject"}`, nil)
		l := lettersOf(t, n, "sink", 1).Letters[0]
		if l.Reason != events.ReasonRejected || l.Status != 422 || l.Attempts != 1 || l.Event.ID != pub.ID {
			t.Fatalf("letter %+v", l)
		}
		if got, err := n.client.Purge(context.Background(), "sink"); err != nil || got != 1 {
			t.Fatalf("purge: %d %v", got, err)
		}
		lettersOf(t, n, "sink", 0)
	})

	t.Run("PublisherKeys", func(t *testing.T) {
		ctx := context.Background()
		for _, req := range []api.KeyRequest{
			{Role: "publisher"}, // names no subject: could publish nothing
			{Role: "publisher", Subjects: []string{"orders created"}}, // not a pattern
			{Role: "invoker", Subjects: []string{"orders.>"}},         // only publishers have subjects
			{Role: "publisher", Subjects: make([]string, auth.MaxSubjects+1)},
		} {
			if _, err := n.client.CreateKey(ctx, req); err == nil {
				t.Errorf("key %+v created", req)
			}
		}
		k, err := n.client.CreateKey(ctx, api.KeyRequest{Role: "publisher", Subjects: []string{"orders.*"}, Note: "the shop"})
		if err != nil {
			t.Fatal(err)
		}
		c, _ := client.New(n.URL(), k.Token, "")
		pub, err := c.Publish(ctx, "orders.created", http.Header{"Content-Type": {"application/json"}}, []byte(`{"mode":"ok"}`))
		if err != nil {
			t.Fatalf("publish on its subject: %v", err)
		}
		if s := seenOf(t, n, pub.ID, func(s seenRecord) bool { return s.Count == 1 }); s.User != "key:"+k.ID {
			t.Errorf("the function sees the publisher as %q", s.User)
		}
		var ce *client.Error
		if _, err := c.Publish(ctx, "audit.login", nil, []byte(`{}`)); !errors.As(err, &ce) || ce.Status != 403 {
			t.Errorf("publish beyond its subjects: %v", err)
		}
		if recs := records(t, n, url.Values{"action": {"event.publish"}, "outcome": {"refused"}}, 1); len(recs) != 1 || recs[0].Target != "audit.login" || recs[0].Actor != "key:"+k.ID {
			t.Errorf("the refusal in the trail: %+v", recs)
		}
		if _, err := c.List(ctx); !errors.As(err, &ce) || ce.Status != 403 {
			t.Errorf("a publisher listing functions: %v", err)
		}
	})

	t.Run("HostileControlRequests", func(t *testing.T) {
		token, _ := os.ReadFile(filepath.Join(n.data, "admin.token"))
		do := func(method, path, body string, h map[string]string) int {
			req, _ := http.NewRequest(method, n.URL()+path, strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
			for k, v := range h {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		many := make([]string, events.MaxList+1)
		for i := range many {
			many[i] = fmt.Sprint(i + 1)
		}
		for _, c := range []struct {
			method, path, body string
			h                  map[string]string
			want               int
		}{
			{"POST", "/api/v1/functions/sink/dlq/replay", `{`, nil, 400},
			{"POST", "/api/v1/functions/sink/dlq/replay", `{}`, nil, 400},
			{"POST", "/api/v1/functions/sink/dlq/replay", `{"ids":[]}`, nil, 400},
			{"POST", "/api/v1/functions/sink/dlq/replay", `{"ids":[1],"all":true}`, nil, 400},
			{"POST", "/api/v1/functions/sink/dlq/replay", `{"ids":[0]}`, nil, 400},
			{"POST", "/api/v1/functions/sink/dlq/replay", `{"ids":[-1]}`, nil, 400},
			{"POST", "/api/v1/functions/sink/dlq/replay", `{"ids":["1"]}`, nil, 400},
			{"POST", "/api/v1/functions/sink/dlq/replay", `{"ids":[1],"evil":1}`, nil, 400},
			{"POST", "/api/v1/functions/sink/dlq/replay", `{"ids":[` + strings.Join(many, ",") + `]}`, nil, 400},
			{"POST", "/api/v1/functions/sink/dlq/replay", `{"ids":[999999]}`, nil, 404},
			{"POST", "/api/v1/functions/sink/dlq/replay", strings.Repeat(" ", 2<<20) + `{"all":true}`, nil, 400},
			{"GET", "/api/v1/functions/sink/dlq/abc", "", nil, 400},
			{"GET", "/api/v1/functions/sink/dlq/0", "", nil, 400},
			{"GET", "/api/v1/functions/sink/dlq/99999999999999999999", "", nil, 400},
			{"GET", "/api/v1/functions/sink/dlq/12345", "", nil, 404},
			{"GET", "/api/v1/functions/Bad..Name/dlq", "", nil, 404},
			{"GET", "/api/v1/functions/nosuch/triggers", "", nil, 404},
			{"POST", "/api/v1/events/audit.login", "{}", map[string]string{"Ce-Id": strings.Repeat("x", 64<<10)}, 400},
			{"POST", "/api/v1/events/audit.login", "{}", map[string]string{"Ce-Source": "%FF%FE"}, 400},
			{"POST", "/api/v1/events/audit.login", "{}", map[string]string{"Ce-Time": "2026-13-45T99:00:00Z"}, 400},
			{"POST", "/api/v1/events/" + strings.Repeat("a.", 150) + "a", "{}", nil, 400},
		} {
			if got := do(c.method, c.path, c.body, c.h); got != c.want {
				t.Errorf("%s %s %.60q: %d, want %d", c.method, c.path, c.body, got, c.want)
			}
		}
		if resp, _ := invoke(t, n, http.MethodGet, "pub", "/whoami", nil); resp.StatusCode != 200 {
			t.Errorf("the node after hostile requests: %d", resp.StatusCode)
		}
	})

	t.Run("SchemaRefusalRunsNothing", func(t *testing.T) {
		before := n.InstancesStarted()
		publishAPI(t, n, "strict.in", `{"mode":"rm -rf /"}`, nil)
		l := lettersOf(t, n, "strict", 1).Letters[0]
		if l.Reason != events.ReasonRejected || l.Status != 400 || !strings.HasPrefix(l.Detail, "input:") {
			t.Fatalf("letter %+v", l)
		}
		if got := n.InstancesStarted(); got != before {
			t.Fatalf("%d instances started for a refused event", got-before)
		}
	})

	t.Run("MalformedEventOverHTTP", func(t *testing.T) {
		resp, body, err := n.client.Invoke(context.Background(), http.MethodPost, "sink", "/env", http.Header{"Ce-Id": {"1"}}, nil)
		if err != nil || resp.StatusCode != 400 || !strings.Contains(string(body), "malformed CloudEvent") {
			t.Fatalf("%v %d %s", err, resp.StatusCode, body)
		}
		h := http.Header{"Ce-Id": {"1"}, "Ce-Source": {"/x"}, "Ce-Type": {"t"}, "Ce-Specversion": {"1.0"}, "Ce-Subject": {"a%20b%C3%A9"}}
		resp, body, err = n.client.Invoke(context.Background(), http.MethodGet, "sink", "/env", h, nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%v %s", err, body)
		}
		var r capsResult
		json.Unmarshal(body, &r)
		if !slices.Contains(r.Env, "HTTP_CE_SUBJECT=a bé") || !slices.Contains(r.Env, "MOAT_TRIGGER=http") {
			t.Fatalf("env %v", r.Env)
		}
	})

	t.Run("TriggersAndMetrics", func(t *testing.T) {
		ts, err := n.client.Triggers(context.Background(), "sink")
		if err != nil || len(ts) != 2 || ts[0].Subject != "orders.created" || ts[0].MaxDeliver != 3 {
			t.Fatalf("%v %+v", err, ts)
		}
		text := string(metricsText(t, n, http.DefaultClient))
		for _, want := range []string{`moat_events_total{fn="sink",outcome="delivered"}`, `moat_events_total{fn="sink",outcome="retried"}`,
			`moat_events_total{fn="sink",outcome="dead_lettered"}`, `moat_trigger_pending{fn="sink",subject="orders.created"} 0`} {
			if !strings.Contains(text, want) {
				t.Errorf("metrics lack %s", want)
			}
		}
	})

	t.Run("BadTriggersRefusedAtDeploy", func(t *testing.T) {
		for manifest, want := range map[string]string{
			"triggers:\n  - queue: {subject: \"a b\"}\n":           `moat.yaml:6: triggers[0].queue.subject`,
			"triggers:\n  - queue: {subject: a, backoff: [1ms]}\n": `moat.yaml:6: triggers[0].queue.backoff[0]`,
		} {
			// The CLI reads the folder as the node does, so both refuse.
			_, err := bundle.Read(functionDir(t, capsManifest("badtrig", manifest), wasm))
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%s: %v, want %s", manifest, err, want)
			}
		}
	})

	t.Run("RemoveKeepsDeadLetters", func(t *testing.T) {
		publishAPI(t, n, "strict.in", `{"mode":"no"}`, nil)
		lettersOf(t, n, "strict", 2)
		if err := n.client.Remove(context.Background(), "strict"); err != nil {
			t.Fatal(err)
		}
		lettersOf(t, n, "strict", 2)
		if _, err := n.client.Publish(context.Background(), "strict.in", nil, nil); err == nil {
			t.Fatal("a removed function's subject still takes events")
		}
		if got, err := n.client.Purge(context.Background(), "strict"); err != nil || got != 2 {
			t.Fatalf("purge %d %v", got, err)
		}
	})
}

// testObjectTrigger: a function runs for each object stored or removed
// under its trigger's prefix, with the object's description as a
// CloudEvent; a name its schema refuses is dead-lettered before any
// instance starts.
func testObjectTrigger(t *testing.T, n *testNode, wasm []byte) {
	ctx := context.Background()
	dir := functionDir(t, `name: ingest
module: fn.wasm
limits: {timeout: 5s}
http: {auth: public}
input: {schema: s.json}
permissions: {objects: {uploads: read}, kv: {seen: read-write}}
triggers:
  - object: {bucket: uploads, prefix: "in/", events: [put, delete], max_deliver: 2, backoff: [1s]}
`, wasm)
	os.WriteFile(filepath.Join(dir, "s.json"), []byte(`{"type": "object", "required": ["kind", "name"],
  "properties": {"kind": {"enum": ["put", "delete"]}, "name": {"type": "string", "pattern": "^in/[A-Za-z0-9_-]+\\.csv$"}}}`), 0o644)
	deployDir(t, n, dir)

	put := func(name, data string) *objstore.Info {
		t.Helper()
		info, err := n.client.PutObject(ctx, "uploads", name, "text/csv", strings.NewReader(data))
		if err != nil {
			t.Fatalf("put %q: %v", name, err)
		}
		return info
	}
	info := put("in/stock.csv", "sku,qty\nw-1,4\n")
	s := seenOf(t, n, "object:in/stock.csv", func(s seenRecord) bool { return s.Count == 1 })
	if s.Trigger != "object" || s.User != "bucket:uploads" || s.Type != "moat.object.put" || s.Source != "/objects/uploads" ||
		s.Subject != "in/stock.csv" || s.CT != "application/json" || s.Method != "POST" {
		t.Fatalf("seen %+v", s)
	}
	var ev events.ObjectEvent
	if err := json.Unmarshal([]byte(s.Data), &ev); err != nil || ev.Kind != "put" || ev.Bucket != "uploads" || ev.Name != "in/stock.csv" ||
		ev.Size != 14 || ev.Digest != info.Digest || ev.ContentType != "text/csv" || ev.Modified.IsZero() {
		t.Fatalf("event data %s (%v)", s.Data, err)
	}

	put("out/other.csv", "x")     // outside the prefix: no run
	put("in/; rm -rf ~.csv", "x") // a valid object name the schema refuses
	ls := lettersOf(t, n, "ingest", 1)
	if l := ls.Letters[0]; l.Reason != events.ReasonRejected || l.Event.Subject != "in/; rm -rf ~.csv" || l.Status != 400 && l.Status != 422 {
		t.Fatalf("letter %+v", l)
	}
	if err := n.client.RemoveObject(ctx, "uploads", "in/stock.csv"); err != nil {
		t.Fatal(err)
	}
	s = seenOf(t, n, "object:in/stock.csv", func(s seenRecord) bool { return s.Count == 2 })
	if s.Type != "moat.object.delete" || !strings.Contains(s.Data, `"kind":"delete"`) {
		t.Fatalf("delete seen %+v", s)
	}
	// Events come in order, one at a time: by now the two before were
	// taken, and neither ran the function.
	for _, name := range []string{"out/other.csv", "in/; rm -rf ~.csv"} {
		if r := caps(t, n, "sink", "/seen", url.Values{"id": {"object:" + name}}); r.Code != codeNotFound {
			t.Errorf("%q ran the function: %+v", name, r)
		}
	}
}
