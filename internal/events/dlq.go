package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/moatfn/moat/internal/cloudevent"
	"github.com/moatfn/moat/internal/manifest"
)

// Reasons an event became a dead letter.
const (
	ReasonFailed      = "failed"      // every attempt failed (5xx, timeout, trap)
	ReasonRejected    = "rejected"    // refused or answered 4xx: trying again cannot help
	ReasonUndelivered = "undelivered" // delivered max_deliver times without an answer
	ReasonUnreadable  = "unreadable"  // could not be unsealed or decoded
)

// Letter is a dead letter: an event a function did not handle, why, and
// what was tried.
type Letter struct {
	ID            uint64            `json:"id"` // its sequence among the dead letters
	Function      string            `json:"function"`
	Trigger       string            `json:"trigger"` // the trigger's subject pattern
	Subject       string            `json:"subject"`
	Reason        string            `json:"reason"`
	Status        int               `json:"status,omitempty"`
	Detail        string            `json:"detail,omitempty"`
	Attempts      int               `json:"attempts"`
	InvocationIDs []string          `json:"invocation_ids"`
	Time          time.Time         `json:"time"`
	Publisher     string            `json:"publisher,omitempty"`
	Event         *cloudevent.Event `json:"event,omitempty"`
}

// ErrNoLetter reports a dead letter that is not there.
var ErrNoLetter = errors.New("no such dead letter")

func dlqSubject(fn string) string { return dlqPrefix + fn }

func letterAAD(fn string) []byte { return []byte("moat dead letter\x00" + fn) }

// deadLetter keeps l, then acknowledges the event. If the letter cannot be
// kept, the event is not acknowledged: it comes again later.
func (b *Bus) deadLetter(ctx context.Context, c *consumer, msg jetstream.Msg, seq uint64, l *Letter) {
	ctx = context.WithoutCancel(ctx)
	l.Time = b.now().UTC()
	body, err := b.seal(ctx, l, letterAAD(c.fn))
	if err == nil {
		// The same delivery dead-lettered twice (a crash before the ack)
		// is kept once.
		_, err = b.js.Publish(ctx, dlqSubject(c.fn), body,
			jetstream.WithMsgID(c.name+"/"+strconv.FormatUint(seq, 10)), jetstream.WithExpectStream(StreamDLQ))
	}
	if err != nil {
		b.log.Error("dead letter", slog.String("fn", c.fn), slog.Uint64("seq", seq), slog.Any("err", err))
		msg.NakWithDelay(time.Minute)
		return
	}
	b.log.Warn("event dead-lettered", slog.String("fn", c.fn), slog.String("subject", l.Subject),
		slog.String("reason", l.Reason), slog.Int("status", l.Status), slog.Int("attempts", l.Attempts))
	if err := msg.DoubleAck(ctx); err != nil {
		b.log.Warn("ack dead-lettered event", slog.String("fn", c.fn), slog.Any("err", err))
	}
	b.rec.Event(c.fn, DeadLettered)
}

// MaxList bounds the dead letters one listing returns.
const MaxList = 1000

// Letters returns fn's dead letters, oldest first, at most MaxList, and
// how many there are in all.
func (b *Bus) Letters(ctx context.Context, fn string) ([]*Letter, int, error) {
	if !manifest.ValidName(fn) {
		return nil, 0, ErrNoLetter
	}
	total, err := b.count(ctx, fn)
	if err != nil || total == 0 {
		return []*Letter{}, 0, err
	}
	cons, err := b.dlq.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{dlqSubject(fn)}})
	if err != nil {
		return nil, 0, err
	}
	out := []*Letter{}
	for len(out) < min(total, MaxList) {
		batch, err := cons.Fetch(min(total, MaxList)-len(out), jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return nil, 0, err
		}
		n := 0
		for msg := range batch.Messages() {
			n++
			meta, err := msg.Metadata()
			if err != nil {
				return nil, 0, err
			}
			out = append(out, b.letter(ctx, fn, meta.Sequence.Stream, msg.Data()))
		}
		if n == 0 {
			break
		}
	}
	return out, total, nil
}

// count is how many dead letters fn has.
func (b *Bus) count(ctx context.Context, fn string) (int, error) {
	info, err := b.dlq.Info(ctx, jetstream.WithSubjectFilter(dlqSubject(fn)))
	if err != nil {
		return 0, err
	}
	return int(info.State.Subjects[dlqSubject(fn)]), nil
}

// Count is how many dead letters fn has.
func (b *Bus) Count(ctx context.Context, fn string) (int, error) { return b.count(ctx, fn) }

// letter opens one stored dead letter; one that does not open is shown as
// unreadable rather than hidden.
func (b *Bus) letter(ctx context.Context, fn string, seq uint64, data []byte) *Letter {
	l := &Letter{}
	if err := b.open(ctx, data, letterAAD(fn), l); err != nil {
		return &Letter{ID: seq, Function: fn, Reason: ReasonUnreadable, Detail: "the dead letter could not be unsealed"}
	}
	l.ID = seq
	return l
}

