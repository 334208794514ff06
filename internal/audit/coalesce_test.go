package audit

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// trail keeps what is appended, in order.
type trail struct {
	mu   sync.Mutex
	recs []Record
}

func (t *trail) Append(_ context.Context, r Record, _ bool) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.recs = append(t.recs, r)
	return nil
}

func (t *trail) all() []Record {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]Record(nil), t.recs...)
}

// counted is how many refusals the records stand for: a record audited
// in full stands for itself, a summary for its Repeats.
func counted(recs []Record) int {
	n := 0
	for _, r := range recs {
		n += max(r.Repeats, 1)
	}
	return n
}

// flood is what the node coalesces.
var flood = [][2]string{{"refuse", "rate"}, {"refuse", "concurrency"}, {"refuse", "caller_rate"}}

func add(l *Coalescer, r Record) {
	if err := l.Append(context.Background(), r, false); err != nil {
		panic(err)
	}
}

func refusal(fn, reason, source, id string) Record {
	return Record{Action: "refuse", Target: fn, Outcome: Refused, Reason: reason, Source: source, InvocationID: id, UserAgent: "flood"}
}

func TestRefusalsCoalesce(t *testing.T) {
	ctx := context.Background()
	a := &trail{}
	l := NewCoalescer(a, time.Second, 3, flood...)
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	l.now = func() time.Time { return now }

	// A flood from one address over many connections: one record at once,
	// the rest counted.
	for i := range 1000 {
		add(l, refusal("limited", "rate", fmt.Sprintf("10.0.0.1:%d", 40000+i%32), fmt.Sprint("id", i)))
	}
	if recs := a.all(); len(recs) != 1 || recs[0].InvocationID != "id0" || recs[0].Repeats != 0 || recs[0].UserAgent != "flood" {
		t.Fatalf("first refusal not audited in full, alone: %+v", recs)
	}
	// Another reason and another address are other kinds.
	add(l, refusal("limited", "concurrency", "10.0.0.1:1", "c0"))
	add(l, refusal("limited", "rate", "10.0.0.2:1", "b0"))
	if n := len(a.all()); n != 3 {
		t.Fatalf("%d records, want 3", n)
	}
	// Refusals that say something each time are each audited.
	for _, reason := range []string{"auth", "input", "method", "body", "content_type", "disabled"} {
		for i := range 3 {
			add(l, refusal("limited", reason, "10.0.0.1:1", fmt.Sprint(reason, i)))
		}
	}
	if recs := a.all(); len(recs) != 3+18 || recs[len(recs)-1].InvocationID != "disabled2" {
		t.Fatalf("%d records, want 21", len(recs))
	}
	// So are control actions appended synchronously, whatever they say.
	for i := range 3 {
		if err := l.Append(ctx, refusal("limited", "rate", "10.0.0.1:1", fmt.Sprint("sync", i)), true); err != nil {
			t.Fatal(err)
		}
	}
	if recs := a.all(); len(recs) != 3+18+3 {
		t.Fatalf("%d records, want 24", len(recs))
	}
	a.recs = a.recs[:3]
	// The window ends: the counted refusals are one record.
	now = now.Add(1500 * time.Millisecond)
	l.Flush(ctx, false)
	recs := a.all()
	last := recs[len(recs)-1]
	if len(recs) != 4 || last.Repeats != 999 || last.Source != "10.0.0.1" || last.InvocationID != "id999" || last.Reason != "rate" || last.Outcome != Refused {
		t.Fatalf("summary: %d records, last %+v", len(recs), last)
	}
	if counted(recs) != 1002 {
		t.Fatalf("records stand for %d refusals, want 1002", counted(recs))
	}
	// A refusal after the window opens a new one, audited in full.
	add(l, refusal("limited", "rate", "10.0.0.1:9", "again"))
	if recs := a.all(); recs[len(recs)-1].InvocationID != "again" || recs[len(recs)-1].Repeats != 0 {
		t.Fatalf("new window: %+v", recs[len(recs)-1])
	}

	// Past the kinds it tracks, new addresses fold into one kind per
	// function and reason: rotating addresses does not grow the table.
	l.Flush(ctx, true)
	before := len(a.all())
	for i := range 500 {
		add(l, refusal("limited", "rate", fmt.Sprintf("10.1.%d.%d:1", i/250, i%250), "r"))
	}
	l.Flush(ctx, true)
	recs = a.all()[before:]
	if counted(recs) != 500 || len(recs) > 3+1+1 {
		t.Fatalf("rotating sources: %d records for %d refusals", len(recs), counted(recs))
	}
	if len(l.open) != 0 {
		t.Fatalf("flush kept %d windows", len(l.open))
	}
}

// TestRefusalsConcurrent: under concurrent refusals none is lost or
// counted twice.
func TestRefusalsConcurrent(t *testing.T) {
	ctx := context.Background()
	a := &trail{}
	l := NewCoalescer(a, 5*time.Millisecond, 64, flood...)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				add(l, refusal(fmt.Sprint("fn", g%2), "rate", fmt.Sprintf("10.0.0.%d:1", i%3), "x"))
				if i%500 == 0 {
					l.Flush(ctx, false)
				}
			}
		})
	}
	wg.Wait()
	l.Flush(ctx, true)
	if got := counted(a.all()); got != 16000 {
		t.Fatalf("records stand for %d refusals, want 16000", got)
	}
}
