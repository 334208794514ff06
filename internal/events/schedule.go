package events

// Schedules are fired by JetStream's message scheduler (nats-server 2.14
// and later), not by a timer of this node: a schedule is a definition
// message in the stream MOAT_SCHEDULES, and the stream's leader publishes
// a tick on each of its times. So each tick fires once however many nodes
// run, a definition survives restarts with the stream, and after a node was
// down the scheduler fires a missed tick once, not once per missed time.
// A tick is forwarded, with a message id made of its schedule and time
// (kept once however often it is forwarded), into MOAT_EVENTS as an event
// for the schedule's durable consumer, so that from there on a tick is an
// event like any other: retried, dead-lettered, replayed.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/moatfn/moat/internal/cloudevent"
	"github.com/moatfn/moat/internal/manifest"
)

const (
	// StreamSchedules keeps the schedules' definitions and their ticks.
	StreamSchedules = "MOAT_SCHEDULES"

	defPrefix    = "moat.sched.def."    // + consumer name: a schedule's definition
	firePrefix   = "moat.sched.tick."   // + consumer name: where the scheduler fires it
	tickPrefix   = "moat.tick."         // + consumer name: the tick as an event, in MOAT_EVENTS
	cancelPrefix = "moat.sched.cancel." // + consumer name: core NATS, a newer tick replaces older runs

	forwarder = "ticks" // the durable consumer forwarding ticks

	// TickType is the CloudEvent type of a schedule's tick.
	TickType = "moat.schedule.tick"
)

// Headers of JetStream message scheduling (ADR-51).
const (
	hdrSchedule       = "Nats-Schedule"
	hdrScheduleTarget = "Nats-Schedule-Target"
	hdrScheduleZone   = "Nats-Schedule-Time-Zone"
	hdrMissed         = "Moat-Missed-Tick" // the time of a tick fired late, once, after no node ran
	hdrScheduleRollup = "Nats-Schedule-Rollup"
)

// definition is the body of a schedule's definition, copied by the
// scheduler into every tick.
type definition struct {
	Function string `json:"function"`
	Consumer string `json:"consumer"`
	Cron     string `json:"cron"` // as the manifest writes it
	Timezone string `json:"timezone,omitempty"`
}

