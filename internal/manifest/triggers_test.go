package manifest

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

const triggerBase = "name: orders\nmodule: orders.wasm\n"

func TestQueueTrigger(t *testing.T) {
	m, err := Parse([]byte(triggerBase + `limits: {concurrency: 8}
permissions: {publish: ["catalog.requested", "orders.>"]}
triggers:
  - queue: {subject: orders.created, max_deliver: 3, backoff: [2s, 1m], concurrency: 4}
  - queue: {subject: "audit.*"}
`))
	if err != nil {
		t.Fatal(err)
	}
	want := []Trigger{
		{Queue: &QueueTrigger{Subject: "orders.created", MaxDeliver: 3, Backoff: []Duration{Duration(2 * time.Second), Duration(time.Minute)}, Concurrency: 4}},
		{Queue: &QueueTrigger{Subject: "audit.*", MaxDeliver: DefaultMaxDeliver, Concurrency: 1}},
	}
	if !reflect.DeepEqual(m.Triggers, want) {
		t.Fatalf("triggers %+v", m.Triggers)
	}
	if !m.Permissions.MayPublish("orders.x.y") || !m.Permissions.MayPublish("catalog.requested") || m.Permissions.MayPublish("catalog.other") || m.Permissions.MayPublish("orders") {
		t.Fatal("MayPublish")
	}
	q := m.Triggers[0].Queue
	for n, d := range map[int]time.Duration{1: 2 * time.Second, 2: time.Minute, 9: time.Minute} {
		if got := q.RetryDelay(n); got != d {
			t.Errorf("RetryDelay(%d) = %s, want %s", n, got, d)
		}
	}
	if got := m.Triggers[1].Queue.RetryDelay(2); got != 10*time.Second {
		t.Errorf("default RetryDelay(2) = %s", got)
	}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"backoff":["2s","1m"]`) {
		t.Fatalf("json %s", b)
	}
	var back Manifest
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back.Triggers, m.Triggers) {
		t.Fatalf("round trip %v %+v", err, back.Triggers)
	}
}

func TestQueueTriggerErrors(t *testing.T) {
	for src, want := range map[string]string{
		"triggers: {queue: {subject: a}}":                                    `line 3: triggers: want a list, found a mapping`,
		"triggers:\n  - queue: {}":                                           `line 4: triggers[0].queue.subject: required field is missing`,
		"triggers:\n  - queue: {subject: \"orders..created\"}":               `line 4: triggers[0].queue.subject: "orders..created" is not a subject pattern (an empty token)`,
		"triggers:\n  - queue: {subject: \"orders.>.x\"}":                    `line 4: triggers[0].queue.subject: "orders.>.x" is not a subject pattern`,
		"triggers:\n  - queue: {subject: \"$JS.API\"}":                       `line 4: triggers[0].queue.subject: "$JS.API" is not a subject pattern`,
		"triggers:\n  - queue: {subject: a, max_deliver: 0}":                 `line 4: triggers[0].queue.max_deliver: 0 is out of range (1 to 100)`,
		"triggers:\n  - queue: {subject: a, backoff: [10ms]}":                `line 4: triggers[0].queue.backoff[0]: 10ms is out of range (1s to 24h)`,
		"triggers:\n  - queue: {subject: a, backoff: [soon]}":                `line 4: triggers[0].queue.backoff[0]: "soon" is not a duration`,
		"triggers:\n  - queue: {subject: a, backoff: 1s}":                    `line 4: triggers[0].queue.backoff: want a list of durations`,
		"triggers:\n  - queue: {subject: a, concurrency: 11}":                `line 4: triggers[0].queue.concurrency: 11 is out of range (1 to limits.concurrency, 10)`,
		"triggers:\n  - queue: {subject: a}\n  - queue: {subject: a}":        `line 5: triggers[1].queue.subject: duplicate "a" (also triggers[0])`,
		"triggers:\n  - queue: {subject: a, subjet: b}":                      `line 4: triggers[0].queue: unknown field "subjet" (did you mean "subject"?)`,
		"triggers:\n  - qeue: {subject: a}":                                  `line 4: triggers[0]: unknown field "qeue" (did you mean "queue"?)`,
		"triggers:\n  - queue: {subject: a}\n    schedule: {cron: x}":        `line 4: triggers[0]: want a mapping of one trigger kind`,
		"permissions: {publish: [\"orders created\"]}":                       `permissions.publish[0]: "orders created" is not a subject pattern`,
		"triggers:\n  - queue: {subject: " + strings.Repeat("a.", 20) + "a}": `is not a subject pattern (at most 16 tokens)`,
	} {
		_, err := Parse([]byte(triggerBase + src + "\n"))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s:\n got %v\nwant %s", src, err, want)
		}
	}
}

func TestSubjects(t *testing.T) {
	for _, s := range []string{"a", "orders.created", "A_b-9.x"} {
		if err := CheckSubject(s); err != nil {
			t.Errorf("CheckSubject(%q): %v", s, err)
		}
	}
	for _, s := range []string{"", "a.", ".a", "a b", "a.*", "a.>", "é", "a\nb", strings.Repeat("a", 201)} {
		if CheckSubject(s) == nil {
			t.Errorf("CheckSubject(%q) accepted", s)
		}
	}
	for _, c := range []struct {
		pattern, subject string
		match            bool
	}{
		{"a.b", "a.b", true}, {"a.*", "a.b", true}, {"a.*", "a.b.c", false}, {"a.>", "a.b.c", true},
		{"a.>", "a", false}, {"*", "a", true}, {"*", "a.b", false}, {">", "a.b", true}, {"a.b", "a.c", false},
	} {
		if got := SubjectMatches(c.pattern, c.subject); got != c.match {
			t.Errorf("SubjectMatches(%q, %q) = %v", c.pattern, c.subject, got)
		}
	}
}

func TestScheduleTrigger(t *testing.T) {
	m, err := Parse([]byte(triggerBase + `triggers:
  - schedule: {cron: "0 7 * * 1-5", timezone: Europe/Berlin, overlap: replace, max_deliver: 2}
  - schedule: {cron: "@hourly"}
  - queue: {subject: orders.created}
`))
	if err != nil {
		t.Fatal(err)
	}
	want := []Trigger{
		{Schedule: &ScheduleTrigger{Cron: "0 7 * * 1-5", Timezone: "Europe/Berlin", Overlap: OverlapReplace, MaxDeliver: 2}},
		{Schedule: &ScheduleTrigger{Cron: "@hourly", Overlap: OverlapForbid, MaxDeliver: DefaultMaxDeliver}},
		{Queue: &QueueTrigger{Subject: "orders.created", MaxDeliver: DefaultMaxDeliver, Concurrency: 1}},
	}
	if !reflect.DeepEqual(m.Triggers, want) {
		t.Fatalf("triggers %+v", m.Triggers)
	}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	c, loc, err := m.Triggers[0].Schedule.Parsed()
	if err != nil || c.Spec() != "0 0 7 * * 1-5" || loc.String() != "Europe/Berlin" {
		t.Fatalf("parsed %v %v %v", c, loc, err)
	}
	if q := m.Triggers[0].Schedule.Queue(8); q.Concurrency != 1 || q.MaxDeliver != 2 {
		t.Fatalf("replace runs one at a time: %+v", q)
	}
	b, _ := json.Marshal(m)
	var back Manifest
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back.Triggers, m.Triggers) {
		t.Fatalf("round trip %v %+v", err, back.Triggers)
	}
}

func TestScheduleTriggerErrors(t *testing.T) {
	for src, want := range map[string]string{
		"triggers:\n  - schedule: {}":                                                      `line 4: triggers[0].schedule.cron: required field is missing`,
		"triggers:\n  - schedule: {cron: \"0 25 * * *\"}":                                  `line 4: triggers[0].schedule.cron: hour field "25": "25": want 0 to 23`,
		"triggers:\n  - schedule: {cron: \"* * *\"}":                                       `line 4: triggers[0].schedule.cron: "* * *": 3 fields`,
		"triggers:\n  - schedule: {cron: \"@daily\", timezone: Mars/Base}":                 `line 4: triggers[0].schedule.timezone: "Mars/Base" is not an IANA time zone`,
		"triggers:\n  - schedule: {cron: \"@daily\", overlap: queue}":                      `line 4: triggers[0].schedule.overlap: "queue": want allow, forbid or replace`,
		"triggers:\n  - schedule: {cron: \"@daily\", backoff: [1ms]}":                      `line 4: triggers[0].schedule.backoff[0]: 1ms is out of range`,
		"triggers:\n  - schedule: {cron: \"@daily\", concurrency: 2}":                      `line 4: triggers[0].schedule: unknown field "concurrency"`,
		"triggers:\n  - schedule: {cron: \"@daily\"}\n  - schedule: {cron: \"0 0 * * *\"}": `triggers[1].schedule.cron: the same schedule as triggers[0]`,
		"triggers:\n  - schedule: {cron: [1]}":                                             `line 4: triggers[0].schedule.cron: want a cron expression, found a list`,
	} {
		_, err := Parse([]byte(triggerBase + src + "\n"))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s:\n got %v\nwant %s", src, err, want)
		}
	}
}

func TestObjectTrigger(t *testing.T) {
	m, err := Parse([]byte(triggerBase + `permissions: {objects: {uploads: read, archive: read-write}}
triggers:
  - object: {bucket: uploads, prefix: "in/"}
  - object: {bucket: archive, events: [put, delete], max_deliver: 3, backoff: [2s], concurrency: 2}
`))
	if err != nil {
		t.Fatal(err)
	}
	want := []Trigger{
		{Object: &ObjectTrigger{Bucket: "uploads", Events: []string{ObjectPut}, Prefix: "in/", MaxDeliver: DefaultMaxDeliver, Concurrency: 1}},
		{Object: &ObjectTrigger{Bucket: "archive", Events: []string{ObjectPut, ObjectDelete}, MaxDeliver: 3, Backoff: []Duration{Duration(2 * time.Second)}, Concurrency: 2}},
	}
	if !reflect.DeepEqual(m.Triggers, want) {
		t.Fatalf("triggers %+v %+v", m.Triggers[0].Object, m.Triggers[1].Object)
	}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	o := m.Triggers[0].Object
	if !o.Takes("put", "in/a.csv") || o.Takes("delete", "in/a.csv") || o.Takes("put", "out/a.csv") || o.Takes("put", "in") {
		t.Fatal("Takes")
	}
	b, _ := json.Marshal(m)
	var back Manifest
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back.Triggers, m.Triggers) {
		t.Fatalf("round trip %v %+v", err, back.Triggers)
	}
}

func TestObjectTriggerErrors(t *testing.T) {
	grant := "permissions: {objects: {up: read, w: write}}\n"
	for src, want := range map[string]string{
		"triggers:\n  - object: {}":                                     `line 5: triggers[0].object.bucket: required field is missing`,
		"triggers:\n  - object: {bucket: Up!}":                          `triggers[0].object.bucket: "Up!" is not a bucket name`,
		"triggers:\n  - object: {bucket: other}":                        `triggers[0].object.bucket: other is not granted for reading`,
		"triggers:\n  - object: {bucket: w}":                            `triggers[0].object.bucket: w is not granted for reading`,
		"triggers:\n  - object: {bucket: up, events: [put, put]}":       `triggers[0].object.events[1]: "put" twice`,
		"triggers:\n  - object: {bucket: up, events: [create]}":         `triggers[0].object.events[0]: "create": want put or delete`,
		"triggers:\n  - object: {bucket: up, events: []}":               `triggers[0].object.events: empty`,
		"triggers:\n  - object: {bucket: up, events: put}":              `triggers[0].object.events: want a list of put and delete`,
		"triggers:\n  - object: {bucket: up, prefix: \"../in/\"}":       `triggers[0].object.prefix: "../in/" is not an object name prefix`,
		"triggers:\n  - object: {bucket: up, prefix: \"in\\x00\"}":      `triggers[0].object.prefix:`,
		"triggers:\n  - object: {bucket: up, prefix: \"a//\"}":          `triggers[0].object.prefix:`,
		"triggers:\n  - object: {bucket: up, concurrency: 99}":          `triggers[0].object.concurrency: 99 is out of range`,
		"triggers:\n  - object: {bucket: up, subject: x}":               `triggers[0].object: unknown field "subject"`,
		"triggers:\n  - object: {bucket: up}\n  - object: {bucket: up}": `triggers[1].object.bucket: a second trigger on bucket up`,
		"triggers:\n  - object: {bucket: up}\n    queue: {subject: a}":  `want a mapping of one trigger kind`,
		"triggers:\n  - object: {bucket: up, backoff: [1ms]}":           `triggers[0].object.backoff[0]: 1ms is out of range`,
	} {
		m, err := Parse([]byte(triggerBase + grant + src + "\n"))
		if err == nil {
			err = m.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s:\n got %v\nwant %s", src, err, want)
		}
	}
}
