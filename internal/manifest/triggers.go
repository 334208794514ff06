package manifest

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Trigger is one event source of a function besides HTTP. Exactly one of
// its fields is set.
type Trigger struct {
	Queue *QueueTrigger `json:"queue,omitempty"`
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
	for _, pat := range p.Publish {
		if SubjectMatches(pat, subject) {
			return true
		}
	}
	return false
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
				return &Error{Line: it.Line, Field: f, Err: errors.New("want a mapping of one trigger kind (queue: {...})")}
			}
			var t Trigger
			kinds := map[string]handler{
				"queue": func(v *yaml.Node, field string) error {
					t.Queue = &QueueTrigger{MaxDeliver: DefaultMaxDeliver, Concurrency: 1}
					return d.queue(v, field, t.Queue)
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
		if q.MaxDeliver < 1 || q.MaxDeliver > maxMaxDeliver {
			return &Error{Field: f + ".queue.max_deliver", Err: fmt.Errorf("%d is out of range (1 to %d)", q.MaxDeliver, maxMaxDeliver)}
		}
		if q.Concurrency < 1 || q.Concurrency > m.Limits.Concurrency {
			return &Error{Field: f + ".queue.concurrency", Err: fmt.Errorf("%d is out of range (1 to limits.concurrency, %d)", q.Concurrency, m.Limits.Concurrency)}
		}
		if len(q.Backoff) > maxBackoffSteps {
			return &Error{Field: f + ".queue.backoff", Err: fmt.Errorf("%d steps: at most %d", len(q.Backoff), maxBackoffSteps)}
		}
		for k, d := range q.Backoff {
			if err := checkBackoff(time.Duration(d)); err != nil {
				return &Error{Field: fmt.Sprintf("%s.queue.backoff[%d]", f, k), Err: err}
			}
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
