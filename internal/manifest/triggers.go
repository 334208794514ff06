package manifest

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// Trigger is one event source of a function besides HTTP. Exactly one of
// its fields is set.
type Trigger struct {
	Queue    *QueueTrigger    `json:"queue,omitempty"`
	Schedule *ScheduleTrigger `json:"schedule,omitempty"`
	Object   *ObjectTrigger   `json:"object,omitempty"`
}

// ObjectTrigger runs the function for each change to an object bucket:
// an object stored (put) or removed (delete). The event carries the
// object's description, not its content.
type ObjectTrigger struct {
	// Bucket is the object bucket watched; the function must be granted
	// it with read access (the event tells names, sizes and digests).
	Bucket string `json:"bucket"`
	// Events are the kinds taken: put, delete, or both; default [put].
	Events []string `json:"events"`
	// Prefix limits the trigger to names beginning with it; "" is all.
	Prefix string `json:"prefix,omitempty"`
	// MaxDeliver, Backoff and Concurrency are as for a queue trigger.
	MaxDeliver  int        `json:"max_deliver"`
	Backoff     []Duration `json:"backoff"`
	Concurrency int        `json:"concurrency"`
}

// Kinds of object events.
const (
	ObjectPut    = "put"
	ObjectDelete = "delete"
)

// Queue is the queue trigger's settings an object trigger shares. Its
// subject names the trigger, for listings.
func (o *ObjectTrigger) Queue() *QueueTrigger {
	name := "object " + o.Bucket
	if o.Prefix != "" {
		name += " " + strconv.Quote(o.Prefix)
	}
	return &QueueTrigger{Subject: name, MaxDeliver: o.MaxDeliver, Backoff: o.Backoff, Concurrency: o.Concurrency}
}

// Takes reports whether the trigger takes an event of kind on the object
// called name.
func (o *ObjectTrigger) Takes(kind, name string) bool {
	return slices.Contains(o.Events, kind) && strings.HasPrefix(name, o.Prefix)
}

// MaxObjectName is the longest object name, in bytes.
const MaxObjectName = 1024