func (b *Bus) openSchedules(ctx context.Context) error {
	var err error
	b.schedules, err = stream(ctx, b.js, jetstream.StreamConfig{
		Name:        StreamSchedules,
		Description: "Moat schedules: one definition per schedule, and its last tick",
		Subjects:    []string{defPrefix + "*", firePrefix + "*"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Discard:     jetstream.DiscardOld, // the scheduler refuses DiscardNew; at most two messages per schedule
		MaxBytes:    64 << 20,
		Replicas:    max(b.cfg.Replicas, 1),
		AllowRollup: true,
		// A definition replaces the one before it, and a tick the tick
		// before it (Nats-Schedule-Rollup), so the stream stays small.
		AllowMsgSchedules: true,
	})
	return err
}

// define makes the scheduler hold t's definition, unless it already does.
func (b *Bus) define(ctx context.Context, fn string, t *trigger) error {
	c, _, err := t.sched.Parsed()
	if err != nil {
		return err
	}
	subject := defPrefix + t.name
	want := nats.Header{}
	want.Set(hdrSchedule, c.Spec())
	want.Set(hdrScheduleTarget, firePrefix+t.name)
	want.Set(hdrScheduleRollup, "sub")
	if z := t.sched.Timezone; z != "" && z != "UTC" {
		want.Set(hdrScheduleZone, z)
	}
	if have, err := b.schedules.GetLastMsgForSubject(ctx, subject); err == nil {
		same := true
		for k := range want {
			same = same && have.Header.Get(k) == want.Get(k)
		}
		if same && have.Header.Get(hdrScheduleZone) == want.Get(hdrScheduleZone) {
			return nil
		}
	}
	body, _ := json.Marshal(definition{Function: fn, Consumer: t.name, Cron: t.sched.Cron, Timezone: t.sched.Timezone})
	msg := &nats.Msg{Subject: subject, Header: want, Data: body}
	if _, err := b.js.PublishMsg(ctx, msg, jetstream.WithExpectStream(StreamSchedules)); err != nil {
		return fmt.Errorf("schedule %s: %w", t.q.Subject, err)
	}
	return nil
}

// undefine removes the definitions whose consumer names gone reports.
func (b *Bus) undefine(ctx context.Context, gone func(name string) bool) {
	info, err := b.schedules.Info(ctx, jetstream.WithSubjectFilter(defPrefix+"*"))
	if err != nil {
		b.log.Warn("list schedules", slog.Any("err", err))
		return
	}
	for subject := range info.State.Subjects {
		name := strings.TrimPrefix(subject, defPrefix)
		if !gone(name) {
			continue
		}
		for _, s := range []string{subject, firePrefix + name} {
			if err := b.schedules.Purge(ctx, jetstream.WithPurgeSubject(s)); err != nil {
				b.log.Warn("remove schedule", slog.String("consumer", name), slog.Any("err", err))
			}
		}
	}
}

// forward runs the consumer that turns the scheduler's ticks into events.
func (b *Bus) forward(ctx context.Context) (jetstream.ConsumeContext, error) {
	cons, err := b.schedules.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:        forwarder,
		Description:    "forwards schedule ticks to MOAT_EVENTS",
		FilterSubjects: []string{firePrefix + "*"},
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        b.cfg.AckWait,
		MaxDeliver:     -1,
		MaxAckPending:  256,
		DeliverPolicy:  jetstream.DeliverNewPolicy,
		Replicas:       max(b.cfg.Replicas, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("consumer %s: %w", forwarder, err)
	}
	return b.consumeAcking(cons, forwarder, "forward schedule tick", func(msg jetstream.Msg) error {
		return b.forwardTick(ctx, msg)
	})
}

// forwardTick publishes one tick as an event for its schedule's consumer.
func (b *Bus) forwardTick(ctx context.Context, msg jetstream.Msg) error {
	meta, err := msg.Metadata()
	if err != nil {
		return err
	}
	var def definition
	if err := json.Unmarshal(msg.Data(), &def); err != nil || def.Consumer != strings.TrimPrefix(msg.Subject(), firePrefix) {
		return nil // not ours to forward: dropped
	}
	// The tick's time is the schedule's last time at or before it fired,
	// so a tick the scheduler fires late (once back after no node ran) and
	// the node's own catch-up of it (catchUp) are the same event.
	at := meta.Timestamp.UTC()
	if missed, err := time.Parse(time.RFC3339, msg.Headers().Get(hdrMissed)); err == nil {
		at = missed
	}
	sched := manifest.ScheduleTrigger{Cron: def.Cron, Timezone: def.Timezone}
	c, loc, err := sched.Parsed()
	if err != nil {
		return nil // a definition of an older Moat: dropped
	}
	if prev := c.Prev(at.In(loc)); !prev.IsZero() {
		at = prev.UTC()
	}
	at = at.Truncate(time.Second)
	ev := &cloudevent.Event{
		ID:          def.Consumer + "-" + strconv.FormatInt(at.Unix(), 10),
		Source:      "/schedule/" + def.Function,
		SpecVersion: cloudevent.SpecVersion,
		Type:        TickType,
		Subject:     def.Cron,
		Time:        at.Format(time.RFC3339),
	}
	env := envelope{Event: ev, Subject: "schedule", Publisher: "schedule", Published: b.now().UTC()}
	env.Next = c.Next(at.In(loc))
	subject := tickPrefix + def.Consumer
	body, err := b.seal(ctx, env, eventAAD(subject))
	if err != nil {
		return err
	}
	_, err = b.js.Publish(ctx, subject, body, jetstream.WithMsgID(msgID(ev)), jetstream.WithExpectStream(StreamEvents))
	return err
}

// catchUp fires, once, the last tick of t that fell while no node ran:
// the scheduler, restarted, goes on from the next one. The tick's time
// makes its id, so nodes starting together fire it once between them.
func (b *Bus) catchUp(ctx context.Context, t *trigger) error {
	c, loc, err := t.sched.Parsed()
	if err != nil {
		return err
	}
	def, err := b.schedules.GetLastMsgForSubject(ctx, defPrefix+t.name)
	if err != nil {
		return err
	}
	last := def.Time
	if tick, err := b.schedules.GetLastMsgForSubject(ctx, firePrefix+t.name); err == nil && tick.Time.After(last) {
		last = tick.Time
	}
	cutoff := b.now().Add(-time.Second) // a tick due this very second is the scheduler's
	var missed time.Time
	for i, at := 0, c.Next(last.In(loc)); i < 1_000_000 && !at.IsZero() && !at.After(cutoff); i++ {
		missed, at = at, c.Next(at)
	}
	if missed.IsZero() {
		return nil
	}
	h := nats.Header{}
	h.Set(hdrMissed, missed.UTC().Format(time.RFC3339))
	h.Set(jetstream.MsgRollup, jetstream.MsgRollupSubject)
	h.Set(jetstream.MsgIDHeader, "missed-"+t.name+"-"+strconv.FormatInt(missed.Unix(), 10))
	msg := &nats.Msg{Subject: firePrefix + t.name, Header: h, Data: def.Data}
	if _, err := b.js.PublishMsg(ctx, msg, jetstream.WithExpectStream(StreamSchedules)); err != nil {
		return fmt.Errorf("missed tick of %s: %w", t.q.Subject, err)
	}
	b.log.Info("schedule tick missed while no node ran: fired once now", slog.String("consumer", t.name), slog.Time("missed", missed))
	return nil
}

// catchUpAll fires the missed ticks of every schedule.
func (b *Bus) catchUpAll(ctx context.Context) {
	b.mu.Lock()
	var ts []*trigger
	for _, fts := range b.triggers {
		for _, t := range fts {
			if t.sched != nil {
				ts = append(ts, t)
			}
		}
	}
	b.mu.Unlock()
	for _, t := range ts {
		if err := b.catchUp(ctx, t); err != nil {
			b.log.Warn("schedule", slog.String("consumer", t.name), slog.Any("err", err))
		}
	}
}

// scheduleState is what a schedule's consumer on this node knows of its
// runs, for the overlap policy.
type scheduleState struct {
	mu      sync.Mutex
	running map[uint64]context.CancelFunc // by the tick's sequence
	lastEnd time.Time                     // when the last run here ended
	sub     *nats.Subscription            // replace: newer ticks elsewhere
}

// begin decides whether a tick runs; a reason to skip it when not. Only a
// tick's first delivery is skipped: a retry is the same run again.
func (s *scheduleState) begin(t *trigger, seq uint64, attempt int, env *envelope, now time.Time, cancel context.CancelFunc) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if attempt == 1 && t.sched.Overlap == manifest.OverlapForbid {
		at, _ := time.Parse(time.RFC3339, env.Event.Time)
		switch {
		case len(s.running) > 0:
			return "a run is going"
		case at.Before(s.lastEnd.Truncate(time.Second)):
			return "it fell while a run went"
		case !env.Next.IsZero() && now.After(env.Next.Add(time.Second)):
			return "its next tick is due: that one runs"
		}
	}
	s.running[seq] = cancel
	return ""
}