// Letter returns one of fn's dead letters.
func (b *Bus) Letter(ctx context.Context, fn string, id uint64) (*Letter, error) {
	if !manifest.ValidName(fn) || id == 0 {
		return nil, ErrNoLetter
	}
	m, err := b.dlq.GetMsg(ctx, id)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, ErrNoLetter
	}
	if err != nil {
		return nil, err
	}
	if m.Subject != dlqSubject(fn) {
		return nil, ErrNoLetter // another function's
	}
	return b.letter(ctx, fn, id, m.Data), nil
}

// Replay sends one dead letter again to the trigger of fn that takes its
// subject, as a new delivery with the same CloudEvent (id included, so an
// idempotent function sees the event it already knows), and removes the
// letter once the event is kept.
func (b *Bus) Replay(ctx context.Context, fn string, id uint64, actor string) (*Published, error) {
	l, err := b.Letter(ctx, fn, id)
	if err != nil {
		return nil, err
	}
	if l.Event == nil {
		return nil, fmt.Errorf("dead letter %d: %s, nothing to replay", id, l.Reason)
	}
	var name string
	b.mu.Lock()
	// A queue's letter goes to the trigger that takes its subject; a
	// schedule's to the same schedule, or else the function's first.
	for _, t := range b.triggers[fn] {
		switch {
		case t.sched == nil && l.Subject != "schedule" && manifest.SubjectMatches(t.q.Subject, l.Subject):
		case t.sched != nil && l.Subject == "schedule" && (l.Trigger == t.q.Subject || name == ""):
		default:
			continue
		}
		name = t.name
		if t.sched == nil || l.Trigger == t.q.Subject {
			break
		}
	}
	b.mu.Unlock()
	if name == "" {
		return nil, fmt.Errorf("%s has no trigger that takes %s: %w", fn, l.Subject, ErrNoListener)
	}
	natsSubject := replayPrefix + name
	body, err := b.seal(ctx, envelope{Event: l.Event, Subject: l.Subject, Publisher: l.Publisher, Published: b.now().UTC()}, eventAAD(natsSubject))
	if err != nil {
		return nil, err
	}
	ack, err := b.js.Publish(ctx, natsSubject, body, jetstream.WithMsgID("replay/"+strconv.FormatUint(id, 10)), jetstream.WithExpectStream(StreamEvents))
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	if err := b.dlq.DeleteMsg(ctx, id); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, fmt.Errorf("replayed, but the dead letter stays: %w", err)
	}
	return &Published{ID: l.Event.ID, Subject: l.Subject, Sequence: ack.Sequence, Duplicate: ack.Duplicate}, nil
}

// Purge deletes every dead letter of fn and returns how many there were.
func (b *Bus) Purge(ctx context.Context, fn string) (int, error) {
	if !manifest.ValidName(fn) {
		return 0, ErrNoLetter
	}
	n, err := b.count(ctx, fn)
	if err != nil {
		return 0, err
	}
	if err := b.dlq.Purge(ctx, jetstream.WithPurgeSubject(dlqSubject(fn))); err != nil {
		return 0, err
	}
	return n, nil
}

// TriggerState is what a trigger has waiting.
type TriggerState struct {
	Kind    string `json:"kind"`    // queue or schedule
	Subject string `json:"subject"` // a schedule's: its cron expression and zone
	// A schedule's settings, and when it next fires.
	Cron        string     `json:"cron,omitempty"`
	Timezone    string     `json:"timezone,omitempty"`
	Overlap     string     `json:"overlap,omitempty"`
	Next        *time.Time `json:"next,omitempty"`
	Pending     uint64     `json:"pending"`      // published, not yet delivered
	InFlight    int        `json:"in_flight"`    // delivered, not yet acknowledged
	Redelivered int        `json:"redelivered"`  // of those, delivered more than once
	MaxDeliver  int        `json:"max_deliver"`  //
	Concurrency int        `json:"concurrency"`  //
	DeadLetters int        `json:"dead_letters"` // of the function, all triggers
}

// Triggers returns the state of fn's queue triggers.
func (b *Bus) Triggers(ctx context.Context, fn string) ([]TriggerState, error) {
	b.mu.Lock()
	ts := b.triggers[fn]
	b.mu.Unlock()
	out := []TriggerState{}
	if len(ts) == 0 {
		return out, nil
	}
	dead, err := b.count(ctx, fn)
	if err != nil {
		return nil, err
	}
	for _, t := range ts {
		s := TriggerState{Kind: "queue", Subject: t.q.Subject, MaxDeliver: t.q.MaxDeliver, Concurrency: t.q.Concurrency, DeadLetters: dead}
		if t.sched != nil {
			s.Kind, s.Cron, s.Timezone, s.Overlap = "schedule", t.sched.Cron, t.sched.Timezone, t.sched.Overlap
			if c, loc, err := t.sched.Parsed(); err == nil {
				if next := c.Next(b.now().In(loc)); !next.IsZero() {
					s.Next = &next
				}
			}
		}
		if c, err := b.events.Consumer(ctx, t.name); err == nil {
			if info, err := c.Info(ctx); err == nil {
				s.Pending, s.InFlight, s.Redelivered = info.NumPending, info.NumAckPending, info.NumRedelivered
			}
		}
		out = append(out, s)
	}
	return out, nil
}