// CheckObjectName explains why name cannot name an object, or returns nil:
// a name is 1 to MaxObjectName bytes of UTF-8, parts separated by '/',
// none empty, "." or "..", with no control or format character (NUL,
// newlines, bidirectional overrides, zero-width spaces, U+2028/9) and no
// backslash. A name that breaks a rule is refused whole, never cleaned.
func CheckObjectName(name string) error {
	switch {
	case name == "":
		return errors.New("empty")
	case len(name) > MaxObjectName:
		return fmt.Errorf("%d bytes, more than %d", len(name), MaxObjectName)
	case !utf8.ValidString(name):
		return errors.New("not valid UTF-8")
	case strings.ContainsFunc(name, func(r rune) bool {
		return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == '\u2028' || r == '\u2029'
	}):
		return errors.New("holds a control or format character")
	case strings.Contains(name, `\`):
		return errors.New("holds a backslash")
	}
	for part := range strings.SplitSeq(name, "/") {
		switch part {
		case "":
			return errors.New("an empty part (a leading, trailing or doubled '/')")
		case ".", "..":
			return fmt.Errorf("a %q part", part)
		}
	}
	return nil
}

// CheckObjectPrefix accepts "" or the beginning of a valid object name (a
// trailing '/' allowed).
func CheckObjectPrefix(p string) error {
	if p == "" {
		return nil
	}
	if err := CheckObjectName(strings.TrimSuffix(p, "/")); err != nil {
		return fmt.Errorf("%q is not an object name prefix: %w", truncate(p), err)
	}
	return nil
}

// ScheduleTrigger runs the function on a cron schedule.
type ScheduleTrigger struct {
	// Cron is the schedule (Cron's grammar: five fields, or six with
	// seconds first, or an alias such as @daily).
	Cron string `json:"cron"`
	// Timezone is the IANA zone the schedule's times are in; "" is UTC.
	Timezone string `json:"timezone,omitempty"`
	// Overlap says what a tick does while the previous run still goes:
	// forbid (the default) skips it, replace cancels the running one,
	// allow runs both (up to limits.concurrency).
	Overlap string `json:"overlap"`
	// MaxDeliver and Backoff retry a failed run as for a queue trigger.
	MaxDeliver int        `json:"max_deliver"`
	Backoff    []Duration `json:"backoff"`
}

// Overlap policies of a schedule.
const (
	OverlapForbid  = "forbid"
	OverlapReplace = "replace"
	OverlapAllow   = "allow"
)

// Parsed is the trigger's cron expression and time zone, parsed.
func (s *ScheduleTrigger) Parsed() (*Cron, *time.Location, error) {
	c, err := ParseCron(s.Cron)
	if err != nil {
		return nil, nil, err
	}
	loc, err := LoadZone(s.Timezone)
	return c, loc, err
}

// LoadZone is the IANA time zone named; "" and "UTC" are UTC.
func LoadZone(name string) (*time.Location, error) {
	if name == "" || name == "UTC" {
		return time.UTC, nil
	}
	if name == "Local" || len(name) > 64 || strings.HasPrefix(name, "/") || strings.Contains(name, "..") {
		return nil, fmt.Errorf("%q is not an IANA time zone (Europe/Berlin, America/New_York, UTC)", truncate(name))
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("%q is not an IANA time zone (Europe/Berlin, America/New_York, UTC)", truncate(name))
	}
	return loc, nil
}

// Queue is the queue trigger's settings a schedule shares: its retries.
// Its subject names the schedule, for listings.
func (s *ScheduleTrigger) Queue(concurrency int) *QueueTrigger {
	name := s.Cron
	if s.Timezone != "" {
		name += " " + s.Timezone
	}
	if s.Overlap != OverlapAllow {
		concurrency = 1
	}
	return &QueueTrigger{Subject: name, MaxDeliver: s.MaxDeliver, Backoff: s.Backoff, Concurrency: concurrency}
}

// QueueTrigger runs the function for each event published on a subject.
type QueueTrigger struct {
	// Subject is the event subject, or a pattern of subjects with "*" for
	// one token and a final ">" for the rest (orders.*, orders.>).
	Subject string `json:"subject"`
	// MaxDeliver is how many times an event is tried before it goes to
	// the dead letters: 1 to 100, default 5.
	MaxDeliver int `json:"max_deliver"`
	// Backoff is the wait before each retry, the last repeating: each 1s
	// to 1d, at most 20 of them; default [1s, 10s, 1m].
	Backoff []Duration `json:"backoff"`
	// Concurrency is how many events of this trigger run at once: 1 to the
	// function's limits.concurrency, default 1.
	Concurrency int `json:"concurrency"`
}

// Duration is a time.Duration written as moat.yaml writes it ("10s").
type Duration time.Duration

func (d Duration) String() string { return formatDuration(time.Duration(d)) }

// MarshalJSON encodes d as its moat.yaml spelling.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON decodes what MarshalJSON encodes.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := parseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Bounds and defaults of queue triggers.
const (
	MaxTriggers       = 16
	DefaultMaxDeliver = 5
	maxMaxDeliver     = 100
	maxBackoffSteps   = 20
	minBackoff        = time.Second
	maxBackoff        = 24 * time.Hour
)

// DefaultBackoff is the retry schedule of a queue trigger that sets none.
var DefaultBackoff = []Duration{Duration(time.Second), Duration(10 * time.Second), Duration(time.Minute)}

// Subjects are dot-separated tokens of letters, digits, '_' and '-'.
const (
	maxSubjectLen    = 200
	maxSubjectTokens = 16
)

// CheckSubject reports whether s is a subject events may be published on:
// 1 to 16 tokens of a-z, A-Z, 0-9, '_' and '-', separated by single dots,
// 200 characters at most. Wildcards are not part of a subject.
func CheckSubject(s string) error { return checkSubject(s, false) }

// CheckSubjectPattern is CheckSubject allowing "*" as a whole token and
// ">" as the last one.
func CheckSubjectPattern(s string) error { return checkSubject(s, true) }

func checkSubject(s string, pattern bool) error {
	what := "subject"
	if pattern {
		what = "subject pattern"
	}
	if s == "" || len(s) > maxSubjectLen {
		return fmt.Errorf("%q is not a %s (1 to %d characters)", truncate(s), what, maxSubjectLen)
	}
	tokens := strings.Split(s, ".")
	if len(tokens) > maxSubjectTokens {
		return fmt.Errorf("%q is not a %s (at most %d tokens)", truncate(s), what, maxSubjectTokens)
	}
	for i, t := range tokens {
		switch {
		case pattern && t == "*":
			continue
		case pattern && t == ">" && i == len(tokens)-1:
			continue
		case t == "":
			return fmt.Errorf("%q is not a %s (an empty token)", truncate(s), what)
		}
		for j := 0; j < len(t); j++ {
			c := t[j]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
				hint := "tokens of a-z, A-Z, 0-9, _ and - separated by dots"
				if pattern {
					hint += `, "*" for one token, ">" last for the rest`
				} else if c == '*' || c == '>' {
					hint = "no wildcards in a subject events are published on"
				}
				return fmt.Errorf("%q is not a %s (%s)", truncate(s), what, hint)
			}
		}
	}
	return nil
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// SubjectMatches reports whether subject matches pattern ("*" one token,
// a final ">" one or more).
func SubjectMatches(pattern, subject string) bool {
	p, s := strings.Split(pattern, "."), strings.Split(subject, ".")
	for i, t := range p {
		if t == ">" && i == len(p)-1 {
			return len(s) > i
		}
		if i >= len(s) || t != "*" && t != s[i] {
			return false
		}
	}
	return len(p) == len(s)
}

// MayPublish reports whether the function may publish on subject.
func (p *Permissions) MayPublish(subject string) bool {
	_, ok := p.PublishGrant(subject)
	return ok
}

// PublishGrant returns the first pattern of the publish grant that covers
// subject: the grant a publish uses.
func (p *Permissions) PublishGrant(subject string) (string, bool) {
	for _, pat := range p.Publish {
		if SubjectMatches(pat, subject) {
			return pat, true
		}
	}
	return "", false
}

// triggers returns the handler of the triggers list.
func (d *decoder) triggers(dst *[]Trigger) handler {
	return func(v *yaml.Node, field string) error {
		if v.Kind != yaml.SequenceNode {
			return &Error{Line: v.Line, Field: field, Err: fmt.Errorf("want a list, found %s", kindName(v))}
		}
		if len(v.Content) > MaxTriggers {
			return &Error{Line: v.Line, Field: field, Err: fmt.Errorf("%d triggers: at most %d", len(v.Content), MaxTriggers)}
		}
		out := make([]Trigger, 0, len(v.Content))
		for i, it := range v.Content {
			f := field + "[" + strconv.Itoa(i) + "]"
			if it.Kind != yaml.MappingNode || len(it.Content) != 2 {
				return &Error{Line: it.Line, Field: f, Err: errors.New("want a mapping of one trigger kind (queue: {...}, schedule: {...} or object: {...})")}
			}
			var t Trigger
			kinds := map[string]handler{
				"queue": func(v *yaml.Node, field string) error {
					t.Queue = &QueueTrigger{MaxDeliver: DefaultMaxDeliver, Concurrency: 1}
					return d.queue(v, field, t.Queue)
				},
				"schedule": func(v *yaml.Node, field string) error {
					t.Schedule = &ScheduleTrigger{MaxDeliver: DefaultMaxDeliver, Overlap: OverlapForbid}
					return d.schedule(v, field, t.Schedule)
				},
				"object": func(v *yaml.Node, field string) error {
					t.Object = &ObjectTrigger{MaxDeliver: DefaultMaxDeliver, Concurrency: 1, Events: []string{ObjectPut}}
					return d.objectTrigger(v, field, t.Object)
				},
			}
			if err := d.object(it, f, kinds); err != nil {
				return err
			}
			if t == (Trigger{}) {
				return &Error{Line: it.Line, Field: f, Err: errors.New("no trigger given")}
			}
			out = append(out, t)
		}
		if len(out) > 0 {
			*dst = out
		}
		return nil
	}
}

func (d *decoder) queue(v *yaml.Node, field string, q *QueueTrigger) error {
	err := d.object(v, field, map[string]handler{
		"subject":     scalar(&q.Subject, "a subject", checked(CheckSubjectPattern)),
		"max_deliver": scalar(&q.MaxDeliver, "a whole number", bounded(1, maxMaxDeliver)),
		"concurrency": scalar(&q.Concurrency, "a whole number", bounded(1, 10000)),
		"backoff":     backoff(&q.Backoff),
	})
	if err != nil {
		return err
	}
	if q.Subject == "" {
		return &Error{Line: v.Line, Field: field + ".subject", Err: errRequired}
	}
	return nil
}

func (d *decoder) objectTrigger(v *yaml.Node, field string, o *ObjectTrigger) error {
	err := d.object(v, field, map[string]handler{
		"bucket":      scalar(&o.Bucket, "a bucket name", checked(checkBucketName)),
		"events":      objectEvents(&o.Events),
		"prefix":      scalar(&o.Prefix, "an object name prefix", checked(CheckObjectPrefix)),
		"max_deliver": scalar(&o.MaxDeliver, "a whole number", bounded(1, maxMaxDeliver)),
		"concurrency": scalar(&o.Concurrency, "a whole number", bounded(1, 10000)),
		"backoff":     backoff(&o.Backoff),
	})
	if err != nil {
		return err
	}
	if o.Bucket == "" {
		return &Error{Line: v.Line, Field: field + ".bucket", Err: errRequired}
	}
	return nil
}

func checkBucketName(s string) error {
	if !ValidName(s) {
		return fmt.Errorf("%q is not a bucket name", truncate(s))
	}
	return nil
}

func objectEvents(dst *[]string) handler {
	return func(v *yaml.Node, field string) error {
		if v.Kind != yaml.SequenceNode {
			return &Error{Line: v.Line, Field: field, Err: fmt.Errorf("want a list of put and delete, found %s", kindName(v))}
		}
		var out []string
		for i, it := range v.Content {
			f := field + "[" + strconv.Itoa(i) + "]"
			if err := scalarText(it); err != nil {
				return &Error{Line: it.Line, Field: f, Err: err}
			}
			if err := checkObjectEvent(it.Value, out); err != nil {
				return &Error{Line: it.Line, Field: f, Err: err}
			}
			out = append(out, it.Value)
		}
		*dst = out
		return nil
	}
}

func checkObjectEvent(e string, before []string) error {
	if e != ObjectPut && e != ObjectDelete {
		return fmt.Errorf("%q: want put or delete", truncate(e))
	}
	if slices.Contains(before, e) {
		return fmt.Errorf("%q twice", e)
	}
	return nil
}

func (d *decoder) schedule(v *yaml.Node, field string, s *ScheduleTrigger) error {
	err := d.object(v, field, map[string]handler{
		"cron":        scalar(&s.Cron, "a cron expression", checked(func(c string) error { _, err := ParseCron(c); return err })),
		"timezone":    scalar(&s.Timezone, "a time zone", checked(func(z string) error { _, err := LoadZone(z); return err })),
		"overlap":     scalar(&s.Overlap, "allow, forbid or replace", checked(checkOverlap)),
		"max_deliver": scalar(&s.MaxDeliver, "a whole number", bounded(1, maxMaxDeliver)),
		"backoff":     backoff(&s.Backoff),
	})
	if err != nil {
		return err
	}
	if s.Cron == "" {
		return &Error{Line: v.Line, Field: field + ".cron", Err: errRequired}
	}
	return nil
}

func checkOverlap(s string) error {
	switch s {
	case OverlapForbid, OverlapReplace, OverlapAllow:
		return nil
	}
	return fmt.Errorf("%q: want allow, forbid or replace", truncate(s))
}

func bounded(lo, hi int) func(string) (int, error) {
	return func(s string) (int, error) {
		n, err := parseInt(s)
		if err != nil {
			return 0, err
		}
		if n < lo || n > hi {
			return 0, fmt.Errorf("%d is out of range (%d to %d)", n, lo, hi)
		}
		return n, nil
	}
}

func backoff(dst *[]Duration) handler {
	return func(v *yaml.Node, field string) error {
		if v.Kind != yaml.SequenceNode {
			return &Error{Line: v.Line, Field: field, Err: fmt.Errorf("want a list of durations, found %s", kindName(v))}
		}
		var out []Duration
		for i, it := range v.Content {
			f := field + "[" + strconv.Itoa(i) + "]"
			if err := scalarText(it); err != nil {
				return &Error{Line: it.Line, Field: f, Err: err}
			}
			d, err := parseDuration(it.Value)
			if err == nil {
				err = checkBackoff(d)
			}
			if err != nil {
				return &Error{Line: it.Line, Field: f, Err: err}
			}
			out = append(out, Duration(d))
		}
		if len(out) > maxBackoffSteps {
			return &Error{Line: v.Line, Field: field, Err: fmt.Errorf("%d steps: at most %d", len(out), maxBackoffSteps)}
		}
		*dst = out
		return nil
	}
}

func checkBackoff(d time.Duration) error {
	if d < minBackoff || d > maxBackoff {
		return fmt.Errorf("%s is out of range (%s to %s)", formatDuration(d), formatDuration(minBackoff), formatDuration(maxBackoff))
	}
	return nil
}

// checkTriggers applies the rules that span fields: a trigger's
// concurrency within the function's, and one trigger per subject.
func (m *Manifest) checkTriggers() *Error {
	seen := map[string]int{}
	for i, t := range m.Triggers {
		f := fmt.Sprintf("triggers[%d]", i)
		if (t.Schedule != nil) && (t.Queue != nil) || (t.Object != nil) && (t.Queue != nil || t.Schedule != nil) {
			return &Error{Field: f, Err: errors.New("one trigger kind per entry")}
		}
		if t.Object != nil {
			if err := m.checkObjectTrigger(f+".object", t.Object, seen, i); err != nil {
				return err
			}
			continue
		}
		if t.Schedule != nil {
			if err := m.checkSchedule(f+".schedule", t.Schedule, seen, i); err != nil {
				return err
			}
			continue
		}
		q := t.Queue
		if q == nil {
			return &Error{Field: f, Err: errors.New("no trigger given")}
		}
		if err := CheckSubjectPattern(q.Subject); err != nil {
			return &Error{Field: f + ".queue.subject", Err: err}
		}
		if j, ok := seen[q.Subject]; ok {
			return &Error{Field: f + ".queue.subject", Err: fmt.Errorf("duplicate %q (also triggers[%d])", q.Subject, j)}
		}
		seen[q.Subject] = i
		if q.Concurrency < 1 || q.Concurrency > m.Limits.Concurrency {
			return &Error{Field: f + ".queue.concurrency", Err: fmt.Errorf("%d is out of range (1 to limits.concurrency, %d)", q.Concurrency, m.Limits.Concurrency)}
		}
		if err := checkRetries(f+".queue", q.MaxDeliver, q.Backoff); err != nil {
			return err
		}
	}
	return nil
}

// checkObjectTrigger checks an object trigger: a bucket the function may
// read, at most one trigger per bucket.
func (m *Manifest) checkObjectTrigger(f string, o *ObjectTrigger, seen map[string]int, i int) *Error {
	if !ValidName(o.Bucket) {
		return &Error{Field: f + ".bucket", Err: checkBucketName(o.Bucket)}
	}
	if a := m.Permissions.Objects[o.Bucket]; a != "read" && a != "read-write" {
		return &Error{Field: f + ".bucket", Err: fmt.Errorf("%s is not granted for reading: an object trigger needs permissions.objects.%s read or read-write (the events tell names, sizes and digests)", o.Bucket, o.Bucket)}
	}
	key := "object " + o.Bucket
	if j, ok := seen[key]; ok {
		return &Error{Field: f + ".bucket", Err: fmt.Errorf("a second trigger on bucket %s (also triggers[%d])", o.Bucket, j)}
	}
	seen[key] = i
	if len(o.Events) == 0 {
		return &Error{Field: f + ".events", Err: errors.New("empty: want put, delete or both")}
	}
	for k, e := range o.Events {
		if err := checkObjectEvent(e, o.Events[:k]); err != nil {
			return &Error{Field: fmt.Sprintf("%s.events[%d]", f, k), Err: err}
		}
	}
	if err := CheckObjectPrefix(o.Prefix); err != nil {
		return &Error{Field: f + ".prefix", Err: err}
	}
	if o.Concurrency < 1 || o.Concurrency > m.Limits.Concurrency {
		return &Error{Field: f + ".concurrency", Err: fmt.Errorf("%d is out of range (1 to limits.concurrency, %d)", o.Concurrency, m.Limits.Concurrency)}
	}
	return checkRetries(f, o.MaxDeliver, o.Backoff)
}

// checkSchedule checks a schedule trigger; seen holds the schedules (by
// their parsed form and zone) and subjects met before.
func (m *Manifest) checkSchedule(f string, s *ScheduleTrigger, seen map[string]int, i int) *Error {
	c, err := ParseCron(s.Cron)
	if err != nil {
		return &Error{Field: f + ".cron", Err: err}
	}
	if _, err := LoadZone(s.Timezone); err != nil {
		return &Error{Field: f + ".timezone", Err: err}
	}
	if err := checkOverlap(s.Overlap); err != nil {
		return &Error{Field: f + ".overlap", Err: err}
	}
	key := "schedule " + c.Spec() + " " + s.Timezone
	if j, ok := seen[key]; ok {
		return &Error{Field: f + ".cron", Err: fmt.Errorf("the same schedule as triggers[%d]", j)}
	}
	seen[key] = i
	return checkRetries(f, s.MaxDeliver, s.Backoff)
}

func checkRetries(f string, maxDeliver int, backoff []Duration) *Error {
	if maxDeliver < 1 || maxDeliver > maxMaxDeliver {
		return &Error{Field: f + ".max_deliver", Err: fmt.Errorf("%d is out of range (1 to %d)", maxDeliver, maxMaxDeliver)}
	}
	if len(backoff) > maxBackoffSteps {
		return &Error{Field: f + ".backoff", Err: fmt.Errorf("%d steps: at most %d", len(backoff), maxBackoffSteps)}
	}
	for k, d := range backoff {
		if err := checkBackoff(time.Duration(d)); err != nil {
			return &Error{Field: fmt.Sprintf("%s.backoff[%d]", f, k), Err: err}
		}
	}
	return nil
}

// RetryDelay is how long to wait before attempt n+1 after attempt n (from
// 1) failed: the nth backoff step, the last repeating.
func (q *QueueTrigger) RetryDelay(n int) time.Duration {
	steps := q.Backoff
	if len(steps) == 0 {
		steps = DefaultBackoff
	}
	return time.Duration(steps[min(max(n, 1), len(steps))-1])
}