func (s *scheduleState) end(seq uint64, now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.running, seq)
	s.lastEnd = now()
}

// cancelOlder ends the runs here of ticks before seq.
func (s *scheduleState) cancelOlder(seq uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for q, cancel := range s.running {
		if q < seq {
			cancel()
		}
	}
}

// watchReplaced returns the state of a schedule's consumer, subscribed,
// for overlap replace, to the newer ticks other nodes start.
func (b *Bus) watchReplaced(t *trigger) (*scheduleState, error) {
	s := &scheduleState{running: map[uint64]context.CancelFunc{}}
	if t.sched.Overlap != manifest.OverlapReplace {
		return s, nil
	}
	sub, err := b.js.Conn().Subscribe(cancelPrefix+t.name, func(m *nats.Msg) {
		if seq, err := strconv.ParseUint(string(m.Data), 10, 64); err == nil {
			s.cancelOlder(seq)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("schedule %s: %w", t.q.Subject, err)
	}
	s.sub = sub
	return s, nil
}

// replace ends every run of c's schedule older than the tick seq, here
// and on the other nodes.
func (b *Bus) replace(c *consumer, seq uint64) {
	c.sched.cancelOlder(seq)
	if err := b.js.Conn().Publish(cancelPrefix+c.name, strconv.AppendUint(nil, seq, 10)); err != nil {
		b.log.Warn("replace schedule run", slog.String("consumer", c.name), slog.Any("err", err))
	}
}

// consumeAcking runs cons through handle, one message at a time: a message
// handled is acknowledged, one that failed (logged with failed) comes back
// after a second.
func (b *Bus) consumeAcking(cons jetstream.Consumer, name, failed string, handle func(jetstream.Msg) error) (jetstream.ConsumeContext, error) {
	return cons.Consume(func(msg jetstream.Msg) {
		if err := handle(msg); err != nil {
			b.log.Warn(failed, slog.String("consumer", name), slog.String("subject", msg.Subject()), slog.Any("err", err))
			msg.NakWithDelay(time.Second)
			return
		}
		msg.Ack()
	}, jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		if !errors.Is(err, jetstream.ErrNoHeartbeat) {
			b.log.Debug("consume", slog.String("consumer", name), slog.Any("err", err))
		}
	}))
}
